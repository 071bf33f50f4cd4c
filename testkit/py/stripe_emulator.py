"""Stripe emulator for tests: localstripe behind a recording proxy, both on 127.0.0.1.

Usage: python3 stripe_emulator.py <proxy-port> <localstripe-port>
           [--relay-to URL --relay-secret SECRET] [--relay-platform-url URL]

The proxy records every API request (method, path, form parameters, Stripe-Account,
Idempotency-Key) and serves the recording at GET /_recording (POST /_recording/clear empties
it). It forwards everything to localstripe except the Connect parameters localstripe rejects
("Unexpected application_fee_amount" / "application_fee_percent"): those are removed from the
forwarded body only, so tests assert on what our client really sent and on localstripe's state.

localstripe has no Connect account endpoints, and no other Stripe emulator can be installed
here, so the proxy itself answers POST /v1/accounts (Express accounts, deterministic per
Idempotency-Key as Stripe is) and POST /v1/account_links. That is the one mocked part; it is
named in the tests that use it.

Webhook relay (off unless configured, so tests that drive webhooks themselves see none):
localstripe ignores `Stripe-Account`, and its events name no `account`, while the platform's
Connect endpoint applies only events that name the connected account. With `--relay-to URL`
and `--relay-secret SECRET` (or the environment variables RELAY_TO_URL and RELAY_SECRET):

- the proxy remembers which `Stripe-Account` created or touched each object: ids in the
  request path and form, and every object id and reference in the proxied response;
- it registers its own `POST /_relay` as localstripe's webhook endpoint
  (`POST /_config/webhooks/relay` with a secret of its own);
- for each event it checks localstripe's signature, sets `"account"` from the owner of
  `data.object` (by its id, else by its payment_intent, subscription, invoice, customer or
  charge field), signs the new body with SECRET (`Stripe-Signature: t=…,v1=…`, HMAC-SHA256 of
  "t.body") and POSTs it to URL (retrying a connection error or a 5xx twice);
- localstripe emits `invoice.payment_succeeded` but never `invoice.paid`, which Stripe sends
  beside it; the relay sends an `invoice.paid` copy too (event id derived from the original);
- events about objects no connected account touched go to `--relay-platform-url` (env
  RELAY_PLATFORM_URL) unchanged but re-signed when that is set, else they are dropped.

GET /_relay/log lists every relayed event (id, type, account, target, HTTP status or error).

localstripe keeps its state in memory; its pickle file in /tmp is disabled so parallel test
runs never share or corrupt state.
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import time
from urllib.parse import parse_qsl, urlencode

from aiohttp import ClientSession, ClientTimeout, web

import localstripe.resources as resources
from localstripe.server import app as stripe_app

# Connect parameters real Stripe needs and localstripe refuses.
STRIPPED = ("application_fee_amount", "application_fee_percent")

# Object id prefixes whose owner (connected account) the relay remembers.
ID = re.compile(
    r"^(pi|sub|in|cus|ch|pm|plan|prod|re|seti|src|card|tok|ii|si|py|txn|dp|price)_[A-Za-z0-9]+$")
# Fields of an object that name another object of the same account.
REFERENCES = ("payment_intent", "subscription", "invoice", "customer", "charge",
              "latest_charge", "payment_method", "default_payment_method", "plan", "product")
# Fields of an event's object, in the order the relay tries them to find its account.
ATTRIBUTION = ("payment_intent", "subscription", "invoice", "customer", "charge")
# How long the relay waits for the proxied response that names an event's object (localstripe
# sends its events a second after the change; the proxy normally has the answer long before).
ATTRIBUTION_WAIT_SECS = 5.0

resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None


def parse_args(argv):
    p = argparse.ArgumentParser(description="localstripe behind a recording proxy")
    p.add_argument("proxy_port", type=int)
    p.add_argument("stripe_port", type=int)
    p.add_argument("--relay-to", default=os.environ.get("RELAY_TO_URL") or None,
                   help="Connect webhook URL to deliver events to (env RELAY_TO_URL)")
    p.add_argument("--relay-secret", default=os.environ.get("RELAY_SECRET") or None,
                   help="webhook signing secret the receiver checks (env RELAY_SECRET)")
    p.add_argument("--relay-platform-url", default=os.environ.get("RELAY_PLATFORM_URL") or None,
                   help="where events of no connected account go (env RELAY_PLATFORM_URL)")
    args = p.parse_args(argv)
    if bool(args.relay_to) != bool(args.relay_secret):
        p.error("--relay-to and --relay-secret (RELAY_TO_URL, RELAY_SECRET) go together")
    if args.relay_platform_url and not args.relay_to:
        p.error("--relay-platform-url needs --relay-to and --relay-secret")
    return args


def sign(secret, body, now=None):
    """A `Stripe-Signature` header value for `body` (bytes)."""
    t = int(time.time()) if now is None else now
    mac = hmac.new(secret.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signature_ok(secret, header, body):
    """Checks a `Stripe-Signature` made by localstripe (`t=…,v1=…`)."""
    parts = dict(p.split("=", 1) for p in (header or "").split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        return False
    want = hmac.new(secret.encode(), parts["t"].encode() + b"." + body,
                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts["v1"])


class Owners:
    """Which connected account each object id belongs to, learned from proxied traffic."""

    def __init__(self):
        self.by_id = {}

    def claim(self, value, account):
        if isinstance(value, str) and ID.match(value):
            self.by_id.setdefault(value, account)

    def learn_request(self, path, params, account):
        for segment in path.split("/"):
            self.claim(segment, account)
        for _, v in params:
            self.claim(v, account)

    def learn_response(self, node, account):
        if isinstance(node, dict):
            self.claim(node.get("id"), account)
            for key, value in node.items():
                if key in REFERENCES:
                    self.claim(value, account)
                if isinstance(value, (dict, list)):
                    self.learn_response(value, account)
        elif isinstance(node, list):
            for item in node:
                self.learn_response(item, account)

    def account_for(self, obj):
        """The account owning an event's object, or None."""
        if not isinstance(obj, dict):
            return None
        candidates = [obj.get("id")]
        for key in ATTRIBUTION:
            ref = obj.get(key)
            candidates.append(ref.get("id") if isinstance(ref, dict) else ref)
        for c in candidates:
            if isinstance(c, str) and c in self.by_id:
                return self.by_id[c]
        return None


def main():
    args = parse_args(sys.argv[1:])
    proxy_port, stripe_port = args.proxy_port, args.stripe_port
    upstream = f"http://127.0.0.1:{stripe_port}"
    recording = []
    owners = Owners()
    relay_log = []
    # What localstripe signs its deliveries to /_relay with: ours alone, never the receiver's.
    inbound_secret = "whsec_relay_" + secrets.token_hex(16)

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
        account = request.headers.get("Stripe-Account")
        recording.append({
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "params": params,
            "stripe_account": account,
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
            if account and args.relay_to and resp.status < 400:
                owners.learn_request(request.path, params, account)
                try:
                    owners.learn_response(json.loads(payload), account)
                except ValueError:
                    pass
            return web.Response(status=resp.status, body=payload,
                                content_type="application/json")

    async def deliver(session, url, event):
        """POSTs one event, signed for the receiver; returns the status (or the error)."""
        body = json.dumps(event, separators=(",", ":")).encode()
        outcome = None
        for attempt in range(3):
            if attempt:
                await asyncio.sleep(attempt)
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "Stripe-Signature": sign(args.relay_secret, body)}
            try:
                async with session.post(url, data=body, headers=headers,
                                        timeout=ClientTimeout(total=15)) as r:
                    await r.read()
                    outcome = r.status
                    if r.status < 500:
                        break
            except (OSError, asyncio.TimeoutError) as e:
                outcome = f"error: {e.__class__.__name__}: {e}"
        relay_log.append({"event": event.get("id"), "type": event.get("type"),
                          "account": event.get("account"), "target": url,
                          "status": outcome})
        return outcome

    async def relay(request):
        body = await request.read()
        if not signature_ok(inbound_secret, request.headers.get("Stripe-Signature"), body):
            return web.json_response({"error": "bad signature"}, status=400)
        event = json.loads(body)
        obj = (event.get("data") or {}).get("object")
        account = owners.account_for(obj)
        deadline = time.monotonic() + ATTRIBUTION_WAIT_SECS
        while account is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            account = owners.account_for(obj)
        if account is None:
            target = args.relay_platform_url
        else:
            event["account"] = account
            target = args.relay_to
        if target is None:
            relay_log.append({"event": event.get("id"), "type": event.get("type"),
                              "account": None, "target": None, "status": "dropped"})
            return web.json_response({"relayed": False})
        events = [event]
        if event.get("type") == "invoice.payment_succeeded":
            paid = dict(event, type="invoice.paid")
            digest = hashlib.sha256(f"{event.get('id')}:invoice.paid".encode()).hexdigest()
            paid["id"] = "evt_" + digest[:24]
            events.append(paid)
        statuses = [await deliver(request.app["session"], target, e) for e in events]
        return web.json_response({"relayed": True, "statuses": statuses})

    async def get_relay_log(_request):
        return web.json_response(relay_log)

    async def on_startup(app):
        app["session"] = ClientSession()

    async def on_cleanup(app):
        await app["session"].close()

    proxy = web.Application()
    proxy.on_startup.append(on_startup)
    proxy.on_cleanup.append(on_cleanup)
    proxy.router.add_get("/_recording", get_recording)
    proxy.router.add_post("/_recording/clear", clear_recording)
    proxy.router.add_post("/_relay", relay)
    proxy.router.add_get("/_relay/log", get_relay_log)
    proxy.router.add_route("*", "/{tail:.*}", forward)

    async def register_relay():
        """Points localstripe's webhooks at /_relay through its own configuration endpoint."""
        async with ClientSession() as s:
            async with s.post(f"{upstream}/_config/webhooks/relay",
                              json={"url": f"http://127.0.0.1:{proxy_port}/_relay",
                                    "secret": inbound_secret}) as r:
                if r.status != 200:
                    raise SystemExit(f"stripe_emulator: webhook registration failed: {r.status}")

    async def run():
        runners = []
        for application, port in ((stripe_app, stripe_port), (proxy, proxy_port)):
            runner = web.AppRunner(application, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        if args.relay_to:
            await register_relay()
            print(f"relaying webhooks to {args.relay_to}", flush=True)
        print("READY", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            for r in runners:
                await r.cleanup()

    asyncio.run(run())


if __name__ == "__main__":
    main()
