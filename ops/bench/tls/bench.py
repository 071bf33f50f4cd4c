#!/usr/bin/env python3
"""TLS benchmark: our router's TLS listener against nginx (Debian, OpenSSL 3.0) with the same
ECDSA P-256 certificate, in one run, with 10,000 certificates loaded in ours.

Measured per target (both pinned to CPU 1 with one worker; clients on CPU 0):
- full TLS 1.3 handshakes (`openssl s_time -new`) and resumed ones (`-reuse`): rate, and the
  server's CPU per handshake from /proc/PID/stat before and after (s_time is client-bound, so
  the rate mostly measures the client; the CPU figure is the server's cost). Each connection
  asks for `/health`, which both answer themselves with a 404, so the TLS 1.3 tickets are read
  and no upstream is involved;
- keep-alive HTTP/2 through the proxy to one nginx upstream (`h2load -c 64 -m 1`): req/s and
  server CPU per request;
- our router's start-up load time and RSS with 10,000 certificates, and a resumed handshake
  on a second router instance sharing the database.

Rounds alternate between targets. Every process started here is stopped by PID.
"""
import argparse
import datetime
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from procs import cpu_seconds, free_port, rss_mib, start, tree, wait_port  # noqa: E402

HOST = "bench.platform.test"


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(work, n):
    """A CA, the bench leaf (shared with nginx, own key), and n leaves for the store."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("TLS bench CA")).issuer_name(name("TLS bench CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(dns, key, serial):
        return (x509.CertificateBuilder().subject_name(name(dns)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(serial)
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
                .sign(ca_key, hashes.SHA256()))

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode()
    bench_key = ec.generate_private_key(ec.SECP256R1())
    bench = leaf(HOST, bench_key, 2)
    files = {}
    for fname, text in [("ca.pem", ca.public_bytes(serialization.Encoding.PEM).decode()),
                        ("bench.pem", bench.public_bytes(serialization.Encoding.PEM).decode()),
                        ("bench.key", pem_key(bench_key))]:
        files[fname] = os.path.join(work, fname)
        with open(files[fname], "w") as f:
            f.write(text)
    shared = ec.generate_private_key(ec.SECP256R1())
    rows = [(HOST, open(files["bench.pem"]).read(), pem_key(bench_key))]
    shared_pem = pem_key(shared)
    for i in range(n):
        dns = f"site{i}.example.org"
        rows.append((dns, leaf(dns, shared, 100 + i).public_bytes(serialization.Encoding.PEM).decode(), shared_pem))
    return files, rows


def seal(key, plain, context):
    nonce = os.urandom(12)
    return b"\x01" + nonce + AESGCM(key).encrypt(nonce, plain.encode(), context.encode())


def load_store(owner, rows, key, work):
    """Writes the certificates as the router's store does (sealed keys) with one COPY."""
    path = os.path.join(work, "certs.csv")
    with open(path, "w") as f:
        for dns, chain, pem in rows:
            sealed = seal(key, pem, f"certificate-key:{dns}").hex()
            chain_q = chain.replace('"', '""')
            f.write(f'{dns},issued,"{chain_q}",\\x{sealed},now(),now() + interval \'30 days\'\n')
    # not_before/not_after via a staging table: COPY cannot evaluate now().
    sql = (
        "CREATE TEMP TABLE c (domain text, status text, chain_pem text, k bytea, nb text, na text);\n"
        f"\\copy c FROM '{path}' CSV\n"
        "INSERT INTO certificates (domain, status, chain_pem, private_key_encrypted, not_before, not_after, renew_after) "
        "SELECT domain, status, chain_pem, k, now(), now() + interval '30 days', now() + interval '20 days' FROM c;\n"
        "INSERT INTO tenants (slug, name, status, plan_id) VALUES ('bench', 'Bench', 'active', 'growth');\n"
    )
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", owner], input=sql, text=True, check=True)


def router_conf(work, tag, db_url, key_hex, up_port):
    ports = {"http": free_port(), "https": free_port(), "metrics": free_port()}
    path = os.path.join(work, f"router-{tag}.toml")
    with open(path, "w") as f:
        f.write(f'access_log = false\n[domain]\nbase_domain = "platform.test"\n'
                f'[database]\nurl = "{db_url}"\nmax_connections = 4\n'
                f'[listen]\nhttp = "127.0.0.1:{ports["http"]}"\nhttps = "127.0.0.1:{ports["https"]}"\n'
                f'metrics = "127.0.0.1:{ports["metrics"]}"\n'
                f'[tls]\nencryption_key = "{key_hex}"\n'
                f'[upstreams]\nplatform = ["127.0.0.1:{up_port}"]\nworkers = []\n'
                f'[edge]\nsigning_secret = "bench-secret-0123456789abcdef0123456789"\n'
                f'[rate_limits]\nenabled = false\n'
                f'[lifecycle]\nthreads = 1\nshutdown_timeout_secs = 1\n'
                f'upgrade_sock = "{work}/up-{tag}.sock"\npid_file = "{work}/router-{tag}.pid"\n'
                f'[log]\nformat = "json"\nlevel = "info"\n')
    return path, ports


def nginx_conf(work, tag, body):
    path = os.path.join(work, f"{tag}.conf")
    with open(path, "w") as f:
        f.write("daemon off; worker_processes 1; pid %s/%s.pid; error_log %s/%s.error.log warn;\n"
                "events { worker_connections 4096; }\n"
                "http {\n  access_log off;\n  client_body_temp_path %s; proxy_temp_path %s;\n"
                "  fastcgi_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n%s\n}\n"
                % (work, tag, work, tag, work, work, work, work, work, body))
    return path


def s_time(port, seconds, reuse):
    out = subprocess.run(
        ["taskset", "-c", "0", "openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-tls1_3",
         "-reuse" if reuse else "-new", "-time", str(seconds), "-www", "/health"],
        capture_output=True, text=True, input="").stdout
    # The first summary is the -new run (or, with -reuse, the one full handshake before reuse).
    # "N connections in T real seconds": the wall-clock rate (the other line is per user second).
    m = re.findall(r"(\d+) connections in ([\d.]+) real seconds", out)
    if not m:
        raise SystemExit(f"s_time said:\n{out}")
    conns, secs = int(m[-1][0]), float(m[-1][1])
    # s_time prints one character per connection: 'r' when the session was reused, '*' when not.
    marks = "".join(l for l in out.splitlines() if l and set(l) <= {"r", "*"})
    reused = marks.count("r") / max(len(marks), 1)
    return conns, conns / secs, reused


def h2load(port, seconds):
    out = subprocess.run(
        ["taskset", "-c", "0", "h2load", "-t1", "-c64", "-m1", "-D", str(seconds), "--warm-up-time=1",
         "--connect-to", f"127.0.0.1:{port}", f"https://{HOST}/echo"],
        capture_output=True, text=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
    ok = int(re.search(r"status codes: (\d+) 2xx", out).group(1))
    return rps, done, ok


def metrics(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def metric(text, series):
    m = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--db", required=True, help="router login URL")
    ap.add_argument("--owner", required=True, help="superuser URL")
    ap.add_argument("--certs", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = args.work
    procs = []
    log = open(os.path.join(work, "bench.log"), "w")
    try:
        t0 = time.time()
        files, rows = make_certs(work, args.certs)
        key = os.urandom(32)
        load_store(args.owner, rows, key, work)
        print(f"{len(rows):,} certificates made and stored in {time.time() - t0:.1f} s")

        up_port = free_port()
        up = nginx_conf(work, "upstream",
                        f"  keepalive_requests 1000000;\n"
                        f"  server {{ listen 127.0.0.1:{up_port} reuseport backlog=4096;\n"
                        f"    location / {{ return 200 '{'x' * 1024}'; }} }}")
        procs.append(start(["nginx", "-c", up, "-e", f"{work}/upstream.err"], log, 0))
        wait_port(up_port)

        rconf, rports = router_conf(work, "a", args.db, key.hex(), up_port)
        t = time.time()
        router = start([args.bin, "--config", rconf, "serve"], log, 1, {"PATH": os.environ.get("PATH", "")})
        procs.append(router)
        wait_port(rports["https"], 120)
        ready = time.time() - t
        time.sleep(1)
        m = metrics(rports["metrics"])
        print(f"router: {metric(m, 'router_tls_certificates'):.0f} certificates loaded in "
              f"{metric(m, 'router_tls_load_seconds'):.3f} s (HTTPS port open {ready:.2f} s after exec); "
              f"RSS {rss_mib(router.pid):.1f} MiB")

        n_port = free_port()
        ngx = nginx_conf(work, "nginx", (
            # nginx closes a connection after 1,000 requests by default (h2 included); the router
            # does not, so lift the limit on both sides for a like-for-like keep-alive run.
            f"  keepalive_requests 1000000;\n"
            f"  upstream platform {{ server 127.0.0.1:{up_port}; keepalive 64; keepalive_requests 1000000; }}\n"
            f"  server {{ listen 127.0.0.1:{n_port} ssl http2 reuseport backlog=4096; server_name {HOST};\n"
            f"    ssl_certificate {files['bench.pem']}; ssl_certificate_key {files['bench.key']};\n"
            f"    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on; ssl_session_cache shared:S:10m;\n"
            f"    location = /health {{ return 404; }}\n"
            f"    location / {{ proxy_pass http://platform; proxy_http_version 1.1;\n"
            f"      proxy_set_header Connection \"\"; proxy_set_header Host $host;\n"
            # The router's work per request: forwarding headers out, security headers back.
            f"      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto https;\n"
            f"      proxy_set_header X-Forwarded-Host $host; proxy_set_header X-Real-IP $remote_addr;\n"
            f"      proxy_set_header X-Request-Id $request_id;\n"
            f"      add_header Strict-Transport-Security \"max-age=63072000; includeSubDomains\" always;\n"
            f"      add_header X-Content-Type-Options nosniff always; add_header X-Frame-Options SAMEORIGIN always;\n"
            f"      add_header Referrer-Policy strict-origin-when-cross-origin always;\n"
            f"      add_header Permissions-Policy \"camera=(), microphone=(), geolocation=(), payment=(self)\" always;\n"
            f"      add_header X-Request-Id $request_id always; }} }}"))
        nginx = start(["nginx", "-c", ngx, "-e", f"{work}/nginx.err"], log, 1)
        procs.append(nginx)
        wait_port(n_port)
        targets = {"router": (rports["https"], lambda: [router.pid]),
                   "nginx": (n_port, lambda: tree(nginx.pid))}

        results = {k: {"full": [], "resumed": [], "h2": []} for k in targets}
        for rnd in range(args.rounds):
            for tag, (port, pids) in targets.items():
                for kind, reuse in [("full", False), ("resumed", True)]:
                    c0 = cpu_seconds(pids())
                    conns, rate, reused = s_time(port, args.seconds, reuse)
                    cpu = cpu_seconds(pids()) - c0
                    results[tag][kind].append((rate, cpu / conns * 1e6, reused))
                c0 = cpu_seconds(pids())
                rps, done, ok = h2load(port, args.seconds)
                cpu = cpu_seconds(pids()) - c0
                results[tag]["h2"].append((rps, cpu / max(done, 1) * 1e6, done - ok))
            print(f"round {rnd + 1}/{args.rounds} done ({os.getloadavg()[0]:.2f} load)")

        m = metrics(rports["metrics"])
        resumed = metric(m, 'router_tls_handshakes_total{version="TLSv1.3",kind="resumed"}')
        full = metric(m, 'router_tls_handshakes_total{version="TLSv1.3",kind="full"}')
        print(f"\nrouter handshakes counted: TLS 1.3 full {full:.0f}, resumed {resumed:.0f}")

        def med(xs, i):
            v = [x[i] for x in xs]
            return statistics.median(v), min(v), max(v)
        print("\n| measure | router | nginx | router / nginx |\n|---|---|---|---|")
        rows_out = [("full TLS 1.3 handshakes/s (client-bound)", "full", 0, "{:.0f}"),
                    ("server CPU per full handshake, µs", "full", 1, "{:.0f}"),
                    ("resumed TLS 1.3 handshakes/s (client-bound)", "resumed", 0, "{:.0f}"),
                    ("server CPU per resumed handshake, µs", "resumed", 1, "{:.0f}"),
                    ("h2 keep-alive req/s (h2load -c 64)", "h2", 0, "{:.0f}"),
                    ("server CPU per h2 request, µs", "h2", 1, "{:.1f}")]
        for label, kind, i, fmt in rows_out:
            r, n = med(results["router"][kind], i), med(results["nginx"][kind], i)
            cell = lambda x: f"{fmt.format(x[0])} ({fmt.format(x[1])}–{fmt.format(x[2])})"
            print(f"| {label} | {cell(r)} | {cell(n)} | {r[0] / n[0]:.2f}× |")
        for tag in results:
            full = statistics.mean(x[2] for x in results[tag]["full"])
            res = statistics.mean(x[2] for x in results[tag]["resumed"])
            print(f"{tag}: sessions reused in the -new runs {full:.0%}, in the -reuse runs {res:.0%} (s_time's marks)")
        errs = {k: sum(x[2] for x in v["h2"]) for k, v in results.items()}
        print(f"\nh2 non-2xx: {errs}")

        # A second instance sharing the database resumes a session the first one issued.
        rconf_b, rports_b = router_conf(work, "b", args.db, key.hex(), up_port)
        rb = start([args.bin, "--config", rconf_b, "serve"], log, 0, {"PATH": os.environ.get("PATH", "")})
        procs.append(rb)
        wait_port(rports_b["https"], 120)
        sess = os.path.join(work, "sess.pem")

        def s_client(port, flag):
            return subprocess.run(
                ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", HOST, "-tls1_3",
                 "-CAfile", files["ca.pem"], flag, sess, "-ign_eof"],
                input="GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % HOST,
                capture_output=True, text=True, timeout=20).stdout
        s_client(rports["https"], "-sess_out")
        out = s_client(rports_b["https"], "-sess_in")
        print("second instance:", "Reused, TLSv1.3" if "Reused, TLSv1.3" in out else "NOT resumed")
        print(f"router RSS after the runs: {rss_mib(router.pid):.1f} MiB (peak {rss_mib(router.pid, 'VmHWM'):.1f} MiB)")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
