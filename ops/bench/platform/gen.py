"""Writes the request lists that ops/bench/platform/requests.lua replays with wrk.

  gen.py direct <secret> <tenants.tsv> <out> [path=/api/tenant] [count]
      signed GET requests straight to the platform
  gen.py router <tenants.tsv> <out>
      Host-header requests through the router

Each output line is one request's headers as tab-separated name/value pairs.

tenants.tsv has one "<id>\\t<slug>" line per tenant. Requests cycle through the tenants in
order, so with more tenants than requests in a run every request is a cache miss ("uncached");
with one tenant every request after the first is a hit ("cached").

Direct requests carry the router's v2 edge signature made now (the run sets EDGE_MAX_SKEW_SECS
so it stays valid for the run), which binds method, target and Content-Length, and each has its
own request id: the platform refuses a request id it has seen (replay protection), so `count`
lines are written (default: one per tenant) and a run must not replay the list.
"""

import hashlib
import hmac
import sys
import time

BASE = "platform.test"


def tenants(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def write(out, rows):
    with open(out, "w") as f:
        for headers in rows:
            for k, v in headers.items():
                # Ids, slugs, hosts and hex: never a tab or newline.
                assert "\t" not in v and "\n" not in v, v
            f.write("\t".join(f"{k}\t{v}" for k, v in headers.items()) + "\n")


def direct(secret, rows, out, path, count):
    ts = str(int(time.time()))
    run = hashlib.sha256(ts.encode() + out.encode()).hexdigest()[:8]
    signed = []
    for i in range(count):
        tid, slug = rows[i % len(rows)]
        host = f"{slug}.{BASE}"
        rid = f"bench-{run}-{i}"
        # v2: fields joined by newlines; no body, so Content-Length is "-".
        msg = "\n".join(["v2", ts, rid, rid, "tenant", tid, host, "GET", path, "-"]).encode()
        sig = hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
        signed.append({
            "x-request-id": rid, "x-route": "tenant", "x-original-host": host,
            "x-tenant-id": tid, "x-tenant-slug": slug, "x-edge-signature": f"t={ts},n={rid},v2={sig}",
        })
    write(out, signed)


def router(rows, out):
    write(out, [{"Host": f"{slug}.{BASE}"} for _, slug in rows])


if __name__ == "__main__":
    if sys.argv[1] == "direct":
        rows = tenants(sys.argv[3])
        path = sys.argv[5] if len(sys.argv) > 5 else "/api/tenant"
        count = int(sys.argv[6]) if len(sys.argv) > 6 else len(rows)
        direct(sys.argv[2], rows, sys.argv[4], path, count)
    else:
        router(tenants(sys.argv[2]), sys.argv[3])
