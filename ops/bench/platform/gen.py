"""Writes the request lists that ops/bench/platform/requests.lua replays with wrk.

  gen.py direct <secret> <tenants.tsv> <out>   signed requests straight to the platform
  gen.py router <tenants.tsv> <out>            Host-header requests through the router

Each output line is one request's headers as tab-separated name/value pairs.

tenants.tsv has one "<id>\\t<slug>" line per tenant. Requests cycle through the tenants in
order, so with more tenants than requests in a run every request is a cache miss ("uncached");
with one tenant every request after the first is a hit ("cached"). Direct requests carry a
signature made now (the run sets EDGE_MAX_SKEW_SECS so it stays valid for the run).
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


def direct(secret, rows, out):
    ts = str(int(time.time()))
    signed = []
    for i, (tid, slug) in enumerate(rows):
        host = f"{slug}.{BASE}"
        rid = f"bench-{i}"
        msg = "\n".join(["v1", ts, rid, "tenant", tid, host]).encode()
        sig = hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
        signed.append({
            "x-request-id": rid, "x-route": "tenant", "x-original-host": host,
            "x-tenant-id": tid, "x-tenant-slug": slug, "x-edge-signature": f"t={ts},v1={sig}",
        })
    write(out, signed)


def router(rows, out):
    write(out, [{"Host": f"{slug}.{BASE}"} for _, slug in rows])


if __name__ == "__main__":
    if sys.argv[1] == "direct":
        direct(sys.argv[2], tenants(sys.argv[3]), sys.argv[4])
    else:
        router(tenants(sys.argv[2]), sys.argv[3])
