"""Data keys rotate, objects survive restarts, and SIGTERM drains in-flight requests."""

import hashlib
import os
import signal
import socket
import sqlite3
import threading
import time

from conftest import ResponseReader, Server, key_path, requires_sqlite_files, sha256_hex


def _read_all(s, tenant, objects):
    for k, v in objects.items():
        g = s.get(key_path(tenant["id"], k), token=tenant["admin_token"])
        assert g.status == 200, (k, g)
        assert g.body == v, f"{k} corrupted"
        assert g.header("etag") == f'"{sha256_hex(v)}"'


def _data_keys(s, tenant):
    out = {}
    for region in (tenant["home_region"], tenant["replica_region"]):
        out[region] = s.query_cell(region, "SELECT version, seals FROM data_keys "
                                   "WHERE tenant_id = ? ORDER BY version", (tenant["id"],))
    return out


def test_data_keys_rotate_and_objects_survive_restart(server_factory):
    s = server_factory("--dek-max-seals", "3")
    t = s.create_tenant(geography="AU")
    objects = {f"obj/{i:02d}": os.urandom(100 + i) for i in range(10)}
    for k, v in objects.items():
        s.put_object(t["id"], k, v, t["admin_token"])
    _read_all(s, t, objects)

    requires_sqlite_files()
    keys = _data_keys(s, t)
    for region, rows in keys.items():
        versions = [v for v, _ in rows]
        assert len(versions) >= 4, f"{region}: only {len(versions)} data keys for 10 seals of 3"
        assert versions == list(range(1, len(versions) + 1))
        assert all(seals <= 3 for _, seals in rows), f"{region}: a DEK sealed more than 3: {rows}"
        used = s.query_cell(region, "SELECT dek_version, COUNT(*) FROM objects WHERE "
                            "tenant_id = ? GROUP BY dek_version", (t["id"],))
        assert len(used) >= 4 and all(n <= 3 for _, n in used), used
    assert keys[t["home_region"]] == keys[t["replica_region"]]

    # Restart on the same data directory: everything still reads back.
    desc = s.get(f"/v1/tenants/{t['id']}", token=t["admin_token"]).json()
    assert s.stop() == 0
    s2 = server_factory("--dek-max-seals", "3", data_dir=s.data_dir)
    _read_all(s2, t, objects)
    after = s2.get(f"/v1/tenants/{t['id']}", token=t["admin_token"]).json()
    assert after == desc, "the tenant (location, pseudonym, …) changed across a restart"
    # The seal count survives the restart: more writes keep every DEK at <= 3 seals.
    more = {f"more/{i}": os.urandom(64) for i in range(4)}
    for k, v in more.items():
        s2.put_object(t["id"], k, v, t["admin_token"])
    _read_all(s2, t, {**objects, **more})
    for region, rows in _data_keys(s2, t).items():
        assert all(seals <= 3 for _, seals in rows), f"{region}: {rows}"
        assert len(rows) >= 5


def test_replacing_objects_counts_as_sealing(server_factory):
    s = server_factory("--dek-max-seals", "2")
    t = s.create_tenant(geography="JP")
    data = b""
    for i in range(7):
        data = f"version {i}".encode()
        s.put_object(t["id"], "same", data, t["admin_token"])
    _read_all(s, t, {"same": data})
    requires_sqlite_files()
    for region, rows in _data_keys(s, t).items():
        assert len(rows) >= 4 and all(seals <= 2 for _, seals in rows), (region, rows)


def _put_raw(port: int, path: str, token: str, body: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def test_sigterm_completes_in_flight_requests(server_factory):
    """PUTs held in flight (an outside connection holds the home cell's write lock), SIGTERM,
    then the lock goes away: every PUT is answered 2xx, the server exits 0, and after a restart
    every acknowledged object reads back."""
    requires_sqlite_files()
    s = server_factory()
    t = s.create_tenant(geography="CA")
    tid, tok = t["id"], t["admin_token"]
    bodies = {f"inflight/{i}": os.urandom(1000 + i) for i in range(6)}
    results: dict = {}

    def put(k, v):
        try:
            results[k] = s.put(key_path(tid, k), v, token=tok)
        except OSError as e:
            results[k] = e

    lock = sqlite3.connect(str(s.cell_path(t["home_region"])), timeout=10, isolation_level=None)
    threads = [threading.Thread(target=put, args=kv) for kv in bodies.items()]
    try:
        lock.execute("BEGIN IMMEDIATE")
        for th in threads:
            th.start()
        time.sleep(0.3)  # the PUTs are read and wait for the cell
        assert not results, f"answered while the cell was locked: {results}"
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert s.proc.poll() is None, "exited with requests in flight"
        # A new connection while draining must not hang (it is refused or answered).
        start = time.monotonic()
        try:
            with s.client(timeout=5) as c:
                c.request("GET", "/healthz")
        except OSError:
            pass
        assert time.monotonic() - start < 5
    finally:
        lock.execute("ROLLBACK") if lock.in_transaction else None
        lock.close()
    for th in threads:
        th.join(timeout=20)
    rc = s.proc.wait(timeout=10)
    assert rc == 0, f"exit status {rc} after SIGTERM\n{s.logs()[-2000:]}"
    for k, r in results.items():
        assert not isinstance(r, Exception), f"{k}: in-flight PUT not answered: {r!r}"
        assert r.status == 201, (k, r)
        assert r.json()["sha256"] == sha256_hex(bodies[k])
    assert set(results) == set(bodies)
    s.start()
    _read_all(s, t, bodies)


def test_sigterm_under_load_exits_zero_and_keeps_acknowledged_writes(tmp_path):
    """SIGTERM while large PUTs are arriving on many connections and new ones keep coming: the
    server must exit 0 (never crash), and every PUT answered 2xx reads back after a restart.
    Timing-dependent, so several rounds on one data directory."""
    s = Server(tmp_path / "data").start()
    t = s.create_tenant(geography="CA")
    tid, tok = t["id"], t["admin_token"]
    acked: dict = {}
    attempted: dict = {}
    try:
        for round_no in range(6):
            if round_no:
                s.start()
            _read_all(s, t, acked)
            bodies = {f"load/{round_no}/{i}": os.urandom(900 * 1024 + i) for i in range(10)}
            attempted.update(bodies)
            socks = {k: _put_raw(s.port, key_path(tid, k), tok, v) for k, v in bodies.items()}
            s.proc.send_signal(signal.SIGTERM)
            late_bodies = {f"late/{round_no}/{i}": os.urandom(2000) for i in range(4)}
            attempted.update(late_bodies)
            late_results: dict = {}

            def late(k, v):
                try:
                    late_results[k] = s.put(key_path(tid, k), v, token=tok)
                except OSError as e:
                    late_results[k] = e

            threads = [threading.Thread(target=late, args=kv) for kv in late_bodies.items()]
            for th in threads:
                th.start()
            deadline = time.monotonic() + 15
            for k, sock in socks.items():
                try:
                    r = ResponseReader(sock).read(deadline)
                except (AssertionError, OSError):
                    r = None
                finally:
                    sock.close()
                if r is not None:
                    assert r.status in (201, 503), (k, r)
                    if r.status == 201:
                        assert r.json()["sha256"] == hashlib.sha256(bodies[k]).hexdigest()
                        acked[k] = bodies[k]
            for th in threads:
                th.join(timeout=20)
            for k, r in late_results.items():
                if not isinstance(r, Exception) and r.status == 201:
                    acked[k] = late_bodies[k]
            rc = s.proc.wait(timeout=10)
            assert rc == 0, f"round {round_no}: exit status {rc} after SIGTERM under load"
        s.start()
        _read_all(s, t, acked)
        for k, v in attempted.items():
            if k not in acked:
                g = s.get(key_path(tid, k), token=tok)
                assert g.status == 404 or g.body == v, f"{k} torn"
    finally:
        if s.running:
            assert s.stop() == 0


def test_sigterm_with_busy_keep_alive_clients_exits_zero(tmp_path):
    """Keep-alive clients sending requests back to back while SIGTERM arrives: the server drains
    and exits 0 within 10 s of the signal, every round."""
    s = Server(tmp_path / "data")
    for round_no in range(5):
        s.start()
        stop_sending = threading.Event()
        served: list[int] = []

        def hammer():
            n = 0
            try:
                with socket.create_connection(("127.0.0.1", s.port), timeout=5) as sock:
                    reader = ResponseReader(sock)
                    while not stop_sending.is_set():
                        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                        r = reader.read(time.monotonic() + 5)
                        if r is None:
                            break
                        assert r.status in (200, 503), r
                        n += 1
            except (OSError, AssertionError):
                pass
            served.append(n)

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for th in threads:
            th.start()
        time.sleep(0.05)
        s.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(1.0)
        stop_sending.set()
        for th in threads:
            th.join(timeout=10)
        try:
            rc = s.proc.wait(timeout=max(0.1, signalled + 10 - time.monotonic()))
        except Exception:  # noqa: BLE001
            s.kill()
            raise AssertionError(f"round {round_no}: still running 10 s after SIGTERM")
        assert sum(served) > 0
        assert rc == 0, f"round {round_no}: exit status {rc} after SIGTERM with busy clients"


def test_sigterm_on_idle_server_exits_zero_promptly(server_factory):
    s = server_factory()
    # An idle keep-alive connection must not hold the shutdown up.
    c = s.client()
    assert c.request("GET", "/healthz").status == 200
    start = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - start < 5
    c.close()


def test_a_write_refused_by_one_cell_is_answered_failed_and_logged(server_factory):
    """A write the replica refuses after the home committed it is answered as failed, and the
    server says so in its log (the cells differ on that object until its next write: the known
    limit in docs/deploy.md); the next write of the key makes them agree again."""
    requires_sqlite_files()
    s = server_factory()
    t = s.create_tenant()
    tid, tok = t["id"], t["admin_token"]
    replica = s.cell_path(t["replica_region"])
    conn = sqlite3.connect(replica, timeout=10)
    try:
        conn.execute("CREATE TRIGGER refuse_put BEFORE INSERT ON objects "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        conn.commit()
        r = s.put(key_path(tid, "doc"), b"first", token=tok)
        assert r.status >= 400, r  # 409 here: SQLite reports the trigger as a constraint
        conn.execute("DROP TRIGGER refuse_put")
        conn.commit()
    finally:
        conn.close()
    deadline = time.monotonic() + 5
    while "a write committed in 1 of its cells and failed in the other" not in s.logs():
        assert time.monotonic() < deadline, s.logs()[-2000:]
        time.sleep(0.05)
    assert tid in s.logs() and "doc" not in s.logs()  # ids only, never an object key
    assert s.put(key_path(tid, "doc"), b"second", token=tok).status in (200, 201)
    cells = [s.query_cell(region, "SELECT sha256 FROM objects WHERE tenant_id = ? AND key = ?",
                          (tid, "doc")) for region in (t["home_region"], t["replica_region"])]
    assert cells[0] == cells[1] == [(sha256_hex(b"second"),)]
