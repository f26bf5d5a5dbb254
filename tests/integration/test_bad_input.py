"""Bad input: every case is a 4xx with the error shape, the server keeps serving, and nothing
stored changes (tenant descriptions and locations, listings, object contents and versions, and
the number of tenants and principals)."""

import base64
import json
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (BACKEND, assert_error, key_path, raw_request, read_http_response,
                      wait_for_close)

OBJECTS = {"a.txt": b"alpha", "dir/b.bin": os.urandom(300), "dir/c": b"gamma"}
FORGED = "cst_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
assert len(FORGED) == 47


class Env:
    pass


@pytest.fixture(scope="module")
def env(server):
    e = Env()
    e.server = server
    e.a = server.create_tenant(geography="US", name="Tenant A")
    e.b = server.create_tenant(geography="EU", name="Tenant B")
    for k, v in OBJECTS.items():
        server.put_object(e.a["id"], k, v, e.a["admin_token"])
    server.put_object(e.b["id"], "b-only", b"bee", e.b["admin_token"])
    e.user_a = server.create_principal(e.a["admin_token"], role="tenant_user",
                                       tenant_id=e.a["id"])
    e.operator = server.create_principal(server.admin_token, role="operator")
    e.tokens = {"admin": server.admin_token, "A": e.a["admin_token"], "B": e.b["admin_token"],
                "userA": e.user_a["token"], "operator": e.operator["token"]}
    return e


def snapshot(e: Env) -> dict:
    s = e.server
    snap = {}
    for t in (e.a, e.b):
        tok = t["admin_token"]
        desc = s.get(f"/v1/tenants/{t['id']}", token=tok)
        assert desc.status == 200, desc
        listing = s.list_all(t["id"], tok)
        objects = {}
        for o in listing:
            g = s.get(key_path(t["id"], o["key"]), token=tok)
            objects[o["key"]] = (g.status, g.body, g.header("x-custos-version"))
        snap[t["id"]] = (desc.json(), listing, objects)
    if BACKEND == "sqlite":
        snap["counts"] = (s.query_control("SELECT COUNT(*) FROM principals")[0][0],
                          s.query_control("SELECT COUNT(*) FROM tenants")[0][0])
    return snap


def _auth_header(e: Env, token: str | None) -> dict:
    if token is None:
        return {}
    if token.startswith("raw:"):
        return {"Authorization": token[4:]}
    return {"Authorization": f"Bearer {e.tokens.get(token, token)}"}


def tenant_body(**over):
    body = {"name": "Bad Input Co", "customer_type": "enterprise", "geography": "US",
            "services": ["storage"], "technologies": [], "lockbox": False}
    for k, v in over.items():
        if v is DROP:
            body.pop(k)
        else:
            body[k] = v
    return body


def principal_body(**over):
    body = {"name": "Someone", "role": "operator"}
    for k, v in over.items():
        if v is DROP:
            body.pop(k)
        else:
            body[k] = v
    return body


DROP = object()
P = "/v1/tenants/{A}/objects/"
DEEP = b"[" * 50000 + b"]" * 50000

# (id, method, path, body, headers, token, status, code)
CASES = [
    # --- JSON bodies of POST /v1/tenants -----------------------------------------------------
    ("tenant-malformed-json", "POST", "/v1/tenants", b'{"name": "x",', {}, "admin", 400,
     "invalid_argument"),
    ("tenant-trailing-garbage", "POST", "/v1/tenants", b'{"name": "x"} extra', {}, "admin", 400,
     "invalid_argument"),
    ("tenant-json-array", "POST", "/v1/tenants", b"[]", {}, "admin", 400, "invalid_argument"),
    ("tenant-json-null", "POST", "/v1/tenants", b"null", {}, "admin", 400, "invalid_argument"),
    ("tenant-empty-body", "POST", "/v1/tenants", b"", {}, "admin", 400, "invalid_argument"),
    ("tenant-deep-nesting", "POST", "/v1/tenants", DEEP, {}, "admin", 400, "invalid_argument"),
    ("tenant-invalid-utf8", "POST", "/v1/tenants",
     b'{"name":"\xff\xfe","customer_type":"enterprise","geography":"US"}', {}, "admin", 400,
     "invalid_argument"),
    ("tenant-name-int", "POST", "/v1/tenants", tenant_body(name=5), {}, "admin", 400,
     "invalid_argument"),
    ("tenant-lockbox-string", "POST", "/v1/tenants", tenant_body(lockbox="yes"), {}, "admin", 400,
     "invalid_argument"),
    ("tenant-services-string", "POST", "/v1/tenants", tenant_body(services="x"), {}, "admin", 400,
     "invalid_argument"),
    ("tenant-services-int-items", "POST", "/v1/tenants", tenant_body(services=[1]), {}, "admin",
     400, "invalid_argument"),
    ("tenant-technologies-object", "POST", "/v1/tenants", tenant_body(technologies={"a": 1}), {},
     "admin", 400, "invalid_argument"),
    ("tenant-retention-string", "POST", "/v1/tenants", tenant_body(retention_days="90"), {},
     "admin", 400, "invalid_argument"),
    ("tenant-retention-float", "POST", "/v1/tenants", tenant_body(retention_days=1.5), {},
     "admin", 400, "invalid_argument"),
    ("tenant-retention-negative", "POST", "/v1/tenants", tenant_body(retention_days=-1), {},
     "admin", 400, "invalid_argument"),
    ("tenant-retention-huge", "POST", "/v1/tenants", tenant_body(retention_days=10**30), {},
     "admin", 400, "invalid_argument"),
    ("tenant-single-region-int", "POST", "/v1/tenants", tenant_body(allow_single_region=1), {},
     "admin", 400, "invalid_argument"),
    ("tenant-missing-name", "POST", "/v1/tenants", tenant_body(name=DROP), {}, "admin", 400,
     "invalid_argument"),
    ("tenant-missing-geography", "POST", "/v1/tenants", tenant_body(geography=DROP), {}, "admin",
     400, "invalid_argument"),
    ("tenant-missing-customer-type", "POST", "/v1/tenants", tenant_body(customer_type=DROP), {},
     "admin", 400, "invalid_argument"),
    ("tenant-unknown-field", "POST", "/v1/tenants", tenant_body(colour="red"), {}, "admin", 400,
     "invalid_argument"),
    # Required by the contract: not defaulted (an omitted lockbox must not turn it off).
    *[(f"tenant-{field}-{how}", "POST", "/v1/tenants",
       tenant_body(**{field: DROP if how == "missing" else None}), {}, "admin", 400,
       "invalid_argument")
      for field in ("services", "technologies", "lockbox") for how in ("missing", "null")],
    ("tenant-empty-name", "POST", "/v1/tenants", tenant_body(name=""), {}, "admin", 400,
     "invalid_argument"),
    ("tenant-long-name", "POST", "/v1/tenants", tenant_body(name="n" * 201), {}, "admin", 400,
     "invalid_argument"),
    *[(f"tenant-name-{what}", "POST", "/v1/tenants", tenant_body(name=f"Acme{c}Corp"), {},
       "admin", 400, "invalid_argument")
      for what, c in [("nul", "\0"), ("escape", "\x1b[2J"), ("newline", "\n"), ("c1", "\x9b")]],
    ("tenant-customer-type-space", "POST", "/v1/tenants",
     tenant_body(customer_type="big enterprise"), {}, "admin", 400, "invalid_argument"),
    ("tenant-by-tenant-admin", "POST", "/v1/tenants", tenant_body(), {}, "A", 403,
     "permission_denied"),
    ("tenant-by-operator", "POST", "/v1/tenants", tenant_body(), {}, "operator", 403,
     "permission_denied"),
    ("tenant-no-token", "POST", "/v1/tenants", tenant_body(), {}, None, 401, "unauthenticated"),
    # --- JSON bodies of POST /v1/principals --------------------------------------------------
    ("principal-malformed-json", "POST", "/v1/principals", b'{"name":', {}, "admin", 400,
     "invalid_argument"),
    ("principal-unknown-role", "POST", "/v1/principals", principal_body(role="superuser"), {},
     "admin", 400, "invalid_argument"),
    ("principal-role-int", "POST", "/v1/principals", principal_body(role=1), {}, "admin", 400,
     "invalid_argument"),
    ("principal-missing-role", "POST", "/v1/principals", principal_body(role=DROP), {}, "admin",
     400, "invalid_argument"),
    ("principal-missing-name", "POST", "/v1/principals", principal_body(name=DROP), {}, "admin",
     400, "invalid_argument"),
    ("principal-unknown-field", "POST", "/v1/principals", principal_body(password="x"), {},
     "admin", 400, "invalid_argument"),
    ("principal-attributes-string", "POST", "/v1/principals", principal_body(attributes="x"), {},
     "admin", 400, "invalid_argument"),
    ("principal-attributes-unknown-field", "POST", "/v1/principals",
     principal_body(attributes={"clearance": "top"}), {}, "admin", 400, "invalid_argument"),
    ("principal-citizenship-int", "POST", "/v1/principals",
     principal_body(attributes={"citizenship": [5]}), {}, "admin", 400, "invalid_argument"),
    ("principal-citizenship-lowercase", "POST", "/v1/principals",
     principal_body(attributes={"citizenship": "us"}), {}, "admin", 400, "invalid_argument"),
    ("principal-citizenship-alpha3", "POST", "/v1/principals",
     principal_body(attributes={"citizenship": ["USA"]}), {}, "admin", 400, "invalid_argument"),
    ("principal-employer-unknown", "POST", "/v1/principals",
     principal_body(attributes={"employer": "contractor"}), {}, "admin", 400,
     "invalid_argument"),
    ("principal-screened-string", "POST", "/v1/principals",
     principal_body(attributes={"screened": "yes"}), {}, "admin", 400, "invalid_argument"),
    # The provider's admin makes no principal of a tenant, whatever else is wrong with it.
    ("principal-tenant-role-without-tenant", "POST", "/v1/principals",
     principal_body(role="tenant_user"), {}, "admin", 403, "permission_denied"),
    ("principal-provider-role-with-tenant", "POST", "/v1/principals",
     principal_body(role="operator", tenant_id="{A}"), {}, "admin", 400, "invalid_argument"),
    ("principal-expires-zero", "POST", "/v1/principals", principal_body(expires_in_days=0), {},
     "admin", 400, "invalid_argument"),
    ("principal-expires-huge", "POST", "/v1/principals", principal_body(expires_in_days=3651),
     {}, "admin", 400, "invalid_argument"),
    ("principal-empty-name", "POST", "/v1/principals", principal_body(name=""), {}, "admin", 400,
     "invalid_argument"),
    ("principal-name-control", "POST", "/v1/principals", principal_body(name="Eve\x1b[8m"), {},
     "admin", 400, "invalid_argument"),
    ("principal-unknown-tenant", "POST", "/v1/principals",
     principal_body(role="tenant_user", tenant_id="no-such-tenant-id"), {}, "admin", 403,
     "permission_denied"),
    ("principal-no-token", "POST", "/v1/principals", principal_body(), {}, None, 401,
     "unauthenticated"),
    # --- authentication ------------------------------------------------------------------------
    *[(f"no-token-{m}-{what}", m, path, body, {}, None, 401, "unauthenticated")
      for what, m, path, body in [
          ("object", "GET", P + "a.txt", None), ("object", "PUT", P + "a.txt", b"x"),
          ("object", "DELETE", P + "a.txt", None), ("list", "GET", "/v1/tenants/{A}/objects", None),
          ("tenant", "GET", "/v1/tenants/{A}", None), ("me", "GET", "/v1/principals/me", None)]],
    *[(f"{name}-PUT", "PUT", P + "a.txt", b"overwritten", {}, token, 401, "unauthenticated")
      for name, token in [
          ("basic-scheme", "raw:Basic YWRtaW46YWRtaW4="),
          ("empty-bearer", "raw:Bearer "),
          ("bearer-no-space", "raw:Bearer"),
          ("malformed-token", "cst_abc"),
          ("token-without-prefix", "x" * 47),
          ("token-with-trailing-junk", "raw:Bearer " + FORGED + "x"),
          ("forged-token", FORGED)]],
    ("forged-token-GET-tenant", "GET", "/v1/tenants/{A}", None, {}, FORGED, 401,
     "unauthenticated"),
    ("forged-token-me", "GET", "/v1/principals/me", None, {}, FORGED, 401, "unauthenticated"),
    # --- another tenant's token ----------------------------------------------------------------
    *[(f"other-tenant-{m}-{what}", m, path, body, {}, "B", 403, "permission_denied")
      for what, m, path, body in [
          ("object", "GET", P + "a.txt", None), ("object", "PUT", P + "a.txt", b"x"),
          ("new-object", "PUT", P + "planted", b"x"), ("object", "DELETE", P + "a.txt", None),
          ("list", "GET", "/v1/tenants/{A}/objects", None),
          ("tenant", "GET", "/v1/tenants/{A}", None)]],
    # --- object keys -------------------------------------------------------------------------
    *[(f"key-{name}-{m}", m, P + raw, b"evil" if m == "PUT" else None, {}, "A", 400,
       "invalid_argument")
      for name, raw in [
          ("dotdot-middle", "a/../b"), ("dotdot-leading", "../a.txt"), ("dotdot-only", ".."),
          ("dotdot-trailing", "dir/.."), ("dot-segment", "./a.txt"), ("dot-only", "."),
          ("dotdot-encoded", "%2e%2e/x"), ("dotdot-encoded-upper", "dir/%2E%2E/a.txt"),
          ("dotdot-encoded-slashes", "dir%2F..%2Fa.txt"), ("nul", "a%00b"),
          ("nul-only", "%00"), ("ctrl-01", "a%01b"), ("ctrl-1f", "%1f"), ("del-7f", "a%7F"),
          ("newline", "a%0Ab"), ("cr", "a%0Db"), ("tab", "a%09b"),
          ("c1-nel", "a%C2%85b"), ("c1-9f", "%C2%9F"),
          ("empty-segment", "a//b"), ("empty-segment-encoded", "a%2F%2Fb"),
          ("trailing-slash", "dir/"), ("leading-slash", "/a.txt"),
          ("1025-bytes", "k" * 1025), ("1025-bytes-multibyte", "a" + "%C3%A9" * 512),
          ("invalid-utf8", "a%FFb"), ("overlong-utf8", "a%C0%AFb"),
          ("surrogate-utf8", "%ED%A0%80"), ("truncated-utf8", "a%E6%97"),
          ("bad-escape", "a%zz"), ("truncated-escape", "a%4"), ("lone-percent", "a%")]
      for m in ("PUT", "GET", "DELETE")],
    # --- a DELETE takes no body: one that says more must not be ignored --------------------
    *[(f"delete-with-body-{name}", "DELETE", P + "a.txt", body, {}, "A", 400, "invalid_argument")
      for name, body in [("malformed", b"{bad"), ("field", b'{"force": true}'),
                         ("array", b"[]"), ("text", b"please")]],
    # --- Content-Type, stored with the object: printable ASCII, at most 255 bytes --------------
    *[(f"content-type-{name}-{what}", "PUT", P + key, b"typed", {"Content-Type": ctype}, "A", 400,
       "invalid_argument")
      for name, ctype in [("invalid-utf8", "text/\xff"), ("latin1", "text/plain; x=caf\xe9"),
                          ("control-char", "text/\x01plain"), ("del", "text/plain\x7f"),
                          ("256-bytes", "a/" + "b" * 254)]
      for what, key in [("new", "ct-new"), ("existing", "a.txt")]],
    # --- listing queries -----------------------------------------------------------------------
    *[(f"list-{name}", "GET", "/v1/tenants/{A}/objects?" + q, None, {}, "A", 400,
       "invalid_argument")
      for name, q in [
          ("cursor-garbage", "cursor=!!!"), ("cursor-not-a-key", "cursor=YS8uLi9i"),
          ("cursor-bad-escape", "cursor=%zz"), ("limit-zero", "limit=0"),
          ("limit-negative", "limit=-1"), ("limit-too-big", "limit=1001"),
          ("limit-word", "limit=abc"), ("limit-suffix", "limit=10abc"), ("limit-empty", "limit="),
          ("limit-float", "limit=1.5"), ("limit-huge", "limit=99999999999999999999"),
          ("limit-plus", "limit=%2B5"), ("limit-space", "limit=%205"), ("limit-zero-padded", "limit=05"),
          ("prefix-control", "prefix=a%01"), ("prefix-c1", "prefix=a%C2%85"), ("prefix-too-long", "prefix=" + "p" * 1025)]],
    # --- access-log filters: a misspelt role is refused, not an empty answer ----------------
    *[(f"access-log-role-{name}", "GET", "/v1/tenants/{A}/access-log?role=" + role, None, {}, "A",
       400, "invalid_argument") for name, role in [("bogus", "bogus"), ("empty", "")]],
    # --- purposes ------------------------------------------------------------------------------
    *[(f"purpose-{purpose}-{m}", m, path, body, {"X-Custos-Purpose": purpose}, "A", 403,
       "purpose_not_allowed")
      for purpose in ("advertising", "marketing", "profiling")
      for m, path, body in [("PUT", P + "a.txt", b"ad"), ("PUT", P + "ads/new", b"ad"),
                            ("GET", P + "a.txt", None), ("DELETE", P + "a.txt", None),
                            ("GET", "/v1/tenants/{A}/objects", None)]],
    *[(f"purpose-unknown-{m}", m, path, body, {"X-Custos-Purpose": "fun"}, "A", 400,
       "invalid_argument")
      for m, path, body in [("PUT", P + "a.txt", b"fun"), ("GET", P + "a.txt", None),
                            ("DELETE", P + "a.txt", None)]],
    # --- routes --------------------------------------------------------------------------------
    ("unknown-tenant", "GET", "/v1/tenants/no-such-tenant", None, {}, "admin", 404, "not_found"),
    ("unknown-route", "GET", "/v1/nope", None, {}, "admin", 404, "not_found"),
    ("unknown-route-root", "GET", "/", None, {}, None, 404, "not_found"),
    ("unknown-route-deeper", "GET", "/v1/tenants/{A}/objectz/a.txt", None, {}, "A", 404,
     "not_found"),
    ("wrong-method-regions", "DELETE", "/v1/regions", None, {}, "admin", 405,
     "method_not_allowed"),
    ("wrong-method-healthz", "POST", "/healthz", b"{}", {}, None, 405, "method_not_allowed"),
    ("wrong-method-tenants", "GET", "/v1/tenants", None, {}, "admin", 405, "method_not_allowed"),
    ("wrong-method-object", "POST", P + "a.txt", b"x", {}, "A", 405, "method_not_allowed"),
    ("wrong-method-object-patch", "PATCH", P + "a.txt", b"x", {}, "A", 405,
     "method_not_allowed"),
    ("wrong-method-list", "PUT", "/v1/tenants/{A}/objects", b"x", {}, "A", 405,
     "method_not_allowed"),
    ("test-clock-without-flag", "POST", "/v1/test/clock", {"advance_seconds": 60}, {}, "admin",
     404, "not_found"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(env, case):
    _id, method, path, body, headers, token, status, code = case
    path = path.replace("{A}", env.a["id"]).replace("{B}", env.b["id"])
    if isinstance(body, dict):
        body = {k: (v.replace("{A}", env.a["id"]) if isinstance(v, str) else v)
                for k, v in body.items()}
    before = snapshot(env)
    r = env.server.request(method, path, body,
                           headers={**headers, **_auth_header(env, token)})
    assert_error(r, status, code)
    if status == 405:  # RFC 9110: a 405 names the methods the route has
        allow = {m.strip() for m in (r.header("allow") or "").split(",") if m.strip()}
        assert allow and method not in allow, f"Allow: {r.header('allow')!r}"
    assert env.server.healthy(), "the server stopped serving"
    assert snapshot(env) == before, "bad input changed stored state"


# --- raw requests http.client refuses to send ----------------------------------------------

RAW_CASES = [
    ("garbage", b"GARBAGE\r\n\r\n"),
    ("method-only", b"GET\r\n\r\n"),
    ("http-0.9", b"GET /healthz\r\n\r\n"),
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(32) +
     b"\r\n\r\n"),
    ("binary", b"\x00\x01\x02\x03\r\n\r\n"),
    ("header-without-colon", b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n"),
    ("target-without-slash", b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("target-asterisk", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad-content-length", b"PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
    ("conflicting-content-length",
     b"PUT /v1/tenants/{A}/objects/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TA}\r\n"
     b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("nul-in-path", b"GET /v1/tenants/{A}/objects/a\x00b HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: Bearer {TA}\r\n\r\n"),
    ("control-char-in-path", b"PUT /v1/tenants/{A}/objects/a\x01b HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: Bearer {TA}\r\nContent-Length: 1\r\n\r\nx"),
    ("del-in-path", b"PUT /v1/tenants/{A}/objects/a\x7fb HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: Bearer {TA}\r\nContent-Length: 1\r\n\r\nx"),
    ("space-in-path", b"PUT /v1/tenants/{A}/objects/a b HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: Bearer {TA}\r\nContent-Length: 1\r\n\r\nx"),
    ("bad-chunk-size", b"PUT /v1/tenants/{A}/objects/chunky HTTP/1.1\r\nHost: x\r\n"
                       b"Authorization: Bearer {TA}\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n"),
    # RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, even with a valid body.
    ("http-1.0-transfer-encoding",
     b"PUT /v1/tenants/{A}/objects/h10 HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {TA}\r\n"
     b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    # A field read as one value, twice: a proxy reading the first line and the server would
    # disagree (who asks, for what purpose, what type is stored).
    ("two-authorizations",
     b"PUT /v1/tenants/{A}/objects/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
     b"cst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\nAuthorization: Bearer {TA}\r\n"
     b"Content-Length: 5\r\n\r\nclobb"),
    ("two-purposes",
     b"PUT /v1/tenants/{A}/objects/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TA}\r\n"
     b"X-Custos-Purpose: advertising\r\nx-custos-purpose: service_delivery\r\n"
     b"Content-Length: 5\r\n\r\nclobb"),
    ("two-content-types",
     b"PUT /v1/tenants/{A}/objects/typed HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TA}\r\n"
     b"Content-Type: text/plain\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"),
]


@pytest.mark.parametrize("data", [c[1] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_malformed_requests_are_400(env, data):
    data = data.replace(b"{A}", env.a["id"].encode()).replace(
        b"{TA}", env.a["admin_token"].encode())
    before = snapshot(env)
    r = raw_request(env.server.port, data)
    assert r is not None, "connection closed without an answer"
    assert_error(r, 400, "invalid_argument")
    assert r.elapsed < 2, "a malformed request must be answered at once"
    assert env.server.healthy()
    assert snapshot(env) == before


def test_a_refused_content_type_fails_alone(server):
    """Another tenant's PUTs with a Content-Type no store can hold as text (PostgreSQL refuses
    invalid UTF-8), sent while this tenant writes, are refused alone: every write they could
    have been batched with succeeds and reads back."""
    good = server.create_tenant(geography="US")
    bad = server.create_tenant(geography="US")  # same geography: the same cells
    keys = [f"concurrent/{i}" for i in range(40)]

    def put_good(key):
        return server.put(key_path(good["id"], key), key.encode(), token=good["admin_token"])

    def put_bad(i):
        return server.put(key_path(bad["id"], f"bad/{i}"), b"x", token=bad["admin_token"],
                          headers={"Content-Type": "text/\xff"})

    with ThreadPoolExecutor(max_workers=16) as pool:
        bad_answers = [pool.submit(put_bad, i) for i in range(40)]
        good_answers = [pool.submit(put_good, k) for k in keys]
        for f in bad_answers:
            assert_error(f.result(), 400, "invalid_argument")
        for k, f in zip(keys, good_answers):
            assert f.result().status == 201, f"PUT {k}: {f.result()}"
    for k in keys:
        r = server.get(key_path(good["id"], k), token=good["admin_token"])
        assert r.status == 200 and r.body == k.encode(), r
    assert server.list_all(bad["id"], bad["admin_token"]) == []


def test_bytes_that_are_not_utf8_never_break_the_access_log(server):
    """A refused or served request is recorded with what it asked for; bytes that are not
    UTF-8 (in a listing prefix or a grant header, sent by another tenant or by the tenant's own
    user) are recorded as U+FFFD, so the tenant's access log stays readable JSON."""
    a = server.create_tenant(geography="US")
    b = server.create_tenant(geography="US")
    server.put_object(a["id"], "hello", b"hi", a["admin_token"])
    user = server.create_principal(a["admin_token"], role="tenant_user", tenant_id=a["id"])
    objects = f"/v1/tenants/{a['id']}/objects"
    assert_error(server.get(objects + "?prefix=%FF", token=b["admin_token"]), 403,
                 "permission_denied")
    assert_error(server.get(objects + "/hello", token=b["admin_token"],
                            headers={"X-Custos-Grant": "\xff\xfe"}), 403, "permission_denied")
    r = server.get(objects + "?prefix=he%FF", token=user["token"])
    assert r.status == 200 and r.json()["objects"] == [], r
    log = server.get(f"/v1/tenants/{a['id']}/access-log?limit=1000", token=a["admin_token"])
    assert log.status == 200, log
    records = [json.loads(e["record"]) for e in log.json()["events"]]
    resources = [r.get("resource") for r in records if r["kind"] in ("data.list", "data.refused")]
    assert "\ufffd" in resources and "he\ufffd" in resources, resources
    assert any(r.get("grant") == "\ufffd\ufffd" for r in records), records
    # An error that quotes the bad bytes is still a UTF-8 JSON body (assert_error parses it).
    assert_error(server.get("/v1/access-requests?state=%FF", token=a["admin_token"]), 400,
                 "invalid_argument")


def test_headers_over_8_kib_are_431(env):
    s = env.server
    ok = raw_request(s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 6000 +
                     b"\r\n\r\n")
    assert ok.status == 200
    for data in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 9000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-Pad-%d: %s\r\n" % (i, b"q" * 100) for i in range(100)) + b"\r\n",
        b"GET /healthz?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        r = raw_request(s.port, data)
        assert r is not None
        assert_error(r, 431, "headers_too_large")
    # Headers that never end are cut off too (not buffered without bound).
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(64):
                sock.sendall(b"X-Endless: " + b"e" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = read_http_response(sock, time.monotonic() + 5)
        assert r is not None and r.status == 431
    assert s.healthy()


def test_huge_content_length_without_body_is_413_at_once(env):
    s = env.server
    before = snapshot(env)
    for path, cl in ((key_path(env.a["id"], "huge"), 10**12),
                     ("/v1/tenants", 2 * 1024 * 1024),
                     ("/v1/principals", 10**9)):
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            start = time.monotonic()
            sock.sendall(f"{'PUT' if 'objects' in path else 'POST'} {path} HTTP/1.1\r\n"
                         f"Host: x\r\nAuthorization: Bearer {env.a['admin_token']}\r\n"
                         f"Content-Length: {cl}\r\n\r\n".encode())
            r = read_http_response(sock, start + 5)
            assert r is not None
            assert_error(r, 413, "too_large")
            assert time.monotonic() - start < 2, "413 must not wait for the body"
    assert s.healthy()
    assert snapshot(env) == before


def test_oversize_body_is_413_and_not_stored(server_factory):
    s = server_factory("--max-object-bytes", "1024")
    t = s.create_tenant()
    tid, tok = t["id"], t["admin_token"]
    r = s.put(key_path(tid, "fits"), b"f" * 1024, token=tok)
    assert r.status == 201, r
    assert_error(s.put(key_path(tid, "big"), b"b" * 2000, token=tok), 413, "too_large")
    assert_error(s.put(key_path(tid, "fits"), b"b" * 1025, token=tok), 413, "too_large")
    # The same with a chunked body (no Content-Length up front).
    chunked = (f"PUT {key_path(tid, 'chunked')} HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {tok}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunked += b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    r = raw_request(s.port, chunked)
    assert r is not None
    assert_error(r, 413, "too_large")
    # A huge Content-Length with no body is answered at once.
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(f"PUT {key_path(tid, 'never')} HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {tok}\r\nContent-Length: 2000\r\n\r\n".encode())
        r = read_http_response(sock, start + 5)
        assert_error(r, 413, "too_large")
        assert time.monotonic() - start < 2
    assert s.healthy()
    listing = s.list_all(tid, tok)
    assert [o["key"] for o in listing] == ["fits"]
    assert s.get(key_path(tid, "fits"), token=tok).body == b"f" * 1024
    loc = s.get(f"/v1/tenants/{tid}", token=tok).json()["location"]
    assert all(u["objects"] == 1 for u in loc)


# --- slow clients ------------------------------------------------------------------------------

def _serve_others_meanwhile(s, stop: threading.Event, latencies: list, failures: list):
    while not stop.is_set():
        start = time.monotonic()
        try:
            ok = s.healthy()
        except Exception as e:  # noqa: BLE001
            failures.append(repr(e))
            ok = True
        latencies.append(time.monotonic() - start)
        if not ok:
            failures.append("healthz not ok")
        time.sleep(0.05)


@pytest.mark.parametrize("partial", [
    b"GET /hea",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    b"PUT /v1/tenants/T/objects/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123",
], ids=["half-request-line", "half-headers", "half-body"])
def test_slow_client_gets_408_while_others_are_served(server_factory, partial):
    s = server_factory("--request-timeout-ms", "1000")
    stop, latencies, failures = threading.Event(), [], []
    others = threading.Thread(target=_serve_others_meanwhile,
                              args=(s, stop, latencies, failures))
    # Many slow clients at once must not starve the others either.
    socks = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(20)]
    try:
        start = time.monotonic()
        for sock in socks:
            sock.sendall(partial)
        others.start()
        for sock in socks:
            r = read_http_response(sock, start + 5)
            assert r is not None, "closed without a 408"
            assert_error(r, 408, "request_timeout")
            assert 0.8 <= time.monotonic() - start < 3.0
            wait_for_close(sock, start + 5)
    finally:
        stop.set()
        if others.is_alive() or others.ident:
            others.join()
        for sock in socks:
            sock.close()
    assert not failures, failures
    # Served throughout the ~1 s the slow clients held their connections, not after.
    assert len(latencies) >= 5 and max(latencies) < 0.9, latencies


def test_trickling_client_is_cut_off_at_the_request_timeout(server_factory):
    """The timeout is for the whole request, so sending a byte now and then does not extend it."""
    s = server_factory("--request-timeout-ms", "1000")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        start = time.monotonic()
        got = None
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 40:
            try:
                sock.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sock.settimeout(0.15)
            try:
                got = sock.recv(65536)
                break
            except socket.timeout:
                pass
            if time.monotonic() - start > 4:
                break
        assert got, "no answer to a trickling client"
        assert got.startswith(b"HTTP/1.1 408"), got[:100]
        assert time.monotonic() - start < 2.5


def test_idle_connection_is_closed_quietly(server_factory):
    s = server_factory("--idle-timeout-ms", "1000")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        start = time.monotonic()
        got = wait_for_close(sock, start + 5)
        assert got == b"" and time.monotonic() - start < 3
    # And an idle keep-alive connection after a request.
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        assert read_http_response(sock, start + 5).status == 200
        wait_for_close(sock, start + 5)
        assert time.monotonic() - start < 3
    assert s.healthy()


def test_many_bad_requests_do_not_hurt_the_server(env):
    """A burst of garbage on parallel connections: still serving, nothing changed."""
    before = snapshot(env)
    s = env.server
    errors = []

    def hammer(i):
        try:
            for j in range(20):
                r = raw_request(s.port, os.urandom(64) + b"\r\n\r\n")
                if r is not None and r.status != 400:
                    errors.append(r.status)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert s.healthy()
    assert snapshot(env) == before


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
def test_empty_object_key_is_400(env, method):
    """DESIGN: the key is the rest of the path after /objects/, 1-1024 bytes; an empty key is
    invalid input (400 invalid_argument), not an unknown route."""
    before = snapshot(env)
    r = env.server.request(method, f"/v1/tenants/{env.a['id']}/objects/",
                           b"evil" if method == "PUT" else None, token=env.a["admin_token"])
    assert_error(r, 400, "invalid_argument")
    assert env.server.healthy()
    assert snapshot(env) == before


def test_random_id_is_not_a_tenant(env):
    r = env.server.get(f"/v1/tenants/{secrets.token_urlsafe(16)}", token=env.server.admin_token)
    assert_error(r, 404, "not_found")


def test_a_trailer_field_never_stands_in_for_a_header(env):
    """A chunked body's trailer is not part of the header section (RFC 9110 6.5.1): a trailer
    Authorization must not replace the one the request was checked and answered under."""
    a = env.a
    forged = "cst_" + "A" * 43
    before = snapshot(env)
    data = (f"PUT /v1/tenants/{a['id']}/objects/a.txt HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {forged}\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"5\r\nclobb\r\n0\r\nAuthorization: Bearer {a['admin_token']}\r\n\r\n").encode()
    r = raw_request(env.server.port, data)
    assert r is not None
    assert_error(r, 401, "unauthenticated")
    assert snapshot(env) == before
    # With the real token in the header, a forged one in the trailer changes nothing either.
    data = (f"PUT /v1/tenants/{a['id']}/objects/trailer HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {a['admin_token']}\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"5\r\nfine!\r\n0\r\nAuthorization: Bearer {forged}\r\n"
            f"X-Custos-Purpose: advertising\r\n\r\n").encode()
    r = raw_request(env.server.port, data)
    assert r is not None and r.status == 201, r
    got = env.server.get(key_path(a["id"], "trailer"), token=a["admin_token"])
    assert got.status == 200 and got.body == b"fine!"
    env.server.delete(key_path(a["id"], "trailer"), token=a["admin_token"])
