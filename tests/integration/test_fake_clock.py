"""`custos serve --fake-clock`: GET/POST /v1/test/clock exist only with the flag, POST is for the
admin, and every promise-dated check (here: token expiry) reads the injected clock."""

import time

import pytest

from conftest import assert_error, key_path, requires_sqlite_files


def test_clock_routes_do_not_exist_without_the_flag(server):
    assert_error(server.get("/v1/test/clock"), 404, "not_found")
    assert_error(server.post("/v1/test/clock", {"advance_seconds": 3600},
                             token=server.admin_token), 404, "not_found")


@pytest.fixture
def clock_server(server_factory):
    return server_factory("--fake-clock")


def _now(s) -> int:
    r = s.get("/v1/test/clock")
    assert r.status == 200, r
    body = r.json()
    assert set(body) == {"now"} and isinstance(body["now"], int), body
    return body["now"]


def test_get_clock_answers_now(clock_server):
    now = _now(clock_server)
    assert abs(now - time.time()) < 5


def test_admin_advances_clock(clock_server):
    s = clock_server
    before = _now(s)
    r = s.post("/v1/test/clock", {"advance_seconds": 3600}, token=s.admin_token)
    assert r.status == 200, r
    answered = r.json()["now"]
    assert 3600 <= answered - before <= 3605
    assert 3600 <= _now(s) - before <= 3605
    # A zero step is allowed and changes nothing.
    r = s.post("/v1/test/clock", {"advance_seconds": 0}, token=s.admin_token)
    assert r.status == 200 and 3600 <= r.json()["now"] - before <= 3605


@pytest.mark.parametrize("body,token,status,code", [
    ({"advance_seconds": 3600}, "tenant", 403, "permission_denied"),
    ({"advance_seconds": 3600}, "operator", 403, "permission_denied"),
    ({"advance_seconds": 3600}, None, 401, "unauthenticated"),
    ({"advance_seconds": -1}, "admin", 400, "invalid_argument"),
    ({"advance_seconds": -3600}, "admin", 400, "invalid_argument"),
    ({"advance_seconds": "3600"}, "admin", 400, "invalid_argument"),
    ({"advance_seconds": 1.5}, "admin", 400, "invalid_argument"),
    ({"advance_seconds": 10**40}, "admin", 400, "invalid_argument"),
    ({}, "admin", 400, "invalid_argument"),
    ({"advance_seconds": 60, "extra": 1}, "admin", 400, "invalid_argument"),
    (b"{not json", "admin", 400, "invalid_argument"),
], ids=["tenant", "operator", "no-token", "negative", "negative-hour", "string", "float",
        "huge", "missing", "unknown-field", "malformed"])
def test_bad_clock_requests_do_not_move_it(clock_server, body, token, status, code):
    s = clock_server
    t = s.create_tenant()
    tokens = {"admin": s.admin_token, "tenant": t["admin_token"], None: None,
              "operator": s.create_principal(s.admin_token, role="operator")["token"]}
    before = _now(s)
    assert_error(s.post("/v1/test/clock", body, token=tokens[token]), status, code)
    assert _now(s) - before < 3, "a refused request moved the clock"


def test_token_expiry_reads_the_injected_clock(clock_server):
    s = clock_server
    t = s.create_tenant()
    short = s.create_principal(t["admin_token"], role="tenant_user", tenant_id=t["id"],
                               expires_in_days=1)
    me = lambda tok: s.get("/v1/principals/me", token=tok)  # noqa: E731
    assert me(short["token"]).status == 200
    assert me(t["admin_token"]).status == 200

    assert s.post("/v1/test/clock", {"advance_seconds": 86400 + 10},
                  token=s.admin_token).status == 200
    assert_error(me(short["token"]), 401, "unauthenticated")
    assert me(t["admin_token"]).status == 200, "default expiry is 90 days"

    assert s.post("/v1/test/clock", {"advance_seconds": 89 * 86400},
                  token=s.admin_token).status == 200
    assert_error(me(t["admin_token"]), 401, "unauthenticated")
    # The admin's token has no expiry by default.
    assert me(s.admin_token).status == 200


def test_a_deleted_objects_tombstone_is_purged_a_week_later(clock_server):
    """A delete leaves a tombstone row (the key, no content) in both cells, which orders the
    object's writes still on their way; the tombstone-purge job removes it a week later."""
    requires_sqlite_files()
    s = clock_server
    t = s.create_tenant(geography="EU")
    s.put_object(t["id"], "gone", b"deleted content", t["admin_token"])
    assert s.delete(key_path(t["id"], "gone"), token=t["admin_token"]).status == 204

    def tombstones() -> list:
        return [s.query_cell(region, "SELECT key, length(sealed) FROM objects "
                                     "WHERE tenant_id = ? AND deleted = 1", (t["id"],))
                for region in (t["home_region"], t["replica_region"])]

    assert tombstones() == [[("gone", 0)], [("gone", 0)]]
    # The clock route runs the jobs that became due.
    day = 24 * 3600
    assert s.post("/v1/test/clock", {"advance_seconds": 6 * day}, token=s.admin_token).status \
        == 200
    assert tombstones() == [[("gone", 0)], [("gone", 0)]]
    assert s.post("/v1/test/clock", {"advance_seconds": day + 60}, token=s.admin_token).status \
        == 200
    assert tombstones() == [[], []]
    assert s.get(key_path(t["id"], "gone"), token=t["admin_token"]).status == 404
