"""Schemathesis hook: signs every generated request the way the edge router does.

The platform refuses tenant and admin requests without a valid x-edge-signature, so without
this hook schemathesis would only ever see 401s. Configuration comes from the environment the
test sets: EDGE_SECRET, TENANT_ID, TENANT_HOST, ADMIN_HOST, BASE_URL, and the accounts the hook
logs in with for admin and staff operations: ADMIN_EMAIL, ADMIN_PASSWORD, STAFF_EMAIL,
STAFF_PASSWORD (sessions are reused, and renewed after a generated logout).

Signature (tenant-config/src/edge.rs): HMAC-SHA256 over
"v2\\n<unix time>\\n<nonce>\\n<request id>\\n<route>\\n<tenant id or ->\\n<host>\\n<method>\\n<path and query>
\\n<Content-Length or ->", sent as "t=<time>,n=<nonce>,v2=<hex>" (the nonce here is the
request id, unique per request). The method, target and length are only
final once `requests` has prepared the request, so the hook marks the request (`x-sign-as`) and a
wrapper around the transport signs it just before it is sent.
"""

import hashlib
import hmac
import os
import threading
import time
import uuid

import requests
import schemathesis

UNSIGNED = ("/api/health", "/api/openapi.json", "/api/webhooks/")


SIGN_AS = "x-sign-as"


def _sign_prepared(request):
    """Replaces the x-sign-as marker with the router's headers for this exact request."""
    marker = request.headers.pop(SIGN_AS, None)
    if marker is None:
        return
    route, tenant, host = marker.split("|")
    tenant = tenant or None
    secret = os.environ["EDGE_SECRET"].encode()
    ts = str(int(time.time()))
    request_id = "st-" + uuid.uuid4().hex
    length = request.headers.get("Content-Length") or "-"
    fields = ["v2", ts, request_id, request_id, route, tenant or "-", host, request.method, request.path_url, length]
    sig = hmac.new(secret, "\n".join(fields).encode(), hashlib.sha256).hexdigest()
    request.headers["x-request-id"] = request_id
    request.headers["x-route"] = route
    request.headers["x-original-host"] = host
    request.headers["x-edge-signature"] = f"t={ts},n={request_id},v2={sig}"
    if tenant:
        request.headers["x-tenant-id"] = tenant


_send = requests.adapters.HTTPAdapter.send


def _signing_send(self, request, *args, **kwargs):
    _sign_prepared(request)
    return _send(self, request, *args, **kwargs)


requests.adapters.HTTPAdapter.send = _signing_send


def _sign(route, tenant, host):
    """The marker asking the transport to sign this request as `route` for `host`."""
    return {SIGN_AS: f"{route}|{tenant or ''}|{host}"}


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
