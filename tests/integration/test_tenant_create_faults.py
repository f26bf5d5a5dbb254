"""A tenant is stored with its first admin or not at all.

The provider's admin cannot create a tenant's principals (only the tenant's own tenant_admin
can), so a tenant stored without its first admin could never be used by anyone.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess

from conftest import BACKEND, key_path, pg_database_for

# A real fault in the control store: a trigger refuses every new tenant_admin principal.
SQLITE_REFUSE = ("CREATE TRIGGER refuse_tenant_admins BEFORE INSERT ON principals "
                 "WHEN NEW.role = 'tenant_admin' "
                 "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
SQLITE_ALLOW = "DROP TRIGGER refuse_tenant_admins"
PG_REFUSE = """
CREATE FUNCTION custos_control.refuse_tenant_admins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
CREATE TRIGGER refuse_tenant_admins BEFORE INSERT ON custos_control.principals
  FOR EACH ROW WHEN (NEW.role = 'tenant_admin')
  EXECUTE FUNCTION custos_control.refuse_tenant_admins();
"""
PG_ALLOW = """
DROP TRIGGER refuse_tenant_admins ON custos_control.principals;
DROP FUNCTION custos_control.refuse_tenant_admins();
"""


def control_sql(server, sqlite_sql: str, pg_sql: str) -> list[tuple]:
    """Runs SQL on the server's control store, from outside the server."""
    if BACKEND == "sqlite":
        conn = sqlite3.connect(server.data_dir / "control.db", isolation_level=None, timeout=10)
        try:
            return conn.execute(sqlite_sql).fetchall()
        finally:
            conn.close()
    dsn = pg_database_for(os.environ["CUSTOS_PG_DSN"], server.data_dir)
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", dsn],
                       input=pg_sql, text=True, check=True, capture_output=True, timeout=60)
    return [tuple(line.split("|")) for line in r.stdout.splitlines() if line]


def stored_counts(server) -> tuple[int, int]:
    sql = "SELECT (SELECT count(*) FROM {s}tenants), (SELECT count(*) FROM {s}principals)"
    row = control_sql(server, sql.format(s=""), sql.format(s="custos_control.") + ";")[0]
    return int(row[0]), int(row[1])


def test_a_tenant_whose_admin_cannot_be_stored_is_not_stored_either(server):
    spec = {"name": "All or nothing", "customer_type": "enterprise", "geography": "US",
            "services": ["storage"], "technologies": [], "lockbox": False}
    before = stored_counts(server)
    control_sql(server, SQLITE_REFUSE, PG_REFUSE)
    try:
        r = server.post("/v1/tenants", spec, token=server.admin_token)
    finally:
        control_sql(server, SQLITE_ALLOW, PG_ALLOW)

    # Refused by the store (not as bad input: the same body succeeds below).
    assert r.status >= 400 and r.json()["error"]["code"] != "invalid_argument", r
    assert "admin_token" not in r.body.decode()
    assert server.healthy()
    assert stored_counts(server) == before  # no tenant without its admin, no admin either

    # Once the store takes admins again, the same request makes the tenant, usable at once.
    r = server.post("/v1/tenants", spec, token=server.admin_token)
    assert r.status == 201, r
    t = r.json()
    assert stored_counts(server) == (before[0] + 1, before[1] + 1)
    put = server.put(key_path(t["id"], "first"), b"after the fault", token=t["admin_token"])
    assert put.status in (200, 201), put
    got = server.get(key_path(t["id"], "first"), token=t["admin_token"])
    assert got.status == 200 and got.body == b"after the fault"
