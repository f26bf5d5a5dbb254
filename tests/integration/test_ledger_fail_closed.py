"""Fail closed: when the ledger cannot record an access, the access is refused and not performed."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

from conftest import assert_error, key_path, requires_sqlite_files, sha256_hex


def test_accesses_are_refused_with_503_while_the_ledger_cannot_write(server_factory):
    requires_sqlite_files()
    server = server_factory()
    t = server.create_tenant()
    tok = t["admin_token"]
    server.put_object(t["id"], "before", b"stored before the fault", tok)

    # A real fault: another process holds the control store's write lock.
    locker = sqlite3.connect(server.data_dir / "control.db", isolation_level=None, timeout=1)
    locker.execute("BEGIN EXCLUSIVE")
    results = {}

    def call(name, method, path, body=None):
        results[name] = server.request(method, path, body, token=tok)

    threads = [
        threading.Thread(target=call, args=("put", "PUT", key_path(t["id"], "during"), b"x")),
        threading.Thread(target=call, args=("get", "GET", key_path(t["id"], "before"))),
        threading.Thread(target=call, args=("list", "GET", f"/v1/tenants/{t['id']}/objects")),
        threading.Thread(target=call, args=("delete", "DELETE", key_path(t["id"], "before"))),
    ]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=30)
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    for name in ("put", "get", "list", "delete"):
        r = results[name]
        assert_error(r, 503, "unavailable")
        assert r.header("Retry-After"), name
        assert b"stored before the fault" not in r.body  # the read was not served unlogged

    # Nothing was performed: the write never landed, the delete never happened.
    r = server.get(key_path(t["id"], "during"), token=tok)
    assert_error(r, 404, "not_found")
    r = server.get(key_path(t["id"], "before"), token=tok)
    assert r.status == 200 and r.body == b"stored before the fault"
    for region in (t["home_region"], t["replica_region"]):
        rows = server.query_cell(region, "SELECT key FROM objects WHERE tenant_id = ?", (t["id"],))
        assert sorted(k for (k,) in rows) == ["before"], region

    # The log holds no record of the refused accesses, and exactly the accesses that happened.
    log = server.get(f"/v1/tenants/{t['id']}/access-log?limit=1000", token=tok).json()
    records = [json.loads(e["record"]) for e in log["events"]]
    writes = [r["resource"] for r in records if r["kind"] == "data.write"]
    deletes = [r for r in records if r["kind"] == "data.delete"]
    assert writes == ["before"]
    assert deletes == []
    assert server.healthy()


def test_a_put_a_cell_cannot_take_is_answered_503_and_its_outcome_recorded(server_factory):
    """The act fails after its access was logged: the client gets 503, the log says so (an
    outcome record pointing at the write), and the server goes on serving."""
    requires_sqlite_files()
    server = server_factory()
    t = server.create_tenant()
    tok = t["admin_token"]
    locker = sqlite3.connect(server.cell_path(t["replica_region"]), isolation_level=None,
                             timeout=1)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the replica cell's write lock
    try:
        r = server.put(key_path(t["id"], "blocked"), b"x", token=tok)
        get = server.get(key_path(t["id"], "missing"), token=tok)  # reads still answered
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert_error(r, 503, "unavailable")
    assert_error(get, 404, "not_found")

    log = server.get(f"/v1/tenants/{t['id']}/access-log?limit=1000", token=tok).json()["events"]
    records = {e["ledger_index"]: json.loads(e["record"]) for e in log}
    writes = [i for i, rec in records.items() if rec["kind"] == "data.write"]
    assert len(writes) == 1
    outcomes = [rec for rec in records.values() if rec["kind"] == "outcome"]
    assert {o["of"] for o in outcomes if o["outcome"] == "unavailable"} == {writes[0]}

    # The lock gone, the same put succeeds and both cells agree.
    server.put_object(t["id"], "blocked", b"y", tok)
    for region in (t["home_region"], t["replica_region"]):
        rows = server.query_cell(region, "SELECT sha256 FROM objects WHERE tenant_id = ? AND "
                                 "key = ?", (t["id"], "blocked"))
        assert rows == [(sha256_hex(b"y"),)], region
    assert server.healthy()


def test_a_tenant_creation_that_fails_after_its_entry_gets_an_outcome(server_factory):
    """tenant.create is logged before the tenant's cells are set up; when that fails, the public
    log shows the creation's outcome beside it (same pseudonym), and no tenant exists."""
    from test_access import checkpoint, ledger_entries

    requires_sqlite_files()
    server = server_factory()
    tenants_before = server.query_control("SELECT COUNT(*) FROM tenants")[0][0]
    # A real refusal from every cell: a trigger aborts the insert of a tenant's first data key.
    refuse = ("CREATE TRIGGER refuse_keys BEFORE INSERT ON data_keys "
              "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    cells = [server.cell_path(region) for region in server.cell_regions()]
    for path in cells:
        with sqlite3.connect(path) as db:
            db.execute(refuse)
    try:
        r = server.post("/v1/tenants", {"name": "Never", "customer_type": "enterprise",
                                        "geography": "US", "services": ["storage"],
                                        "technologies": [], "lockbox": False},
                        token=server.admin_token)
    finally:
        for path in cells:
            with sqlite3.connect(path) as db:
                db.execute("DROP TRIGGER refuse_keys")
    assert r.status >= 500, r
    assert server.query_control("SELECT COUNT(*) FROM tenants")[0][0] == tenants_before
    ok = server.create_tenant()  # the server goes on; a created tenant has no outcome entry

    deadline = time.monotonic() + 10
    while True:
        size, _ = checkpoint(server)
        kinds: dict[str, list[str]] = {}
        for entry in ledger_entries(server, size):
            e = json.loads(entry)
            kinds.setdefault(e["tenant"], []).append(e["kind"])
        failed = [p for p, k in kinds.items() if k == ["tenant.create", "outcome"]]
        created = [p for p, k in kinds.items() if k[0] == "tenant.create" and "outcome" not in k]
        if failed and created:
            break
        assert time.monotonic() < deadline, f"no outcome for the failed creation: {kinds}"
        time.sleep(0.2)
    assert len(failed) == 1
    assert server.healthy() and ok["id"]
