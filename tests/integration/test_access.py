"""Zero standing access (issue 6), through the real server with --fake-clock: just-in-time
requests, Customer Lockbox, TOTP (codes from oathtool, an independent implementation), grants
honoured in scope and refused outside it, expiry and revocation, purpose limits and consent,
the tenant's access log verified against the public ledger, and sampled audits recomputed
independently from the tiles."""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest

from conftest import (Server, assert_error, key_path, list_path, requires_several_instances,
                      scan_data_dir)

CHECKPOINT_WAIT_S = 15.0
GRANT_RECHECK_S = 1.0  # AccessRequestService::kGrantRecheck
STEP = 30


# --- helpers -----------------------------------------------------------------------------------

def now(server: Server) -> int:
    r = server.get("/v1/test/clock")
    assert r.status == 200, r
    return r.json()["now"]


def advance(server: Server, seconds: int) -> int:
    r = server.post("/v1/test/clock", {"advance_seconds": seconds}, token=server.admin_token)
    assert r.status == 200, r
    return r.json()["now"]


def oathtool(secret: str, at: int) -> str:
    r = subprocess.run(["oathtool", "--totp", "-b", secret, "--now", f"@{at}"],
                       capture_output=True, text=True, timeout=10, check=True)
    return r.stdout.strip()


def wrong_code(server: Server, secret: str) -> str:
    """A well-formed code that no step within the server's window accepts now."""
    t = now(server)
    valid = {oathtool(secret, t + d * STEP) for d in (-2, -1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555")
                if c not in valid)


def fresh_code(server: Server, secret: str) -> str:
    """A code of a step nobody has used yet: each principal may use a step once, so move the
    fake clock on by one step first."""
    return oathtool(secret, advance(server, STEP))


def enroll(server: Server, principal: dict) -> str:
    r = server.post(f"/v1/principals/{principal['id']}/mfa/totp", token=principal["token"])
    assert r.status == 200, r
    body = r.json()
    secret = body["secret"]
    assert "=" not in secret and len(secret) == 32
    assert body["otpauth_uri"].startswith("otpauth://totp/Custos:")
    assert body["otpauth_uri"].endswith(f"?secret={secret}&issuer=Custos")
    assert base64.b64decode(body["qr_png_base64"]).startswith(b"\x89PNG\r\n\x1a\n")
    me = server.get("/v1/principals/me", token=principal["token"]).json()
    assert me["mfa_enrolled"] is True
    return secret


class World:
    """A fake-clock server with a tenant, an operator, two managers and the tenant's admin,
    all enrolled in TOTP."""

    def __init__(self, server: Server, lockbox: bool = False, geography: str = "US"):
        self.s = server
        self.tenant = server.create_tenant(lockbox=lockbox, geography=geography)
        self.tenant_admin = {"id": self.tenant["admin_principal_id"],
                             "token": self.tenant["admin_token"]}
        self.operator = server.create_principal(server.admin_token, role="operator",
                                                attributes={"citizenship": ["US"],
                                                            "screened": True})
        self.manager = server.create_principal(server.admin_token, role="manager")
        self.secrets = {p["id"]: enroll(server, p)
                        for p in (self.operator, self.manager, self.tenant_admin)}

    def code(self, principal: dict) -> dict:
        return {"X-Custos-TOTP": fresh_code(self.s, self.secrets[principal["id"]])}

    def request(self, **over) -> dict:
        body = {"tenant_id": self.tenant["id"], "operations": ["read", "list"],
                "prefix": "logs/", "justification": "SUP-7: customer cannot read its logs",
                "ticket": "SUP-7", "duration_minutes": 30}
        body.update(over)
        r = self.s.post("/v1/access-requests", body, token=self.operator["token"])
        assert r.status == 201, r
        return r.json()

    def act(self, req: dict, action: str, who: dict, totp: bool = True):
        headers = self.code(who) if totp else None
        return self.s.post(f"/v1/access-requests/{req['id']}/{action}", token=who["token"],
                           headers=headers)

    def granted(self, **over) -> tuple[dict, str]:
        req = self.request(**over)
        r = self.act(req, "approve", self.manager)
        assert r.status == 200, r
        if r.json()["state"] == "pending_customer":
            r = self.act(req, "approve", self.tenant_admin)
            assert r.status == 200, r
        assert r.json()["state"] == "approved"
        r = self.act(req, "activate", self.operator)
        assert r.status == 200, r
        return req, r.json()["grant_id"]

    def get(self, key: str, grant: str | None, tenant_id: str | None = None, **headers):
        h = dict(headers)
        if grant:
            h["X-Custos-Grant"] = grant
        return self.s.get(key_path(tenant_id or self.tenant["id"], key),
                          token=self.operator["token"], headers=h)


@pytest.fixture
def fake(server_factory) -> Server:
    return server_factory("--fake-clock")


def access_log(server: Server, tenant: dict) -> list[dict]:
    r = server.get(f"/v1/tenants/{tenant['id']}/access-log?limit=1000",
                   token=tenant["admin_token"])
    assert r.status == 200, r
    return [dict(e, parsed=json.loads(e["record"])) for e in r.json()["events"]]


def checkpoint(server: Server) -> tuple[int, bytes]:
    r = server.get("/ledger/checkpoint")
    assert r.status == 200, r
    assert r.header("Cache-Control") == "no-cache", r.headers  # the one mutable resource
    lines = r.body.decode().split("\n")
    return int(lines[1]), base64.b64decode(lines[2])


def wait_for_checkpoint(server: Server, size: int) -> tuple[int, bytes]:
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while True:
        got = checkpoint(server)
        if got[0] >= size:
            return got
        assert time.monotonic() < deadline, f"no checkpoint of size >= {size}"
        time.sleep(0.1)


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of(leaves: list[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def tile_index_path(n: int) -> str:
    parts = []
    while True:
        parts.append(n % 1000)
        n //= 1000
        if n == 0:
            break
    parts.reverse()
    return "/".join([f"x{p:03d}" for p in parts[:-1]] + [f"{parts[-1]:03d}"])


def ledger_entries(server: Server, size: int) -> list[bytes]:
    """Entries 0..size-1 read from the public entry-bundle tiles only."""
    out: list[bytes] = []
    for tile in range((size + 255) // 256):
        width = min(256, size - tile * 256)
        path = f"/ledger/tile/entries/{tile_index_path(tile)}"
        if width < 256:
            path += f".p/{width}"
        r = server.get(path)
        assert r.status == 200, (path, r)
        # tlog-tiles: a tile path, partial ones included, names immutable bytes.
        assert "immutable" in r.header("Cache-Control"), (path, r.headers)
        blob, at, got = r.body, 0, []
        while at < len(blob):
            n = int.from_bytes(blob[at:at + 2], "big")
            got.append(blob[at + 2:at + 2 + n])
            at += 2 + n
        out += got[:width]
    return out


def assert_record_in_ledger(server: Server, event: dict, size: int, root: bytes) -> None:
    index = event["ledger_index"]
    r = server.get(f"/v1/ledger/proof/inclusion?index={index}&size={size}")
    assert r.status == 200, r
    proof = [base64.b64decode(h) for h in r.json()["hashes"]]
    entry = ledger_entries(server, index + 1)[index]
    parsed = json.loads(entry)
    assert parsed["digest"] == hashlib.sha256(event["record"].encode()).hexdigest()
    assert parsed["kind"] == event["parsed"]["kind"]
    assert verify_inclusion(leaf_hash(entry), index, size, proof, root)


# --- no standing access ------------------------------------------------------------------------

def test_operator_without_grant_is_refused_on_every_data_route(fake):
    w = World(fake)
    fake.put_object(w.tenant["id"], "logs/a", b"secret log", w.tenant["admin_token"])
    op = w.operator["token"]
    tid = w.tenant["id"]
    for headers in (None, {"X-Custos-Grant": "bogus-grant-id"}):
        assert_error(fake.get(key_path(tid, "logs/a"), token=op, headers=headers), 403,
                     "permission_denied")
        assert_error(fake.put(key_path(tid, "logs/b"), b"x", token=op, headers=headers), 403,
                     "permission_denied")
        assert_error(fake.delete(key_path(tid, "logs/a"), token=op, headers=headers), 403,
                     "permission_denied")
        assert_error(fake.get(list_path(tid, prefix="logs/"), token=op, headers=headers), 403,
                     "permission_denied")
    for role in ("manager", "auditor", "legal", "admin"):
        p = fake.create_principal(fake.admin_token, role=role) if role != "admin" else \
            {"token": fake.admin_token}
        assert_error(fake.get(key_path(tid, "logs/a"), token=p["token"]), 403,
                     "permission_denied")
    # The attempts are in the tenant's access log, and nothing changed.
    refused = [e for e in access_log(fake, w.tenant) if e["parsed"]["kind"] == "data.refused"]
    assert len([e for e in refused if e["parsed"]["actor"] == w.operator["id"]]) == 8
    assert any(e["parsed"].get("grant") == "bogus-grant-id" for e in refused)
    assert fake.get(key_path(tid, "logs/a"), token=w.tenant["admin_token"]).body == b"secret log"
    assert fake.get(key_path(tid, "logs/b"), token=w.tenant["admin_token"]).status == 404


def test_ineligible_requests_are_refused_at_creation_naming_the_rule(fake):
    gov = fake.create_tenant(geography="USGOV")
    body = {"tenant_id": gov["id"], "operations": ["read"], "prefix": "", "justification": "j",
            "ticket": "T-1", "duration_minutes": 10}
    cases = [
        ({"employer": "subcontractor", "citizenship": ["US"], "screened": True}, "employer"),
        ({"citizenship": ["FR"], "screened": True}, "personnel.citizenship"),
        ({"citizenship": ["US"], "screened": False}, "personnel.screened"),
    ]
    for attributes, rule in cases:
        op = fake.create_principal(fake.admin_token, role="operator", attributes=attributes)
        err = assert_error(fake.post("/v1/access-requests", body, token=op["token"]), 403,
                           "permission_denied")
        assert err["details"]["rule"] == rule, err
        assert err["details"]["region"] == gov["home_region"]
    # Subcontractors are refused even where the region asks nothing.
    us = fake.create_tenant()
    sub = fake.create_principal(fake.admin_token, role="operator",
                                attributes={"employer": "subcontractor"})
    err = assert_error(fake.post("/v1/access-requests", dict(body, tenant_id=us["id"]),
                                 token=sub["token"]), 403, "permission_denied")
    assert err["details"]["rule"] == "employer"
    # Roles that never file requests.
    for token in (fake.admin_token, us["admin_token"],
                  fake.create_principal(fake.admin_token, role="auditor")["token"]):
        assert_error(fake.post("/v1/access-requests", dict(body, tenant_id=us["id"]),
                               token=token), 403, "permission_denied")
    # An eligible operator is accepted; nothing else was recorded.
    ok = fake.create_principal(fake.admin_token, role="operator",
                               attributes={"citizenship": ["US"], "screened": True})
    assert fake.post("/v1/access-requests", body, token=ok["token"]).status == 201
    mgr = fake.create_principal(fake.admin_token, role="manager")
    listed = fake.get("/v1/access-requests", token=mgr["token"]).json()["requests"]
    assert [r["requester"] for r in listed] == [ok["id"]]


def test_nobody_approves_their_own_request(fake):
    w = World(fake)
    r = fake.post("/v1/access-requests",
                  {"tenant_id": w.tenant["id"], "operations": ["read"], "prefix": "logs/",
                   "justification": "j", "ticket": "T", "duration_minutes": 5},
                  token=w.manager["token"])
    assert r.status == 201, r
    req = r.json()
    err = assert_error(w.act(req, "approve", w.manager), 403, "permission_denied")
    assert err["details"]["rule"] == "self_approval"
    assert fake.get(f"/v1/access-requests/{req['id']}",
                    token=w.manager["token"]).json()["state"] == "pending_manager"


# --- the Lockbox path --------------------------------------------------------------------------

def test_full_lockbox_path_grant_scope_expiry_and_access_log(fake):
    w = World(fake, lockbox=True)
    other = fake.create_tenant()
    tid = w.tenant["id"]
    fake.put_object(tid, "logs/a", b"log a", w.tenant["admin_token"])
    fake.put_object(tid, "secrets/b", b"secret b", w.tenant["admin_token"])
    fake.put_object(other["id"], "logs/a", b"other", other["admin_token"])

    req = w.request()
    assert req["state"] == "pending_manager" and req["lockbox"] is True
    # Approvals need a TOTP code.
    assert_error(w.act(req, "approve", w.manager, totp=False), 403, "mfa_required")
    r = w.act(req, "approve", w.manager)
    assert r.status == 200 and r.json()["state"] == "pending_customer", r
    # Lockbox: the manager cannot finish it, the operator cannot activate yet.
    assert_error(w.act(req, "approve", w.manager), 403, "permission_denied")
    assert_error(w.act(req, "activate", w.operator), 409, "failed_precondition")
    r = w.act(req, "approve", w.tenant_admin)
    assert r.status == 200 and r.json()["state"] == "approved", r
    assert_error(w.act(req, "activate", w.operator, totp=False), 403, "mfa_required")
    r = w.act(req, "activate", w.operator)
    assert r.status == 200, r
    grant = r.json()["grant_id"]
    activated = now(fake)
    got = fake.get(f"/v1/access-requests/{req['id']}", token=w.tenant["admin_token"]).json()
    assert got["state"] == "active" and got["grant_id"] == grant
    assert [h["action"] for h in got["history"]] == ["request", "approve", "approve", "activate"]
    assert [h["state"] for h in got["history"]] == ["pending_manager", "pending_customer",
                                                    "approved", "active"]

    # Inside scope.
    r = w.get("logs/a", grant)
    assert r.status == 200 and r.body == b"log a", r
    r = fake.get(list_path(tid, prefix="logs/"), token=w.operator["token"],
                 headers={"X-Custos-Grant": grant})
    assert r.status == 200 and [o["key"] for o in r.json()["objects"]] == ["logs/a"], r
    # Outside: other prefix, other operation, other tenant, wider listing, no grant header.
    assert_error(w.get("secrets/b", grant), 403, "permission_denied")
    assert_error(fake.put(key_path(tid, "logs/c"), b"x", token=w.operator["token"],
                          headers={"X-Custos-Grant": grant}), 403, "permission_denied")
    assert_error(fake.delete(key_path(tid, "logs/a"), token=w.operator["token"],
                             headers={"X-Custos-Grant": grant}), 403, "permission_denied")
    assert_error(w.get("logs/a", grant, tenant_id=other["id"]), 403, "permission_denied")
    assert_error(fake.get(list_path(tid), token=w.operator["token"],
                          headers={"X-Custos-Grant": grant}), 403, "permission_denied")
    assert_error(w.get("logs/a", None), 403, "permission_denied")
    # Purpose must fit the grant's; commercial purposes never do.
    assert_error(w.get("logs/a", grant, **{"X-Custos-Purpose": "security"}), 403,
                 "purpose_not_allowed")
    assert_error(w.get("logs/a", grant, **{"X-Custos-Purpose": "advertising"}), 403,
                 "purpose_not_allowed")
    # Another principal cannot use the grant.
    mgr_try = fake.get(key_path(tid, "logs/a"), token=w.manager["token"],
                       headers={"X-Custos-Grant": grant})
    assert_error(mgr_try, 403, "permission_denied")

    # The tenant's access log: every transition and the operator's accesses, with
    # justification, ticket and grant; each record verifies against the public ledger.
    log = access_log(fake, w.tenant)
    kinds = [e["parsed"]["kind"] for e in log]
    for kind in ("access.request", "access.approve", "access.activate"):
        assert kind in kinds, kinds
    ops = [e for e in log if e["parsed"]["actor"] == w.operator["id"]
           and e["parsed"]["kind"].startswith("data.")]
    reads = [e for e in ops if e["parsed"]["kind"] in ("data.read", "data.list")]
    assert len(reads) == 2, ops
    for e in reads:
        assert e["parsed"]["grant"] == grant
        assert e["parsed"]["justification"] == "SUP-7: customer cannot read its logs"
        assert e["parsed"]["ticket"] == "SUP-7"
        assert e["parsed"]["purpose"] == "support"
    assert any(e["parsed"]["kind"] == "data.refused" and e["parsed"].get("grant") == grant
               for e in ops)
    size, root = wait_for_checkpoint(fake, max(e["ledger_index"] for e in log) + 1)
    for e in log:
        if e["parsed"].get("grant") == grant or e["parsed"]["kind"].startswith("access."):
            assert_record_in_ledger(fake, e, size, root)

    # Expiry: 30 minutes after activation (not after the request) the grant stops.
    advance(fake, activated + 30 * 60 - now(fake) + 1)
    assert_error(w.get("logs/a", grant), 403, "permission_denied")
    got = fake.get(f"/v1/access-requests/{req['id']}", token=w.operator["token"]).json()
    assert got["state"] == "expired" and "expires_at" not in got
    assert got["history"][-1]["action"] == "expire"
    assert "access.expire" in [e["parsed"]["kind"] for e in access_log(fake, w.tenant)]


def test_revoked_and_closed_grants_stop_at_once(fake):
    w = World(fake)
    fake.put_object(w.tenant["id"], "logs/a", b"a", w.tenant["admin_token"])
    req, grant = w.granted()
    assert w.get("logs/a", grant).status == 200
    r = fake.post(f"/v1/access-requests/{req['id']}/revoke", token=w.tenant["admin_token"])
    assert r.status == 200 and r.json()["state"] == "revoked", r
    assert_error(w.get("logs/a", grant), 403, "permission_denied")
    assert_error(fake.post(f"/v1/access-requests/{req['id']}/close",
                           token=w.operator["token"]), 409, "failed_precondition")

    req2, grant2 = w.granted(operations=["read", "write"])
    assert fake.put(key_path(w.tenant["id"], "logs/fix"), b"fixed", token=w.operator["token"],
                    headers={"X-Custos-Grant": grant2}).status == 201
    assert_error(fake.post(f"/v1/access-requests/{req2['id']}/close",
                           token=w.manager["token"]), 403, "permission_denied")
    r = fake.post(f"/v1/access-requests/{req2['id']}/close", token=w.operator["token"])
    assert r.status == 200 and r.json()["state"] == "closed", r
    assert_error(w.get("logs/a", grant2), 403, "permission_denied")
    kinds = [e["parsed"]["kind"] for e in access_log(fake, w.tenant)]
    assert "access.revoke" in kinds and "access.close" in kinds
    # Nothing is deleted: both stay readable with their history.
    states = {r["id"]: r["state"] for r in
              fake.get("/v1/access-requests", token=w.manager["token"]).json()["requests"]}
    assert states == {req["id"]: "revoked", req2["id"]: "closed"}


def test_revoked_grant_stops_on_every_instance_within_a_second(server_factory):
    """The instance that revokes refuses the grant at once (above); another instance re-reads a
    grant it has cached at least every GRANT_RECHECK_S, so it refuses within that."""
    requires_several_instances()
    a = server_factory("--fake-clock")
    b = server_factory("--fake-clock", data_dir=a.data_dir)
    w = World(a)
    a.put_object(w.tenant["id"], "logs/a", b"a", w.tenant["admin_token"])
    req, grant = w.granted()

    def get_on_b():
        return b.get(key_path(w.tenant["id"], "logs/a"), token=w.operator["token"],
                     headers={"X-Custos-Grant": grant})

    assert get_on_b().status == 200  # b has read the grant, so its cache holds it
    r = a.post(f"/v1/access-requests/{req['id']}/revoke", token=w.tenant["admin_token"])
    assert r.status == 200 and r.json()["state"] == "revoked", r
    revoked = time.monotonic()
    assert_error(w.get("logs/a", grant), 403, "permission_denied")
    # The poll allows one more second for this process's own scheduling, not for the server.
    stopped = None
    while stopped is None and time.monotonic() - revoked < GRANT_RECHECK_S + 1.0:
        if get_on_b().status == 403:
            stopped = time.monotonic() - revoked
        time.sleep(0.05)
    assert stopped is not None, "the revoked grant still works on b after 2 s"
    assert_error(get_on_b(), 403, "permission_denied")  # and it stays refused
    refused = [e["parsed"] for e in access_log(a, w.tenant)
               if e["parsed"]["kind"] == "data.refused" and e["parsed"].get("grant") == grant]
    assert refused, "b's refusals are not in the tenant's access log"


def test_pending_and_unactivated_requests_expire_on_the_fake_clock(fake):
    w = World(fake)
    pending = w.request()
    approved = w.request()
    assert w.act(approved, "approve", w.manager).status == 200
    advance(fake, 12 * 3600 + 5)
    for req in (pending, approved):
        got = fake.get(f"/v1/access-requests/{req['id']}", token=w.manager["token"]).json()
        assert got["state"] == "expired", got
    assert_error(w.act(approved, "activate", w.operator), 409, "failed_precondition")
    expired = fake.get("/v1/access-requests?state=expired",
                       token=w.manager["token"]).json()["requests"]
    assert {r["id"] for r in expired} == {pending["id"], approved["id"]}


# --- TOTP --------------------------------------------------------------------------------------

def test_totp_replay_wrong_code_and_two_steps_away_are_refused(fake):
    w = World(fake)
    secret = w.secrets[w.operator["id"]]
    req = w.request()
    assert w.act(req, "approve", w.manager).status == 200
    url = f"/v1/access-requests/{req['id']}/activate"
    t = advance(fake, STEP)
    # Three failures here and two replays below: within the rate limit (five in five minutes).
    for bad in (oathtool(secret, t + 2 * STEP), oathtool(secret, t - 2 * STEP),
                wrong_code(fake, secret)):
        if bad == oathtool(secret, t):
            continue
        assert_error(fake.post(url, token=w.operator["token"],
                               headers={"X-Custos-TOTP": bad}), 403, "mfa_required")
    good = oathtool(secret, t)
    assert fake.post(url, token=w.operator["token"], headers={"X-Custos-TOTP": good}).status == 200
    # The same code again (on another request) is a replay; so is the previous step's code.
    req2 = w.request()
    assert w.act(req2, "approve", w.manager).status == 200
    url2 = f"/v1/access-requests/{req2['id']}/activate"
    # Codes still inside the +-1 step window are refused by the replay protection.
    replays = 0
    for at in (t, t - STEP):
        err = assert_error(fake.post(url2, token=w.operator["token"],
                                     headers={"X-Custos-TOTP": oathtool(secret, at)}), 403,
                           "mfa_required")
        if abs(now(fake) // STEP - at // STEP) <= 1:
            assert "already used" in err["message"], err
            replays += 1
    assert replays >= 1
    assert fake.get(f"/v1/access-requests/{req2['id']}",
                    token=w.operator["token"]).json()["state"] == "approved"
    advance(fake, 6 * 60)  # past the failure window
    assert w.act(req2, "activate", w.operator).status == 200


def test_repeated_wrong_codes_are_rate_limited(fake):
    w = World(fake)
    req = w.request()
    url = f"/v1/access-requests/{req['id']}/approve"
    wrong = {"X-Custos-TOTP": wrong_code(fake, w.secrets[w.manager["id"]])}
    statuses = [fake.post(url, token=w.manager["token"], headers=wrong).status for _ in range(7)]
    assert statuses == [403] * 5 + [429] * 2, statuses
    assert_error(fake.post(url, token=w.manager["token"], headers=wrong), 429, "rate_limited")
    advance(fake, 6 * 60)  # the window passes
    assert w.act(req, "approve", w.manager).status == 200


def test_wrong_codes_sent_at_once_get_no_more_checks_than_the_limit(fake):
    """The limit is taken before a code is checked, atomically: 40 guesses at once get five
    checks between them (a read-then-count limit let 8 through)."""
    w = World(fake)
    req = w.request()
    url = f"/v1/access-requests/{req['id']}/approve"
    wrong = {"X-Custos-TOTP": wrong_code(fake, w.secrets[w.manager["id"]])}
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(
            lambda _: fake.post(url, token=w.manager["token"], headers=wrong), range(40)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [403] * 5 + [429] * 35, statuses
    got = fake.get(f"/v1/access-requests/{req['id']}", token=w.manager["token"]).json()
    assert got["state"] == "pending_manager", got


def test_wrong_code_limit_is_shared_by_all_instances(server_factory):
    """The failure count lives in the store: wrong codes sent to different instances add up."""
    requires_several_instances()
    a = server_factory("--fake-clock")
    b = server_factory("--fake-clock", data_dir=a.data_dir)
    w = World(a)
    req = w.request()
    url = f"/v1/access-requests/{req['id']}/approve"
    wrong = {"X-Custos-TOTP": wrong_code(a, w.secrets[w.manager["id"]])}
    for server in (a, a, a, b, b):  # five in the window, split over the two instances
        assert_error(server.post(url, token=w.manager["token"], headers=wrong), 403,
                     "mfa_required")
    for server in (a, b):  # each instance alone saw fewer than five
        assert_error(server.post(url, token=w.manager["token"], headers=wrong), 429,
                     "rate_limited")
        assert_error(server.post(url, token=w.manager["token"], headers=w.code(w.manager)), 429,
                     "rate_limited")
    got = a.get(f"/v1/access-requests/{req['id']}", token=w.manager["token"]).json()
    assert got["state"] == "pending_manager", got  # nothing was approved


def test_reenrolment_needs_a_current_code(fake):
    w = World(fake)
    url = f"/v1/principals/{w.operator['id']}/mfa/totp"
    assert_error(fake.post(url, token=w.operator["token"]), 403, "mfa_required")
    assert_error(fake.post(url, token=w.manager["token"], headers=w.code(w.manager)), 403,
                 "permission_denied")
    r = fake.post(url, token=w.operator["token"], headers=w.code(w.operator))
    assert r.status == 200, r
    assert r.json()["secret"] != w.secrets[w.operator["id"]]


# --- purpose and consent -----------------------------------------------------------------------

def test_commercial_purposes_need_recorded_consent(fake):
    w = World(fake)
    tid = w.tenant["id"]
    user = fake.create_principal(w.tenant["admin_token"], role="tenant_user", tenant_id=tid)
    fake.put_object(tid, "doc", b"d", w.tenant["admin_token"])
    marketing = {"X-Custos-Purpose": "marketing"}
    assert_error(fake.get(key_path(tid, "doc"), token=user["token"], headers=marketing), 403,
                 "purpose_not_allowed")
    consent = f"/v1/tenants/{tid}/consents/marketing"
    assert_error(fake.put(consent, token=w.tenant["admin_token"]), 403, "mfa_required")
    assert_error(fake.put(consent, token=user["token"]), 403, "permission_denied")
    assert_error(fake.put(f"/v1/tenants/{tid}/consents/support", token=w.tenant["admin_token"],
                          headers=w.code(w.tenant_admin)), 400, "invalid_argument")
    # The route takes no body: a malformed one changes nothing, and spends no TOTP code (the
    # same code then records the consent).
    code = w.code(w.tenant_admin)
    assert_error(fake.request("PUT", consent, b"{bad", token=w.tenant["admin_token"],
                              headers=code), 400, "invalid_argument")
    assert_error(fake.get(key_path(tid, "doc"), token=user["token"], headers=marketing), 403,
                 "purpose_not_allowed")
    r = fake.put(consent, token=w.tenant["admin_token"], headers=code)
    assert r.status == 200, r
    assert fake.get(key_path(tid, "doc"), token=user["token"], headers=marketing).status == 200
    assert_error(fake.get(key_path(tid, "doc"), token=user["token"],
                          headers={"X-Custos-Purpose": "profiling"}), 403, "purpose_not_allowed")
    r = fake.delete(consent, token=w.tenant["admin_token"], headers=w.code(w.tenant_admin))
    assert r.status == 200, r
    assert_error(fake.get(key_path(tid, "doc"), token=user["token"], headers=marketing), 403,
                 "purpose_not_allowed")
    kinds = [e["parsed"]["kind"] for e in access_log(fake, w.tenant)]
    assert kinds.count("consent.grant") == 1 and kinds.count("consent.revoke") == 1
    reads = [e["parsed"] for e in access_log(fake, w.tenant) if e["parsed"]["kind"] == "data.read"]
    assert [p["purpose"] for p in reads] == ["marketing"]


# --- bad input ---------------------------------------------------------------------------------

def test_bad_input_is_refused_and_changes_nothing(fake):
    w = World(fake)
    mgr = w.manager["token"]

    def snapshot():
        return fake.get("/v1/access-requests", token=mgr).json()["requests"]

    req = w.request()
    before = snapshot()
    for action in ("approve", "deny", "activate", "revoke", "close"):
        assert_error(fake.post(f"/v1/access-requests/AAAAAAAAAAAAAAAAAAAAAA/{action}",
                               token=mgr), 404, "not_found")
    assert_error(fake.get("/v1/access-requests/AAAAAAAAAAAAAAAAAAAAAA", token=mgr), 404,
                 "not_found")
    # Wrong state.
    assert_error(w.act(req, "activate", w.operator), 409, "failed_precondition")
    assert_error(fake.post(f"/v1/access-requests/{req['id']}/revoke", token=mgr), 409,
                 "failed_precondition")
    assert_error(fake.post(f"/v1/access-requests/{req['id']}/close",
                           token=w.operator["token"]), 409, "failed_precondition")
    base = {"tenant_id": w.tenant["id"], "operations": ["read"], "prefix": "logs/",
            "justification": "j", "ticket": "T-1", "duration_minutes": 30}
    bad_bodies = [
        dict(base, duration_minutes=481),
        dict(base, duration_minutes=0),
        dict(base, justification=""),
        dict(base, ticket=""),
        dict(base, operations=[]),
        dict(base, operations=["root"]),
        dict(base, operations="read"),
        dict(base, prefix="../etc"),
        dict(base, prefix="logs/\u0001"),
        dict(base, justification="hidden\u0000tail"),
        dict(base, ticket="T-1\nT-2"),
        dict(base, purpose="marketing"),
        dict(base, extra=1),
        {k: v for k, v in base.items() if k != "ticket"},
        # No prefix is not the whole tenant (that is asked for as "").
        {k: v for k, v in base.items() if k != "prefix"},
        dict(base, prefix=None),
    ]
    for body in bad_bodies:
        assert_error(fake.post("/v1/access-requests", body, token=w.operator["token"]), 400,
                     "invalid_argument")
    assert_error(fake.post("/v1/access-requests", b"{not json", token=w.operator["token"]), 400,
                 "invalid_argument")
    assert_error(fake.post("/v1/access-requests", dict(base, tenant_id="AAAAAAAAAAAAAAAAAAAAAA"),
                           token=w.operator["token"]), 404, "not_found")
    assert_error(fake.get("/v1/access-requests?state=bogus", token=mgr), 400, "invalid_argument")
    assert snapshot() == before
    # Other principals do not see the request at all.
    other_op = fake.create_principal(fake.admin_token, role="operator")
    assert_error(fake.get(f"/v1/access-requests/{req['id']}", token=other_op["token"]), 404,
                 "not_found")
    assert fake.get("/v1/access-requests", token=other_op["token"]).json()["requests"] == []


# --- sampled audits ----------------------------------------------------------------------------

def month_of(t: int) -> tuple[str, int]:
    """The YYYY-MM period holding unix time t, and its end."""
    y, m = time.gmtime(t)[:2]
    end = calendar.timegm((y + (m == 12), m % 12 + 1, 1, 0, 0, 0))
    return f"{y:04d}-{m:02d}", end


def test_sampled_audit_is_the_same_for_every_auditor_and_recomputable(fake):
    w = World(fake)
    grants = [w.granted()[1] for _ in range(4)]
    period, end = month_of(now(fake))
    auditors = [fake.create_principal(fake.admin_token, role="auditor") for _ in range(2)]
    url = f"/v1/audit/sample?period={period}&rate=0.5"
    assert_error(fake.get(url, token=auditors[0]["token"]), 409, "failed_precondition")
    assert_error(fake.get(url, token=w.manager["token"]), 403, "permission_denied")
    for bad in ("period=2026-13&rate=0.5", f"period={period}&rate=2", f"period={period}"):
        assert_error(fake.get(f"/v1/audit/sample?{bad}", token=auditors[0]["token"]), 400,
                     "invalid_argument")

    # Enough entries that the seed's entry is past the first entry bundle (256 entries).
    for i in range(260):
        fake.put_object(w.tenant["id"], f"filler/{i}", b"x", w.tenant["admin_token"])
    # Time passes beyond the period's end; a later entry fixes the seed.
    advance(fake, end - now(fake) + 60)
    fake.put_object(w.tenant["id"], "after", b"x", w.tenant["admin_token"])
    last = max(e["ledger_index"] for e in access_log(fake, w.tenant))
    wait_for_checkpoint(fake, last + 1)

    answers = [fake.get(url, token=a["token"]) for a in auditors]
    for r in answers:
        assert r.status == 200, r
    a, b = (r.json() for r in answers)
    assert a == b
    assert a["candidates"] == 4

    # Recompute from the public tiles: n = first entry with ts >= period end; seed = root of
    # the tree of size n+1; sampled iff HMAC-SHA256(seed, grant) < rate * 2^256.
    size, _ = checkpoint(fake)
    entries = ledger_entries(fake, size)
    n = next(i for i, e in enumerate(entries) if json.loads(e)["ts"] >= end * 1000)
    assert n > 256, n
    seed = root_of([leaf_hash(e) for e in entries[:n + 1]])
    assert a["seed_tree_size"] == n + 1 and a["seed"] == seed.hex()
    threshold = Fraction(0.5) * 2 ** 256
    expected = sorted(g for g in grants
                      if int.from_bytes(hmac.new(seed, g.encode(), hashlib.sha256).digest(),
                                        "big") < threshold)
    assert sorted(g["grant_id"] for g in a["grants"]) == expected
    everyone = fake.get(f"/v1/audit/sample?period={period}&rate=1",
                        token=auditors[0]["token"]).json()
    assert sorted(g["grant_id"] for g in everyone["grants"]) == sorted(grants)

    # Verdicts, one per auditor per grant.
    v = {"grant_id": grants[0], "period": period, "verdict": "compliant", "note": "ticket ok"}
    assert fake.post("/v1/audit/verdicts", v, token=auditors[0]["token"]).status == 201
    assert_error(fake.post("/v1/audit/verdicts", v, token=auditors[0]["token"]), 409, "conflict")
    assert fake.post("/v1/audit/verdicts", v, token=auditors[1]["token"]).status == 201
    assert_error(fake.post("/v1/audit/verdicts", dict(v, verdict="meh"),
                           token=auditors[0]["token"]), 400, "invalid_argument")
    assert_error(fake.post("/v1/audit/verdicts", dict(v, grant_id="nope"),
                           token=auditors[0]["token"]), 404, "not_found")
    listed = fake.get(f"/v1/audit/verdicts?period={period}",
                      token=auditors[0]["token"]).json()["verdicts"]
    assert len(listed) == 2


def test_totp_secret_is_sealed_at_rest(fake):
    w = World(fake)
    secret = w.secrets[w.operator["id"]]
    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    fake.stop()  # flush the WAL into the files
    fake.start()
    assert scan_data_dir(fake.data_dir, [raw, secret.encode()]) == []
    # Still usable after the restart: the sealed secret unwraps.
    req = w.request()
    assert w.act(req, "approve", w.manager).status == 200
