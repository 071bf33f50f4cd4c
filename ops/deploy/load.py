#!/usr/bin/env python3
"""Bounded load for the deploy test: CONCURRENCY keep-alive clients for SECONDS against the
router, alternating a tenant page (GET /) and a donation POST with bad input (the platform
answers it 4xx: served). Prints the counts as one JSON line; exits 1 if any request failed
(a 5xx, or a connection error / timeout).

usage: load.py ROUTER_ADDR HOST SECONDS CONCURRENCY
"""

import http.client
import json
import sys
import threading
import time


def client(addr, host, deadline, counts, lock):
    ip, port = addr.rsplit(":", 1)
    conn = None
    i = 0
    while time.monotonic() < deadline:
        i += 1
        if conn is None:
            conn = http.client.HTTPConnection(ip, int(port), timeout=10)
        try:
            if i % 2:
                conn.request("GET", "/", headers={"host": host})
                kind = "get"
            else:
                conn.request(
                    "POST",
                    "/api/donations",
                    body=b'{"amount_minor": -1}',
                    headers={"host": host, "content-type": "application/json"},
                )
                kind = "post"
            resp = conn.getresponse()
            resp.read()
            status = resp.status
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            status = "error:" + type(e).__name__
            conn.close()
            conn = None
        with lock:
            key = f"{kind} {status}"
            counts[key] = counts.get(key, 0) + 1


def main():
    addr, host, seconds, concurrency = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    counts, lock = {}, threading.Lock()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(addr, host, deadline, counts, lock))
        for _ in range(concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(counts.values())
    failed = sum(n for k, n in counts.items() if k.split()[1].startswith(("5", "error")))
    print(json.dumps({"total": total, "failed": failed, "by_status": dict(sorted(counts.items()))}))
    sys.exit(1 if failed or total == 0 else 0)


if __name__ == "__main__":
    main()
