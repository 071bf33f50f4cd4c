"""Checks the Stripe emulator's webhook relay (stripe_emulator.py) on loopback.

Usage: python3 testkit/py/test_stripe_relay.py   (run by ops/ci/e2e.sh; prints "N passed, N failed")

A receiver in this process plays the platform's Connect endpoint: it checks each delivery's
Stripe-Signature with the relay secret and keeps the events. The emulator runs as a child
process on free ports and is stopped by PID at the end.
"""

import asyncio
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time

from aiohttp import ClientSession, web

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "whsec_relay_test_secret"
KEY = "sk_test_relay"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def verified(header, body):
    parts = dict(p.split("=", 1) for p in header.split(","))
    if abs(time.time() - int(parts["t"])) > 300:
        return False
    mac = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts["v1"])


async def wait_port(port):
    for _ in range(200):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


class Emulator:
    def __init__(self, relay_to=None):
        self.port, self.inner = free_port(), free_port()
        env = dict(os.environ)
        for k in ("RELAY_TO_URL", "RELAY_SECRET", "RELAY_PLATFORM_URL"):
            env.pop(k, None)
        if relay_to:
            env.update(RELAY_TO_URL=relay_to, RELAY_SECRET=SECRET)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "stripe_emulator.py"), str(self.port), str(self.inner)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def __aenter__(self):
        await wait_port(self.port)
        self.session = ClientSession(headers={"Authorization": f"Bearer {KEY}"})
        return self

    async def __aexit__(self, *exc):
        await self.session.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)

    async def post(self, path, form, account=None):
        headers = {"Stripe-Account": account} if account else {}
        async with self.session.post(f"http://127.0.0.1:{self.port}{path}", data=form,
                                     headers=headers) as r:
            body = await r.json()
            assert r.status == 200, (path, r.status, body)
            return body

    async def relay_log(self):
        async with self.session.get(f"http://127.0.0.1:{self.port}/_relay/log") as r:
            return await r.json()

    async def card(self, account):
        return (await self.post("/v1/payment_methods", {
            "type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123"}, account))["id"]


async def until(what, fn, secs=15):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        found = fn()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def main():
    received = []

    async def hook(request):
        body = await request.read()
        ok = verified(request.headers.get("Stripe-Signature", ""), body)
        received.append((ok, json.loads(body)))
        return web.json_response({"received": True})

    app = web.Application()
    app.router.add_post("/connect", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    results = []

    def check(name, cond, detail=""):
        results.append(cond)
        print(f"{'ok  ' if cond else 'FAIL'}  {name}{'' if cond else ': ' + str(detail)}")

    def events(kind, obj=None):
        return [e for ok, e in received
                if e["type"] == kind and (obj is None or e["data"]["object"]["id"] == obj)]

    async with Emulator(relay_to=f"http://127.0.0.1:{hook_port}/connect") as emu:
        # A one-time charge on a connected account.
        cus = (await emu.post("/v1/customers", {"email": "a@example.org"}, "acct_one"))["id"]
        pm = await emu.card("acct_one")
        pi = await emu.post("/v1/payment_intents", {
            "amount": "2500", "currency": "usd", "customer": cus, "payment_method": pm,
            "confirm": "true", "application_fee_amount": "50"}, "acct_one")
        found = await until("payment_intent.succeeded", lambda: events("payment_intent.succeeded", pi["id"]))
        check("payment_intent.succeeded names the account that created the intent",
              found[0].get("account") == "acct_one", found[0].get("account"))
        check("every delivery is signed with the relay secret", all(ok for ok, _ in received))

        # A subscription on another account: invoice events found through the subscription.
        cus2 = (await emu.post("/v1/customers", {"email": "b@example.org"}, "acct_two"))["id"]
        pm2 = await emu.card("acct_two")
        await emu.post(f"/v1/payment_methods/{pm2}/attach", {"customer": cus2}, "acct_two")
        await emu.post(f"/v1/customers/{cus2}", {"invoice_settings[default_payment_method]": pm2}, "acct_two")
        plan = await emu.post("/v1/plans", {"amount": "1000", "currency": "usd", "interval": "month",
                                            "product[name]": "Monthly gift"}, "acct_two")
        sub = await emu.post("/v1/subscriptions", {
            "customer": cus2, "items[0][plan]": plan["id"], "application_fee_percent": "2",
            "payment_behavior": "allow_incomplete"}, "acct_two")
        paid = await until("invoice.paid", lambda: events("invoice.paid"))
        succeeded = events("invoice.payment_succeeded")
        check("invoice.paid is sent beside invoice.payment_succeeded, with the subscription's account",
              paid[0].get("account") == "acct_two" and succeeded and succeeded[0].get("account") == "acct_two",
              (paid[0].get("account"), succeeded))
        check("invoice.paid has an event id of its own, in Stripe's form",
              re.fullmatch(r"evt_[A-Za-z0-9]+", paid[0]["id"]) is not None
              and paid[0]["id"] != succeeded[0]["id"], paid[0]["id"])
        check("the invoice belongs to the subscription", paid[0]["data"]["object"]["subscription"] == sub["id"])
        async with emu.session.delete(f"http://127.0.0.1:{emu.port}/v1/subscriptions/{sub['id']}",
                                      headers={"Stripe-Account": "acct_two"}) as r:
            assert r.status == 200
        deleted = await until("customer.subscription.deleted",
                              lambda: events("customer.subscription.deleted", sub["id"]))
        check("customer.subscription.deleted names the account", deleted[0].get("account") == "acct_two")

        # An object no connected account touched: dropped, and logged as such.
        await emu.post("/v1/customers", {"email": "platform@example.org"})
        log, end = [], time.monotonic() + 12
        while time.monotonic() < end:
            log = await emu.relay_log()
            if any(e["status"] == "dropped" for e in log):
                break
            await asyncio.sleep(0.2)
        check("events of the platform's own objects are dropped without RELAY_PLATFORM_URL",
              any(e["status"] == "dropped" and e["type"] == "customer.created" for e in log), log[-3:])
        check("no delivery lacks an account",
              all(e.get("account") for _, e in received), [e["type"] for _, e in received if not e.get("account")])

    # Without the relay settings nothing is delivered (what testkit::stripe() relies on).
    before = len(received)
    async with Emulator() as plain:
        await plain.post("/v1/customers", {"email": "c@example.org"}, "acct_three")
        await asyncio.sleep(2.5)
        check("without RELAY_TO_URL the emulator sends no webhook",
              len(received) == before and await plain.relay_log() == [], len(received) - before)

    await runner.cleanup()
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
