"""PostgreSQL backend only (skipped on SQLite): what `custos init --backend postgresql` lays out
(schemas custos_control and custos_cell_<region>, --cell-dsn putting a region's cell on another
database, refusing a database that already holds a Custos), content sealed at rest, and a real
outage: the server stopped, then started again. While it is down every access is refused with
503 and nothing is served unlogged; once it is back custos serves again by itself, without a
restart, and the log holds exactly the accesses performed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (BACKEND, BINARY, REPO, Server, assert_error, key_path,
                      pg_database_for)

START_POSTGRES = REPO / "scripts" / "start-postgres"


def requires_postgresql() -> str:
    if BACKEND != "postgresql":
        pytest.skip("PostgreSQL backend only")
    return os.environ["CUSTOS_PG_DSN"]


def psql(dsn: str, sql: str) -> list[list[str]]:
    """Rows of `sql` run on `dsn`, as strings."""
    r = subprocess.run(["psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", dsn,
                        "-c", sql], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def init(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BINARY, "init", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=120)


def test_init_lays_out_one_schema_per_store_and_cell_dsn_moves_a_cell(tmp_path):
    server_dsn = requires_postgresql()
    main = pg_database_for(server_dsn, tmp_path / "main-db")
    other = pg_database_for(server_dsn, tmp_path / "us-east-db")
    r = init(tmp_path / "data", "--backend", "postgresql", "--dsn", main,
             "--cell-dsn", f"us-east={other}")
    assert r.returncode == 0, r.stderr
    config = (tmp_path / "data" / "custos.yaml").read_text()
    assert "backend: postgresql" in config and main in config and other in config
    assert not (tmp_path / "data" / "control.db").exists()
    assert not (tmp_path / "data" / "cells").exists()
    # The sealed keyring lives in custos_control, shared by every instance; the master key that
    # seals it stays in the data directory.
    assert not (tmp_path / "data" / "keyring").exists()
    assert (tmp_path / "data" / "master.key").exists()
    assert psql(main, "SELECT name FROM custos_control.settings ORDER BY name") == \
        [["keyring"], ["ledger_signing_key"], ["origin"], ["pseudonym_key"],
         ["write_instance_last"]]  # the last write-instance number handed out (data.h)

    schemas = {row[0] for row in psql(main, "SELECT nspname FROM pg_namespace "
                                            "WHERE nspname LIKE 'custos%'")}
    assert "custos_control" in schemas and "custos_cell_us_south" in schemas
    assert "custos_cell_us_east" not in schemas, "us-east lives on its own database"
    assert {row[0] for row in psql(other, "SELECT nspname FROM pg_namespace "
                                          "WHERE nspname LIKE 'custos%'")} == \
        {"custos_cell_us_east"}

    s = Server(tmp_path / "data", init=False).start()
    try:
        t = s.create_tenant(geography="US", home_region="us-east")
        assert (t["home_region"], t["replica_region"]) == ("us-east", "us-south"), t
        secret = b"plaintext that must never be stored in clear " + os.urandom(8).hex().encode()
        s.put_object(t["id"], "doc", secret, t["admin_token"])
        assert s.get(key_path(t["id"], "doc"), token=t["admin_token"]).body == secret
        # The object is in the home cell on the other database and in the replica cell on the
        # main one, sealed: its bytes appear in neither.
        for dsn, schema in [(other, "custos_cell_us_east"), (main, "custos_cell_us_south")]:
            rows = psql(dsn, f"SELECT key, octet_length(sealed), "
                             f"position('\\x{secret.hex()}'::bytea in sealed) "
                             f"FROM {schema}.objects WHERE tenant_id = '{t['id']}'")
            assert [(k, int(n) > len(secret), p) for k, n, p in rows] == [("doc", True, "0")]
        for region in ("us-west", "us-central"):
            assert psql(main, f"SELECT count(*) FROM custos_cell_{region.replace('-', '_')}"
                              f".objects WHERE tenant_id = '{t['id']}'") == [["0"]]
        assert int(psql(main, "SELECT size FROM custos_control.ledger_state")[0][0]) > 0
    finally:
        assert s.stop() == 0


def test_keyring_option_keeps_the_keyring_in_a_file_apart(tmp_path):
    server_dsn = requires_postgresql()
    dsn = pg_database_for(server_dsn, tmp_path / "db")
    keyring = tmp_path / "apart" / "keyring"
    keyring.parent.mkdir()
    r = init(tmp_path / "data", "--backend", "postgresql", "--dsn", dsn, "--keyring",
             str(keyring))
    assert r.returncode == 0, r.stderr
    assert keyring.exists()
    assert psql(dsn, "SELECT count(*) FROM custos_control.settings WHERE name = 'keyring'") == \
        [["0"]]
    s = Server(tmp_path / "data", init=False).start()
    try:
        t = s.create_tenant()
        s.put_object(t["id"], "k", b"v", t["admin_token"])
        assert s.get(key_path(t["id"], "k"), token=t["admin_token"]).body == b"v"
    finally:
        assert s.stop() == 0


def test_init_refuses_a_database_that_holds_a_custos(tmp_path):
    server_dsn = requires_postgresql()
    dsn = pg_database_for(server_dsn, tmp_path / "db")
    assert init(tmp_path / "first", "--backend", "postgresql", "--dsn", dsn).returncode == 0
    r = init(tmp_path / "second", "--backend", "postgresql", "--dsn", dsn)
    assert r.returncode != 0 and "already initialised" in r.stderr, r.stderr
    assert not (tmp_path / "second" / "master.key").exists(), "nothing written for a refused init"
    # The first data directory still works with its keys.
    s = Server(tmp_path / "first", init=False).start()
    try:
        assert s.get("/v1/principals/me", token=s.admin_token).status == 200
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("args, message", [
    (["--backend", "postgresql"], "--dsn"),
    (["--dsn", "postgresql://x/y"], "--backend postgresql"),
    (["--backend", "postgresql", "--dsn", "D", "--cell-dsn", "nowhere=D"], "no region nowhere"),
    (["--backend", "postgresql", "--dsn", "D", "--cell-dsn", "us-east"], "REGION=DSN"),
    (["--backend", "mysql"], "backend"),
])
def test_init_refuses_bad_backend_options(tmp_path, args, message):
    r = init(tmp_path / "data", *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert not (tmp_path / "data" / "custos.yaml").exists()


def test_init_on_an_unreachable_server_fails_fast_and_says_so(tmp_path):
    import socket
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = closed.getsockname()[1]
        start = time.monotonic()
        r = init(tmp_path / "data", "--backend", "postgresql", "--dsn",
                 f"postgresql://postgres@127.0.0.1:{port}/custos")
    assert r.returncode != 0 and "unreachable" in r.stderr, r.stderr
    assert time.monotonic() - start < 15
    assert not (tmp_path / "data" / "custos.yaml").exists()


@pytest.fixture(scope="module")
def own_postgres_server():
    """A PostgreSQL of this module's own, to stop and start (the shared one keeps serving the
    other tests). Yields (dsn, pid file path)."""
    requires_postgresql()
    r = subprocess.run([str(START_POSTGRES)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    dsn, pidfile = r.stdout.split()[:2]
    try:
        yield dsn, Path(pidfile)
    finally:
        subprocess.run([str(START_POSTGRES), "--stop", pidfile], capture_output=True, timeout=120)


@pytest.fixture
def own_postgres(own_postgres_server, monkeypatch):
    """CUSTOS_PG_DSN points at the module's own server while the test runs; yields its pid
    file. The server is running at the start and at the end of each test."""
    dsn, pidfile = own_postgres_server
    monkeypatch.setenv("CUSTOS_PG_DSN", dsn)
    yield pidfile
    _postgres("--resume", pidfile)


def _postgres(action: str, pidfile: Path) -> None:
    r = subprocess.run([str(START_POSTGRES), action, str(pidfile)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_stopped_postgresql_refuses_accesses_then_recovers_without_restart(own_postgres,
                                                                            server_factory):
    server = server_factory()
    t = server.create_tenant()
    tok = t["admin_token"]
    server.put_object(t["id"], "before", b"stored before the outage", tok)

    _postgres("--pause", own_postgres)
    try:
        for method, path, body in [("GET", key_path(t["id"], "before"), None),
                                   ("PUT", key_path(t["id"], "during"), b"x"),
                                   ("DELETE", key_path(t["id"], "before"), None),
                                   ("GET", f"/v1/tenants/{t['id']}/objects", None),
                                   ("POST", "/v1/tenants", {"name": "n", "customer_type":
                                                            "enterprise", "geography": "US",
                                                            "services": ["storage"],
                                                            "technologies": [],
                                                            "lockbox": False})]:
            tok_used = server.admin_token if path == "/v1/tenants" else tok
            r = server.request(method, path, body, token=tok_used)
            assert_error(r, 503, "unavailable")
            assert r.header("Retry-After"), (method, path)
            assert b"stored before the outage" not in r.body
        assert server.get("/healthz").status == 200, "liveness does not depend on the stores"
    finally:
        _postgres("--resume", own_postgres)

    # Back without restarting custos: the pools replace the connections the outage broke.
    deadline = time.monotonic() + 15
    while True:
        r = server.get(key_path(t["id"], "before"), token=tok)
        if r.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status == 200 and r.body == b"stored before the outage", r
    server.put_object(t["id"], "after", b"written after the outage", tok)
    assert_error(server.get(key_path(t["id"], "during"), token=tok), 404, "not_found")
    assert server.running

    log = server.get(f"/v1/tenants/{t['id']}/access-log?limit=1000", token=tok).json()
    records = [json.loads(e["record"]) for e in log["events"]]
    writes = [r["resource"] for r in records if r["kind"] == "data.write"]
    deletes = [r["resource"] for r in records if r["kind"] == "data.delete"]
    assert writes == ["before", "after"], writes
    assert deletes == [], deletes
    assert server.stop() == 0


def test_serve_fails_fast_when_postgresql_is_down(own_postgres, server_factory):
    server = server_factory()
    assert server.stop() == 0
    _postgres("--pause", own_postgres)
    try:
        start = time.monotonic()
        r = subprocess.run([BINARY, "serve", "--data-dir", str(server.data_dir), "--listen",
                            "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert r.stderr.strip(), "says why"
        assert time.monotonic() - start < 15
    finally:
        _postgres("--resume", own_postgres)
