"""Schemathesis hook: signs every generated request the way the edge router does.

The platform refuses tenant and admin requests without a valid x-edge-signature, so without
this hook schemathesis would only ever see 401s. Configuration comes from the environment the
test sets: EDGE_SECRET, TENANT_ID, TENANT_HOST, ADMIN_HOST, BASE_URL, and the accounts the hook
logs in with for admin and staff operations: ADMIN_EMAIL, ADMIN_PASSWORD, STAFF_EMAIL,
STAFF_PASSWORD (sessions are reused, and renewed after a generated logout).

Signature (tenant-config/src/edge.rs): HMAC-SHA256 over
"v1\\n<unix time>\\n<request id>\\n<route>\\n<tenant id or ->\\n<host>", sent as "t=<time>,v1=<hex>".
"""

import hashlib
import hmac
import os
import threading
import time
import uuid

import requests
import schemathesis

UNSIGNED = ("/health", "/ready", "/metrics", "/api/openapi.json", "/api/webhooks/")


def _sign(route, tenant, host):
    secret = os.environ["EDGE_SECRET"].encode()
    ts = str(int(time.time()))
    request_id = "st-" + uuid.uuid4().hex
    msg = "\n".join(["v1", ts, request_id, route, tenant or "-", host]).encode()
    sig = hmac.new(secret, msg, hashlib.sha256).hexdigest()
    headers = {
        "x-request-id": request_id,
        "x-route": route,
        "x-original-host": host,
        "x-edge-signature": f"t={ts},v1={sig}",
    }
    if tenant:
        headers["x-tenant-id"] = tenant
    return headers


_sessions = {}
_lock = threading.Lock()


def _session(kind):
    """(cookie header, csrf token) for `admin` or `staff`, logging in when needed."""
    with _lock:
        if kind in _sessions:
            return _sessions[kind]
        if kind == "admin":
            route, tenant, host = "admin", None, os.environ["ADMIN_HOST"]
            path, email, password = "/api/admin/login", os.environ["ADMIN_EMAIL"], os.environ["ADMIN_PASSWORD"]
        else:
            route, tenant, host = "tenant", os.environ["TENANT_ID"], os.environ["TENANT_HOST"]
            path, email, password = "/api/staff/login", os.environ["STAFF_EMAIL"], os.environ["STAFF_PASSWORD"]
        r = requests.post(os.environ["BASE_URL"] + path, json={"email": email, "password": password},
                          headers=_sign(route, tenant, host), timeout=30)
        r.raise_for_status()
        cookie = r.headers["set-cookie"].split(";", 1)[0]
        _sessions[kind] = (cookie, r.json()["csrf_token"])
        return _sessions[kind]


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    if path.startswith(UNSIGNED) or path in UNSIGNED:
        return
    if path.startswith("/api/admin/"):
        signed = _sign("admin", None, os.environ["ADMIN_HOST"])
        kind = None if path == "/api/admin/login" else "admin"
    else:
        signed = _sign("tenant", os.environ["TENANT_ID"], os.environ["TENANT_HOST"])
        kind = "staff" if path.startswith("/api/staff/") and path != "/api/staff/login" else None
    if kind:
        cookie, csrf = _session(kind)
        signed["cookie"] = cookie
        signed["x-csrf-token"] = csrf
        if path.endswith("/logout"):
            # This call ends the session; the next one logs in again.
            with _lock:
                _sessions.pop(kind, None)
    case.headers = {**(case.headers or {}), **signed}
