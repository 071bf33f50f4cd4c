"""Stripe emulator for tests: localstripe behind a recording proxy, both on 127.0.0.1.

Usage: python3 stripe_emulator.py <proxy-port> <localstripe-port>

The proxy records every API request (method, path, form parameters, Stripe-Account,
Idempotency-Key) and serves the recording at GET /_recording (POST /_recording/clear empties
it). It forwards everything to localstripe except the Connect parameters localstripe rejects
("Unexpected application_fee_amount" / "application_fee_percent"): those are removed from the
forwarded body only, so tests assert on what our client really sent and on localstripe's state.

localstripe has no Connect account endpoints, and no other Stripe emulator can be installed
here, so the proxy itself answers POST /v1/accounts (Express accounts, deterministic per
Idempotency-Key as Stripe is) and POST /v1/account_links. That is the one mocked part; it is
named in the tests that use it.

localstripe keeps its state in memory; its pickle file in /tmp is disabled so parallel test
runs never share or corrupt state.
"""

import asyncio
import json
import secrets
import sys
import time
from urllib.parse import parse_qsl, urlencode

from aiohttp import ClientSession, web

import localstripe.resources as resources
from localstripe.server import app as stripe_app

# Connect parameters real Stripe needs and localstripe refuses.
STRIPPED = ("application_fee_amount", "application_fee_percent")

resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None


def main():
    proxy_port, stripe_port = int(sys.argv[1]), int(sys.argv[2])
    upstream = f"http://127.0.0.1:{stripe_port}"
    recording = []

    async def get_recording(_request):
        return web.json_response(recording)

    async def clear_recording(_request):
        recording.clear()
        return web.json_response({"cleared": True})

    accounts_by_key = {}

    def connect_endpoint(request, params):
        """Answers the Connect endpoints localstripe lacks, or returns None."""
        if request.method != "POST":
            return None
        form = dict(params)
        if request.path == "/v1/accounts":
            key = request.headers.get("Idempotency-Key") or secrets.token_hex(8)
            if key not in accounts_by_key:
                accounts_by_key[key] = {
                    "id": "acct_" + secrets.token_hex(8), "object": "account",
                    "type": form.get("type", "express"), "country": form.get("country"),
                    "email": form.get("email"), "charges_enabled": False,
                    "details_submitted": False, "created": int(time.time()),
                }
            return accounts_by_key[key]
        if request.path == "/v1/account_links":
            return {
                "object": "account_link", "created": int(time.time()),
                "expires_at": int(time.time()) + 300,
                "url": f"http://127.0.0.1:{proxy_port}/_onboarding/{form.get('account', '')}",
            }
        return None

    async def forward(request):
        body = await request.read()
        params = parse_qsl(body.decode("utf-8"), keep_blank_values=True) if body else []
        recording.append({
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "params": params,
            "stripe_account": request.headers.get("Stripe-Account"),
            "idempotency_key": request.headers.get("Idempotency-Key"),
        })
        emulated = connect_endpoint(request, params)
        if emulated is not None:
            return web.json_response(emulated)
        kept = [(k, v) for k, v in params if k not in STRIPPED]
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        async with request.app["session"].request(
                request.method, upstream + request.path_qs,
                data=urlencode(kept) if body else None, headers=headers) as resp:
            payload = await resp.read()
            return web.Response(status=resp.status, body=payload,
                                content_type="application/json")

    async def on_startup(app):
        app["session"] = ClientSession()

    async def on_cleanup(app):
        await app["session"].close()

    proxy = web.Application()
    proxy.on_startup.append(on_startup)
    proxy.on_cleanup.append(on_cleanup)
    proxy.router.add_get("/_recording", get_recording)
    proxy.router.add_post("/_recording/clear", clear_recording)
    proxy.router.add_route("*", "/{tail:.*}", forward)

    async def run():
        runners = []
        for application, port in ((stripe_app, stripe_port), (proxy, proxy_port)):
            runner = web.AppRunner(application, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        print("READY", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            for r in runners:
                await r.cleanup()

    asyncio.run(run())


if __name__ == "__main__":
    json.dumps  # keep the import obvious for readers of recordings
    main()
