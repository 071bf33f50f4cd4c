#!/usr/bin/env python3
"""Router benchmark: our router against a bare Pingora proxy and nginx doing the same job,
with the upstream served directly as the ceiling. Loopback only; every process started here is
stopped by PID at the end.

Each target runs with one worker thread, pinned to CPU 1; wrk (one thread) and the upstream run
on CPU 0. Rounds alternate between targets so drift affects all of them alike.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from procs import cpu_seconds, free_port, rss_mib, start, tree, wait_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = "x" * 1024


def peak_rss_mib(pids):
    total = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def nginx_conf(work, name, body):
    path = os.path.join(work, f"{name}.conf")
    with open(path, "w") as f:
        f.write(
            "daemon off; worker_processes 1; pid %s/%s.pid; error_log %s/%s.error.log warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n  access_log off;\n  client_body_temp_path %s; proxy_temp_path %s;\n"
            "  fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n%s\n}\n"
            % (work, name, work, name, work, work, work, work, work, body)
        )
    return path


# Rate-limit runs: one zone keyed like the seeds' `general` zone (client address) on every
# request, with a rate no benchmark reaches, so every request pays for the check and none is
# refused; plan limits off (the static tenants' plan would refuse at 10 r/s).
LIMITS_OFF = "[rate_limits]\nenabled = false\n"
LIMITS_ON = ('[rate_limits]\nenabled = true\nkey_prefix = "bench"\n'
             'zone = [{ name = "general", key = ["client_ip"], rate = "1000000r/s", '
             'burst = 1000000, nodelay = true }]\n[rate_limits.plan]\nenabled = false\n')


def router_conf(work, name, tenants, up_port, access_log, trusted=False, extra=LIMITS_OFF):
    """A one-thread router configuration on a fresh port; returns (path, port). `trusted`:
    loopback is a trusted proxy (the production shape behind a load balancer). `extra`: more
    tables (rate limits off unless given, so the long-running figures stay comparable)."""
    r_port, m_port = free_port(), free_port()
    path = os.path.join(work, f"router-{name}.toml")
    with open(path, "w") as f:
        f.write(f'static_tenants = "{tenants}"\naccess_log = {access_log}\n'
                + ('trusted_proxies = ["127.0.0.1"]\n' if trusted else "")
                + f'[domain]\nbase_domain = "platform.test"\n'
                f'[listen]\nhttp = "127.0.0.1:{r_port}"\nmetrics = "127.0.0.1:{m_port}"\n'
                f'[upstreams]\nplatform = ["127.0.0.1:{up_port}"]\nworkers = []\n'
                f'[edge]\nsigning_secret = "bench-secret-0123456789abcdef0123456789"\n'
                f'[lifecycle]\nthreads = 1\nshutdown_timeout_secs = 1\n'
                f'upgrade_sock = "{work}/up-{name}.sock"\npid_file = "{work}/router-{name}.pid"\n'
                f'[log]\nformat = "json"\nlevel = "info"\n' + extra)
    return path, r_port


def callgrind_ir(cmd, port, script, work, name, log):
    """User-space instructions per request of `cmd` under callgrind: a warm-up, then counters
    zeroed, 10 s of wrk at 16 connections, a dump, and the dump's total divided by requests."""
    out = os.path.join(work, f"cg-{name}.out")
    p = subprocess.Popen(["taskset", "-c", "1", "valgrind", "--tool=callgrind",
                          f"--callgrind-out-file={out}"] + cmd,
                         stdout=log, stderr=log, start_new_session=True,
                         env={"PATH": os.environ.get("PATH", "")})
    try:
        wait_port(port, 120)
        time.sleep(3)  # first health checks, slow under valgrind
        wrk(port, 3, 16, script)
        subprocess.run(["callgrind_control", "-z", str(p.pid)], capture_output=True, check=True)
        r = wrk(port, 10, 16, script)
        subprocess.run(["callgrind_control", "-d", str(p.pid)], capture_output=True, check=True)
        dumps = sorted(f for f in os.listdir(work) if f.startswith(f"cg-{name}.out."))
        dump = os.path.join(work, dumps[-1])
        text = open(dump).read()
        total = int(re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M).group(1))
        # Valgrind's CPU has no SHA extensions, so the HMAC runs sha2's software compression
        # here; outside valgrind it runs on the SHA instructions. Report that share apart.
        ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump],
                             capture_output=True, text=True).stdout
        soft = sum(int(m.group(1).replace(",", "")) for m in
                   re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+\S*sha256::soft::compress", ann, re.M))
        r["soft_sha_per_req"] = soft / r["requests"]
        return total / r["requests"], r
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def count_instructions(rel, work, confs, nginx, up_port, script, log):
    """Deterministic companion to the wall-clock rounds, which this VM's neighbours move by
    ±30 %: instructions per request of the bare proxy, of our router with the access log off
    and on (`confs`: [(name, config path, port)]), and of nginx doing the same job (`nginx()`
    writes its configuration on a fresh port just before its run and returns (path, port); one
    process, `master_process off`)."""
    b_port = free_port()
    bare, rb = callgrind_ir([os.path.join(rel, "bare-proxy"), f"127.0.0.1:{b_port}",
                             f"127.0.0.1:{up_port}", "1"], b_port, script, work, "bare", log)
    rows = [("bare pingora", bare, rb)]
    for name, binary, rconf, r_port, r_script in confs:
        ir, r = callgrind_ir([binary, "--config", rconf, "serve"], r_port, r_script or script,
                             work, name.replace(" ", "-").replace(",", "").replace("/", ""), log)
        rows.append((name, ir, r))
    n_conf, n_port = nginx()
    ngx, rn = callgrind_ir(["nginx", "-c", n_conf, "-p", work, "-g", "master_process off;"],
                           n_port, script, work, "nginx", log)
    for name, ir, r in rows + [("nginx", ngx, rn)]:
        print(f"{name:20} {ir:>10,.0f} instructions/request ({r['requests']:,} requests, "
              f"non-2xx {r['non2xx']}; software SHA-256 {r['soft_sha_per_req']:,.0f})")
    print(f"bare pingora / nginx: {bare / ngx:.2f}x instructions per request (the framework's "
          f"floor against nginx doing the whole job, signature aside)")
    by = {name: ir for name, ir, _ in rows}
    if "our router, trusted proxy" in by:
        print(f"trusted proxy / direct: {by['our router, trusted proxy'] / by['our router']:.3f}x "
              f"instructions per request (access log on in both)")
    if "alt router" in by:
        print(f"our router / alt router: {by['our router'] / by['alt router']:.3f}x "
              f"instructions per request (access log on in both)")
    for name, ir, r in rows[1:]:
        no_sha = ir - r["soft_sha_per_req"]
        print(f"{name} / bare pingora: {ir / bare:.2f}x instructions per request "
              f"(tenant logic +{(ir / bare - 1) * 100:.0f}%; without the software SHA-256 "
              f"compressions, which run on the CPU's SHA instructions outside valgrind: "
              f"+{(no_sha / bare - 1) * 100:.0f}%)")


def nginx_proxy_conf(work, hosts, ids, up_port, limit=False):
    """nginx doing the router's job: host → tenant map, owned headers replaced, the same
    forwarding headers, security headers, least_conn + keepalive upstream, access log on.
    `limit`: also a `limit_req` zone equal to the router's rate-limit runs (per client address,
    a rate no run reaches). Returns (config path, port)."""
    n_port = free_port()
    maps = "\n".join(f"    {h} {ids[h]};" for h in hosts)
    slugs = "\n".join(f"    {h} {h.split('.')[0]};" for h in hosts)
    body = (
        ("  log_format j escape=json '{\"request_id\":\"$request_id\",\"host\":\"$host\",\"status\":$status,"
        "\"bytes\":$body_bytes_sent,\"total\":$request_time,\"upstream\":\"$upstream_response_time\"}';\n"
        "  access_log %s/nginx-access.log j;\n")
        + ("  limit_req_zone $binary_remote_addr zone=general:10m rate=1000000r/s;\n"
           "  limit_req zone=general burst=1000000 nodelay;\n" if limit else "")
        + "  map $host $tenant_id { hostnames; default \"\";\n%s\n  }\n"
        "  map $host $tenant_slug { hostnames; default \"\";\n%s\n  }\n"
        "  upstream platform { least_conn; server 127.0.0.1:%d max_fails=3 fail_timeout=30s; keepalive 64; }\n"
        "  server { listen 127.0.0.1:%d; keepalive_requests 100000;\n"
        "    if ($tenant_id = \"\") { return 308 https://platform.test/; }\n"
        "    location / {\n"
        "      proxy_pass http://platform; proxy_http_version 1.1; proxy_set_header Connection \"\";\n"
        "      proxy_set_header Host $host;\n"
        "      proxy_set_header X-Request-Id $request_id; proxy_set_header X-Real-IP $remote_addr;\n"
        "      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto $scheme;\n"
        "      proxy_set_header X-Forwarded-Host $host; proxy_set_header X-Original-Host $host;\n"
        "      proxy_set_header X-Route tenant; proxy_set_header X-Tenant-Id $tenant_id;\n"
        "      proxy_set_header X-Tenant-Slug $tenant_slug; proxy_set_header X-Edge-Signature \"\";\n"
        "      proxy_hide_header Server; proxy_hide_header X-Powered-By;\n"
        "      add_header X-Content-Type-Options nosniff always; add_header X-Frame-Options SAMEORIGIN always;\n"
        "      add_header Referrer-Policy strict-origin-when-cross-origin always;\n"
        "      add_header Permissions-Policy \"camera=(), microphone=(), geolocation=(), payment=(self)\" always;\n"
        "      add_header X-Request-Id $request_id always;\n"
        "      gzip on; gzip_types text/plain text/css application/json application/javascript;\n"
        "    } }") % (work, maps, slugs, up_port, n_port)
    return nginx_conf(work, "proxy-limit" if limit else "proxy", body), n_port


class Target:
    def __init__(self, name, port, proc):
        self.name, self.port, self.proc = name, port, proc
        self.runs = []


def wrk(port, seconds, conns, script):
    out = subprocess.run(
        ["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: (.*)", out)

    def lat(pct):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    return {"rps": rps, "requests": total, "p50": lat(50), "p99": lat(99),
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock_err.group(1) if sock_err else ""}


def big_tenants(args, rel, work, up_port, log, procs):
    """The running router's memory with many tenants: every name requested once (so every one
    is resolved and cached), then resident and peak memory read from /proc."""
    n = args.big_tenants
    tenants = os.path.join(work, "big-tenants.toml")
    with open(tenants, "w") as f:
        for i in range(n):
            f.write(f'[[tenant]]\nid = "{uuid.uuid5(uuid.NAMESPACE_DNS, f"b{i}")}"\n'
                    f'slug = "b{i:06d}"\nname = "Tenant {i}"\n')
    # Host names computed in Lua: a list of 100,000 names is too large for wrk to load.
    def big_script(start):
        # Each wrk run starts a fresh Lua state: continue where the previous run stopped.
        path = os.path.join(work, "big.lua")
        with open(path, "w") as f:
            f.write("local n = %d\nrequest = function()\n  n = (n + 1) %% %d\n"
                    "  return wrk.format('GET', '/', {['Host'] = string.format('b%%06d.platform.test', n)})\n"
                    "end\n" % (start - 1, n))
        return path
    r_port, m_port = free_port(), free_port()
    rconf = os.path.join(work, "router-big.toml")
    with open(rconf, "w") as f:
        f.write(f'static_tenants = "{tenants}"\naccess_log = false\n'
                f'[domain]\nbase_domain = "platform.test"\n'
                f'[listen]\nhttp = "127.0.0.1:{r_port}"\nmetrics = "127.0.0.1:{m_port}"\n'
                f'[upstreams]\nplatform = ["127.0.0.1:{up_port}"]\nworkers = []\n'
                f'[edge]\nsigning_secret = "bench-secret-0123456789abcdef0123456789"\n'
                f'[cache]\nmax_entries = {2 * n}\n'
                f'[lifecycle]\nthreads = 1\nshutdown_timeout_secs = 1\n'
                f'upgrade_sock = "{work}/up-big.sock"\npid_file = "{work}/router-big.pid"\n')
    p = start([os.path.join(rel, "router"), "--config", rconf, "serve"], log, 1,
              {"PATH": os.environ.get("PATH", "")})
    procs.append(p)
    wait_port(r_port, 120)
    time.sleep(1.5)
    loaded = rss_mib(p.pid, "VmRSS")
    served = 0
    runs = []
    while served < n:  # bounded: each pass serves thousands of requests
        r = wrk(r_port, 5, args.connections, big_script(served % n))
        served += r["requests"]
        runs.append(r)
    def scrape():
        text = subprocess.run(["curl", "-fsS", f"http://127.0.0.1:{m_port}/metrics"],
                              capture_output=True, text=True).stdout
        def val(pattern):
            m = re.search(pattern + r" (\S+)$", text, re.M)
            return float(m.group(1)) if m else -1
        return {"entries": val(r"^router_tenant_cache_entries"),
                "hit": val(r'^router_tenant_cache_lookups_total\{result="hit"\}'),
                "miss": val(r'^router_tenant_cache_lookups_total\{result="miss"\}')}
    first = scrape()
    # A second pass over every name: all of them should now be cache hits.
    again = 0
    while again < n:
        r = wrk(r_port, 5, args.connections, big_script(again % n))
        again += r["requests"]
    second = scrape()
    print(f"cache after the first pass: {first}; second pass of {again:,} requests: "
          f"{second['hit'] - first['hit']:.0f} hits, {second['miss'] - first['miss']:.0f} misses")
    out = {"tenants": n, "rss_loaded": loaded, "rss": rss_mib(p.pid, "VmRSS"),
           "hwm": rss_mib(p.pid, "VmHWM"), "cached": first["entries"],
           "rps": statistics.median(x["rps"] for x in runs),
           "p99": statistics.median(x["p99"] for x in runs),
           "non2xx": sum(x["non2xx"] for x in runs)}
    print()
    print(f"our router with {n:,} tenants (static file), every name requested once "
          f"({served:,} requests): cache entries {out['cached']:.0f}, RSS {out['rss_loaded']:.1f} MiB "
          f"after start, {out['rss']:.1f} MiB after (peak {out['hwm']:.1f} MiB); "
          f"{out['rps']:.0f} req/s, p99 {out['p99']:.2f} ms, non-2xx {out['non2xx']}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-dir", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--instructions", action="store_true",
                    help="instead of the wall-clock rounds: user-space instructions per request of "
                         "the bare proxy, our router (log off, log on, and log on behind a "
                         "trusted proxy sending X-Forwarded-For) and nginx under valgrind's "
                         "callgrind")
    ap.add_argument("--alt-router", metavar="BINARY",
                    help="also run this router build (access log on) as target 'alt router', "
                         "for an A/B of two builds in the same rounds (with --instructions: "
                         "direct and trusted-proxy runs of it too)")
    ap.add_argument("--no-limits", action="store_true",
                    help="skip the rate-limit runs (our router with one zone checked locally and "
                         "through Redis, and nginx with an equal limit_req zone)")
    ap.add_argument("--big-tenants", type=int, default=100000,
                    help="tenants for the running router's memory figure (0: skip)")
    args = ap.parse_args()
    rel = os.path.join(args.target_dir, "release")
    work = tempfile.mkdtemp(prefix="bench-router-")
    procs = []
    try:
        log = open(os.path.join(work, "processes.log"), "w")
        hosts = [f"t{i:04d}.platform.test" for i in range(args.tenants)]
        ids = {h: str(uuid.uuid5(uuid.NAMESPACE_DNS, h)) for h in hosts}
        script = os.path.join(work, "hosts.lua")
        with open(script, "w") as f:
            f.write("local hosts = {%s}\nlocal n = 0\nrequest = function()\n  n = n + 1\n"
                    "  return wrk.format('GET', '/', {['Host'] = hosts[(n %% #hosts) + 1]})\nend\n"
                    % ",".join(f'"{h}"' for h in hosts))

        # Upstream: nginx answering 1 KiB from memory.
        up_port = free_port()
        conf = nginx_conf(work, "upstream",
                          "  server { listen 127.0.0.1:%d; keepalive_requests 100000;\n"
                          "    location / { default_type text/plain; return 200 '%s'; } }" % (up_port, BODY))
        procs.append(start(["nginx", "-c", conf, "-p", work], log, 0))
        wait_port(up_port)

        tenants = os.path.join(work, "tenants.toml")
        with open(tenants, "w") as f:
            for h in hosts:
                slug = h.split(".")[0]
                f.write(f'[[tenant]]\nid = "{ids[h]}"\nslug = "{slug}"\nname = "Tenant {slug}"\n')
        # Behind a load balancer: the same requests, each with the X-Forwarded-For it adds.
        trusted_script = os.path.join(work, "hosts-xff.lua")
        with open(trusted_script, "w") as f:
            f.write("local hosts = {%s}\nlocal n = 0\nrequest = function()\n  n = n + 1\n"
                    "  return wrk.format('GET', '/', {['Host'] = hosts[(n %% #hosts) + 1], "
                    "['X-Forwarded-For'] = '203.0.113.7'})\nend\n"
                    % ",".join(f'"{h}"' for h in hosts))
        if args.instructions:
            ours = os.path.join(rel, "router")
            runs = [("our router, no log", ours, "false", False),
                    ("our router", ours, "true", False),
                    ("our router, trusted proxy", ours, "true", True)]
            if args.alt_router:
                runs.append(("alt router", args.alt_router, "true", False))
                runs.append(("alt router, trusted proxy", args.alt_router, "true", True))
            confs = []
            for i, (name, binary, flag, trusted) in enumerate(runs):
                rconf, r_port = router_conf(work, f"callgrind-{i}", tenants, up_port, flag, trusted)
                confs.append((name, binary, rconf, r_port, trusted_script if trusted else None))
            count_instructions(rel, work, confs,
                               lambda: nginx_proxy_conf(work, hosts, ids, up_port),
                               up_port, script, log)
            return

        targets = []
        # Ceiling: the upstream on its own core, no proxy.
        d_port = free_port()
        conf = nginx_conf(work, "direct",
                          "  server { listen 127.0.0.1:%d; keepalive_requests 100000;\n"
                          "    location / { default_type text/plain; return 200 '%s'; } }" % (d_port, BODY))
        p = start(["nginx", "-c", conf, "-p", work], log, 1)
        procs.append(p)
        targets.append(Target("upstream direct", d_port, p))

        # Floor: bare Pingora.
        b_port = free_port()
        p = start([os.path.join(rel, "bare-proxy"), f"127.0.0.1:{b_port}", f"127.0.0.1:{up_port}", "1"], log, 1)
        procs.append(p)
        targets.append(Target("bare pingora", b_port, p))

        # Our router: static tenant file, one thread; once with the access log on (to a file),
        # once without, to show what the log line costs.
        # (`--alt-router`: a second build, log on, in the same rounds.)
        routers = [("our router", os.path.join(rel, "router"), "true", "true"),
                   ("our router, no log", os.path.join(rel, "router"), "false", "false")]
        if args.alt_router:
            routers.append(("alt router", args.alt_router, "alt", "true"))
        limits = {}
        if not args.no_limits:
            # Redis for the shared limits, on the loopback like everything else.
            redis_port = free_port()
            procs.append(start(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                                "--save", "", "--appendonly", "no"], log, 0))
            wait_port(redis_port)
            routers.append(("router, limits local", os.path.join(rel, "router"), "limits-local", "true"))
            routers.append(("router, limits redis", os.path.join(rel, "router"), "limits-redis", "true"))
            limits = {"limits-local": LIMITS_ON,
                      "limits-redis": LIMITS_ON + f'[redis]\nurl = "redis://127.0.0.1:{redis_port}/0"\n'}
        for label, binary, name, access_log in routers:
            rconf, r_port = router_conf(work, name, tenants, up_port, access_log,
                                        extra=limits.get(name, LIMITS_OFF))
            rlog = open(os.path.join(work, f"router-{name}.log"), "w")
            env = {"PATH": os.environ.get("PATH", "")}
            p = start([binary, "--config", rconf, "serve"], rlog, 1, env)
            procs.append(p)
            targets.append(Target(label, r_port, p))
        conf, n_port = nginx_proxy_conf(work, hosts, ids, up_port)
        p = start(["nginx", "-c", conf, "-p", work], log, 1)
        procs.append(p)
        targets.append(Target("nginx", n_port, p))
        if not args.no_limits:
            conf, l_port = nginx_proxy_conf(work, hosts, ids, up_port, limit=True)
            p = start(["nginx", "-c", conf, "-p", work], log, 1)
            procs.append(p)
            targets.append(Target("nginx, limit_req", l_port, p))

        for t in targets:
            wait_port(t.port)
        time.sleep(1.5)  # first health checks
        for t in targets:  # warm-up, not recorded
            wrk(t.port, 2, args.connections, script)
        for rnd in range(args.rounds):
            order = targets if rnd % 2 == 0 else list(reversed(targets))
            for t in order:
                pids = tree(t.proc.pid)
                c0 = cpu_seconds(pids)
                r = wrk(t.port, args.seconds, args.connections, script)
                r["cpu_us_per_req"] = (cpu_seconds(pids) - c0) / r["requests"] * 1e6
                t.runs.append(r)
                print(f"round {rnd + 1}: {t.name:16} {r['rps']:>9.0f} req/s  p50 {r['p50']:.2f} ms  "
                      f"p99 {r['p99']:.2f} ms  {r['cpu_us_per_req']:.1f} us CPU/req"
                      + (f"  non-2xx {r['non2xx']}" if r["non2xx"] else "")
                      + (f"  socket errors {r['socket_errors']}" if r["socket_errors"] else ""),
                      flush=True)

        def med(t, k):
            return statistics.median(r[k] for r in t.runs)
        print()
        print(f"Median of {args.rounds} rounds, {args.seconds}s each, {args.connections} connections, "
              f"1 KiB responses, {args.tenants} tenants, one worker thread per proxy")
        print(f"{'target':18}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}{'peak RSS MiB':>14}")
        res = {}
        for t in targets:
            res[t.name] = {k: med(t, k) for k in ("rps", "p50", "p99", "cpu_us_per_req")}
            res[t.name]["rss"] = peak_rss_mib(tree(t.proc.pid))
            v = res[t.name]
            print(f"{t.name:18}{v['rps']:>10.0f}{v['p50']:>9.2f}{v['p99']:>9.2f}"
                  f"{v['cpu_us_per_req']:>12.1f}{v['rss']:>14.1f}")
        ours, bare, ngx = res["our router"], res["bare pingora"], res["nginx"]
        quiet = res["our router, no log"]
        print()
        print(f"our router / nginx:        {ours['rps'] / ngx['rps']:.2f}x throughput, "
              f"p99 {ours['p99'] / ngx['p99']:.2f}x, CPU/req {ours['cpu_us_per_req'] / ngx['cpu_us_per_req']:.2f}x")
        print(f"our router / bare pingora: {ours['rps'] / bare['rps']:.2f}x throughput, "
              f"tenant logic costs {(ours['cpu_us_per_req'] / bare['cpu_us_per_req'] - 1) * 100:.0f}% CPU/req over the floor")
        print(f"access log line:           {ours['cpu_us_per_req'] - quiet['cpu_us_per_req']:.1f} us CPU/req "
              f"(no-log router / bare pingora: {quiet['cpu_us_per_req'] / bare['cpu_us_per_req']:.2f}x CPU/req)")
        print(f"nginx / upstream direct:   {ngx['rps'] / res['upstream direct']['rps']:.2f}x")
        # Rounds alternate, so each round's targets ran minutes apart at most: the ratio within
        # a round is less exposed to this VM's drift than a ratio of medians.
        def paired(a, b, k):
            return sorted(x[k] / y[k] for x, y in zip(a.runs, b.runs))
        by = {t.name: t for t in targets}
        pairs = [("alt router / our router CPU/req", "alt router", "our router", "cpu_us_per_req")] \
            if args.alt_router else []
        if not args.no_limits:
            pairs += [("limits local / off req/s", "router, limits local", "our router", "rps"),
                      ("limits redis / off req/s", "router, limits redis", "our router", "rps"),
                      ("nginx limit_req / nginx req/s", "nginx, limit_req", "nginx", "rps")]
            for label in ("router, limits local", "router, limits redis"):
                print(f"{label + ' vs off:':27}{(res[label]['rps'] / ours['rps'] - 1) * 100:+.1f}% req/s, "
                      f"p99 {(res[label]['p99'] - ours['p99']) * 1000:+.0f} us, "
                      f"CPU/req {res[label]['cpu_us_per_req'] - ours['cpu_us_per_req']:+.1f} us")
            nl = res["nginx, limit_req"]
            print(f"{'nginx limit_req vs nginx:':27}{(nl['rps'] / ngx['rps'] - 1) * 100:+.1f}% req/s, "
                  f"p99 {(nl['p99'] - ngx['p99']) * 1000:+.0f} us")
        for label, a, b, k in pairs + [
                ("our router / bare CPU/req", "our router", "bare pingora", "cpu_us_per_req"),
                ("no-log router / bare CPU/req", "our router, no log", "bare pingora", "cpu_us_per_req"),
                ("our router / nginx req/s", "our router", "nginx", "rps"),
                ("our router / nginx p99", "our router", "nginx", "p99")]:
            rs = paired(by[a], by[b], k)
            print(f"per round, {label:29} median {statistics.median(rs):.2f}x "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in rs)})")
        if args.big_tenants:
            res["big"] = big_tenants(args, rel, work, up_port, log, procs)
        with open(os.path.join(work, "results.json"), "w") as f:
            json.dump(res, f, indent=1)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        if os.environ.get("KEEP_BENCH_DIR"):
            print(f"kept {work}")
        else:
            subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
