"""Several `custos serve` processes on one PostgreSQL data directory (skipped on SQLite, where one
process owns the data directory), beyond the shared ledger (test_ledger_multi_instance.py):
tenant keys. A tenant created on one instance is usable on every other at once (its KEK is in
the keyring in the control store; an instance that misses a key reloads it), and tenants created
at the same time on different instances all keep their keys (the keyring is saved by
compare-and-swap and a lost race redoes the change)."""

from __future__ import annotations

import os
import random
import subprocess
import threading

from conftest import key_path, pg_database_for, requires_several_instances


def test_tenant_created_on_one_instance_is_usable_on_the_other_at_once(server_factory):
    requires_several_instances()
    a = server_factory()
    b = server_factory(data_dir=a.data_dir)  # started before the tenant exists
    t = a.create_tenant(geography="EU")
    b.put_object(t["id"], "doc", b"written through b", t["admin_token"])
    assert a.get(key_path(t["id"], "doc"), token=t["admin_token"]).body == b"written through b"
    r = b.get(f"/v1/tenants/{t['id']}", token=t["admin_token"])
    assert r.status == 200, r
    # The tenant's principals (names sealed under its KEK) authenticate on b as well.
    p = a.create_principal(t["admin_token"], role="tenant_user", name="reader one",
                           tenant_id=t["id"])
    me = b.get("/v1/principals/me", token=p["token"])
    assert me.status == 200 and me.json()["name"] == "reader one", me


def test_tenants_created_concurrently_on_two_instances_all_keep_their_keys(server_factory):
    requires_several_instances()
    a = server_factory()
    b = server_factory(data_dir=a.data_dir)
    created: list[tuple[dict, object]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def create(server, n: int) -> None:
        for _ in range(n):
            try:
                t = server.create_tenant(geography="US")
            except AssertionError as e:
                with lock:
                    errors.append(str(e)[:300])
                continue
            with lock:
                created.append((t, server))

    threads = [threading.Thread(target=create, args=(s, 6)) for s in (a, b, a, b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not errors, errors
    assert len(created) == 24
    # Each tenant works through the other instance, and through a third started afterwards
    # (which loads the keyring as stored: every KEK must be in it).
    c = server_factory(data_dir=a.data_dir)
    for t, origin in created:
        other = b if origin is a else a
        other.put_object(t["id"], "k", t["id"].encode(), t["admin_token"])
        r = c.get(key_path(t["id"], "k"), token=t["admin_token"])
        assert r.status == 200 and r.body == t["id"].encode(), r


def test_one_object_written_through_two_instances_at_once_ends_alike_in_both_cells(
        server_factory):
    """Puts and deletes of a few keys through two instances at once: both cells end with the same
    rows (each object as the write with the higher stamp left it: store.h, CellWrite), and every
    key reads through either instance as the cells hold it, deleted ones (tombstones) as 404.
    Whether two instances' writes actually reach the cells in opposite orders here depends on
    timing (on a quiet machine they rarely do); the unit test
    WritesThatReachTheCellsInOppositeOrdersLeaveThemAlike forces that order."""
    requires_several_instances()
    a = server_factory()
    b = server_factory(data_dir=a.data_dir)
    t = a.create_tenant(geography="US")
    token, keys = t["admin_token"], ["k0", "k1", "k2"]
    unexpected: list[str] = []

    def work(server, seed: int) -> None:
        rnd = random.Random(seed)
        for i in range(60):
            path = key_path(t["id"], rnd.choice(keys))
            if rnd.random() < 0.3:
                r = server.delete(path, token=token)
                ok = r.status in (204, 404)
            else:
                r = server.put(path, f"written by {seed}.{i}".encode(), token=token)
                ok = r.status in (200, 201)
            # 409: a write that lost its race to a later stamp three times over.
            if not ok and r.status != 409:
                unexpected.append(str(r)[:300])

    threads = [threading.Thread(target=work, args=(s, n)) for n, s in enumerate((a, b, a, b))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not unexpected, unexpected

    home = cell_rows(a.data_dir, t["id"], t["home_region"])
    replica = cell_rows(a.data_dir, t["id"], t["replica_region"])
    assert home == replica
    for key in keys:
        rows = [row for row in home if row[0] == key]
        live = bool(rows) and rows[0][1] == "f"
        for server in (a, b):
            r = server.get(key_path(t["id"], key), token=token)
            assert r.status == (200 if live else 404), (key, r)


def cell_rows(data_dir, tenant_id: str, region: str) -> list[tuple[str, ...]]:
    """The tenant's rows in a PostgreSQL cell: key, deleted, md5 of the sealed bytes, stamp."""
    dsn = pg_database_for(os.environ["CUSTOS_PG_DSN"], data_dir)
    r = subprocess.run(
        ["psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", dsn, "-c",
         f"SELECT key, deleted, md5(sealed), stamp FROM custos_cell_{region.replace('-', '_')}"
         f".objects WHERE tenant_id = '{tenant_id}' ORDER BY key"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [tuple(line.split("\t")) for line in r.stdout.splitlines() if line]


def test_instances_stamp_their_writes_with_numbers_handed_out_in_turn(server_factory):
    """Each instance's write stamps end in a 10-bit number it claimed from the control store
    at start (data.h, ClaimWriteInstance), the next one after the previous instance's, so two
    instances never tie on a stamp (random numbers tied for 1 pair in 1,024)."""
    requires_several_instances()
    a = server_factory()
    b = server_factory(data_dir=a.data_dir)
    t = a.create_tenant(geography="US")
    token = t["admin_token"]
    assert a.put(key_path(t["id"], "from-a"), b"a", token=token).status == 201
    assert b.put(key_path(t["id"], "from-b"), b"b", token=token).status == 201
    bits = {row[0]: int(row[3]) % 1024 for row in cell_rows(a.data_dir, t["id"], t["home_region"])}
    assert bits["from-b"] == (bits["from-a"] + 1) % 1024, bits
