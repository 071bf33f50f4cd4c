"""Writes the wrk Lua scripts for ops/bench/platform/run.sh.

  gen.py direct <secret> <tenants.tsv> <out.lua>   signed requests straight to the platform
  gen.py router <tenants.tsv> <out.lua>            Host-header requests through the router

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


def lua_string(s):
    # Every value here is an id, slug, host, hex or ASCII header name: no quotes or backslashes.
    assert all(c.isalnum() or c in "-_.=,:" for c in s), s
    return '"' + s + '"'


def direct(secret, rows, out):
    ts = str(int(time.time()))
    with open(out, "w") as f:
        f.write("local reqs = {}\n")
        for i, (tid, slug) in enumerate(rows):
            host = f"{slug}.{BASE}"
            rid = f"bench-{i}"
            msg = "\n".join(["v1", ts, rid, "tenant", tid, host]).encode()
            sig = hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
            headers = {
                "x-request-id": rid, "x-route": "tenant", "x-original-host": host,
                "x-tenant-id": tid, "x-tenant-slug": slug, "x-edge-signature": f"t={ts},v1={sig}",
            }
            fields = ", ".join(f'[{lua_string(k)}] = {lua_string(v)}' for k, v in headers.items())
            f.write(f"reqs[{i + 1}] = wrk.format('GET', '/api/tenant', {{{fields}}})\n")
        f.write(TAIL)


def router(rows, out):
    with open(out, "w") as f:
        f.write("local reqs = {}\n")
        for i, (_, slug) in enumerate(rows):
            f.write(f"reqs[{i + 1}] = wrk.format('GET', '/api/tenant', {{['Host'] = {lua_string(slug + '.' + BASE)}}})\n")
        f.write(TAIL)


# Each wrk thread walks its own slice of the list, so threads never repeat each other's tenants.
TAIL = """
local n = #reqs
local counter = 0
local offset = 0
function setup(thread)
  thread:set("offset", offset)
  offset = offset + math.floor(n / 4)
end
function init(args)
  counter = offset
end
function request()
  counter = counter + 1
  return reqs[(counter - 1) % n + 1]
end
"""

if __name__ == "__main__":
    if sys.argv[1] == "direct":
        direct(sys.argv[2], tenants(sys.argv[3]), sys.argv[4])
    else:
        router(tenants(sys.argv[2]), sys.argv[3])
