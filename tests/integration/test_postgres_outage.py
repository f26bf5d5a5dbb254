"""PostgreSQL stopped and started again under write load on two instances (PostgreSQL only).
While it is down every request fails with 503 and quickly (never hangs, never 500); nothing
acknowledged is lost; both instances recover by themselves, without a restart, once it is back;
and the ledger verifies afterwards, with exactly one data.write record per acknowledged write."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BACKEND, REPO, Server, key_path
from test_ledger_multi_instance import verify, wait_for_checkpoint, writes_logged

START_POSTGRES = REPO / "scripts" / "start-postgres"
RECOVERY_S = 30.0


def _postgres(*args: str) -> list[str]:
    r = subprocess.run([str(START_POSTGRES), *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.fixture
def own_postgres(monkeypatch):
    """A PostgreSQL of this test's own, to stop and start; yields its pid file."""
    if BACKEND != "postgresql":
        pytest.skip("PostgreSQL backend only")
    dsn, pidfile = _postgres()[:2]
    monkeypatch.setenv("CUSTOS_PG_DSN", dsn)
    try:
        yield pidfile
    finally:
        subprocess.run([str(START_POSTGRES), "--stop", pidfile], capture_output=True,
                       timeout=120)


class Load(threading.Thread):
    """PUTs unique keys through one instance (a fresh connection each, so a refused request
    never poisons the next) until stopped; keeps every answer."""

    def __init__(self, server: Server, tenant: dict, name: str):
        super().__init__(daemon=True)
        self.server, self.tenant, self.name = server, tenant, name
        self.stop = threading.Event()
        self.answers: list[tuple[str, int, float, float]] = []  # key, status, sent, elapsed
        self.errors: list[str] = []

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            key = f"{self.name}/{i}"
            sent = time.monotonic()
            try:
                r = self.server.put(key_path(self.tenant["id"], key), key.encode(),
                                    token=self.tenant["admin_token"])
            except Exception as e:  # a timeout or a dropped connection: a hang or a crash
                self.errors.append(f"{key}: {e!r}")
                i += 1
                continue
            self.answers.append((key, r.status, sent, r.elapsed))
            if r.status not in (200, 201, 503):
                self.errors.append(f"{key}: {r.status} {r.body[:200]!r}")
            elif r.status == 503:
                time.sleep(0.05)  # a client honouring Retry-After would wait longer
            i += 1

    def acked(self) -> list[str]:
        return [k for k, status, _, _ in self.answers if status in (200, 201)]

    def acked_after(self, t: float) -> int:
        return sum(1 for _, status, sent, _ in self.answers if status in (200, 201) and sent > t)


def test_two_instances_ride_out_a_postgresql_restart_under_load(own_postgres, server_factory,
                                                                 tmp_path: Path):
    a = server_factory()
    b = server_factory(data_dir=a.data_dir)
    tenant = a.create_tenant(geography="EU")
    loads = [Load(s, tenant, f"{n}{j}") for n, s in (("a", a), ("b", b)) for j in range(2)]
    for w in loads:
        w.start()
    time.sleep(2.0)

    down_at = time.monotonic()  # stopping starts: from here on requests may fail
    _postgres("--pause", own_postgres)
    time.sleep(3.0)
    # While it is down, each instance answers, and answers 503.
    for s in (a, b):
        r = s.put(key_path(tenant["id"], f"probe-{s.port}"), b"x", token=tenant["admin_token"])
        assert r.status == 503 and r.json()["error"]["code"] == "unavailable", r
        assert r.header("Retry-After"), r
        assert s.get("/healthz").status == 200
    _postgres("--resume", own_postgres)
    up_at = time.monotonic()

    # Both recover by themselves: each acknowledges writes again, without a restart.
    deadline = up_at + RECOVERY_S
    while any(w.acked_after(up_at) == 0 for w in loads):
        assert time.monotonic() < deadline, "an instance did not recover"
        time.sleep(0.2)
    time.sleep(1.0)
    for w in loads:
        w.stop.set()
    for w in loads:
        w.join(timeout=60)
        assert not w.is_alive()
    assert a.running and b.running

    for w in loads:
        assert not w.errors, w.errors[:3]
        refused = [k for k, status, sent, _ in w.answers if status == 503]
        assert refused, f"{w.name}: no request was refused during the outage"
        # Refusals came while it was down (or its connections were being replaced), promptly.
        early = [(k, round(sent - down_at, 2)) for k, status, sent, _ in w.answers
                 if status == 503 and not down_at - 0.5 <= sent <= up_at + RECOVERY_S]
        assert not early, early[:5]
        assert max(e for _, _, _, e in w.answers) < 10.0, "a request hung"

    # Nothing acknowledged is lost: every acknowledged write is readable through both instances
    # and logged exactly once; a refused write is logged at most once (the entry may precede a
    # failed cell write, then an outcome event follows).
    acked = {f"{tenant['id']}/{k}" for w in loads for k in w.acked()}
    attempted = {f"{tenant['id']}/{k}" for w in loads for k, *_ in w.answers}
    for w in loads:
        for k in w.acked()[:: max(1, len(w.acked()) // 25)]:
            for s in (a, b):
                r = s.get(key_path(tenant["id"], k), token=tenant["admin_token"])
                assert r.status == 200 and r.body == k.encode(), (k, r)
    counts, indexes = writes_logged(b, [tenant])
    for k in acked:
        assert counts.get(k) == 1, f"acknowledged write {k} logged {counts.get(k, 0)} times"
    assert all(c == 1 for c in counts.values())
    assert set(counts) <= attempted | {f"{tenant['id']}/probe-{s.port}" for s in (a, b)}

    size = max(indexes) + 1
    wait_for_checkpoint(a, size)
    for s in (a, b):
        assert verify(s, tmp_path) >= size
