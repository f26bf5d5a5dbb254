"""Fail closed: when the ledger cannot record an access, the access is refused and not performed."""

from __future__ import annotations

import json
import sqlite3
import threading

from conftest import assert_error, key_path, requires_sqlite_files


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
