"""Several `custos serve` processes on one PostgreSQL data directory (skipped on SQLite, where
one process owns the data directory): their ledger is one log. Concurrent writes through every
instance each get exactly one data.write entry, `custos ledger verify` passes against every
instance, and killing an instance (SIGKILL) under load loses no acknowledged write or entry
while the others keep appending."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import BINARY, Server, key_path, requires_several_instances

CHECKPOINT_WAIT_S = 20.0


def start_instances(server_factory, n: int) -> tuple[list[Server], list[dict]]:
    """n instances on one data directory, and two tenants created before the others start (so
    every instance has their keys from the start)."""
    first = server_factory()
    tenants = [first.create_tenant(geography="US"), first.create_tenant(geography="EU")]
    return [first] + [server_factory(data_dir=first.data_dir) for _ in range(n - 1)], tenants


def access_log(server: Server, tenant: dict) -> list[dict]:
    events, cursor = [], None
    while True:
        path = f"/v1/tenants/{tenant['id']}/access-log?limit=1000"
        if cursor:
            path += f"&cursor={cursor}"
        r = server.get(path, token=tenant["admin_token"])
        assert r.status == 200, r
        body = r.json()
        events += body["events"]
        cursor = body["next_cursor"]
        if cursor is None:
            return events


def writes_logged(server: Server, tenants: list[dict]) -> tuple[dict[str, int], set[int]]:
    """(tenant/key -> how many data.write records, every ledger index of any record)."""
    counts: dict[str, int] = {}
    indexes: list[int] = []
    for t in tenants:
        for e in access_log(server, t):
            indexes.append(e["ledger_index"])
            record = json.loads(e["record"])
            if record["kind"] == "data.write":
                name = f"{t['id']}/{record['resource']}"
                counts[name] = counts.get(name, 0) + 1
    assert len(indexes) == len(set(indexes)), "two records share a ledger index"
    return counts, set(indexes)


def checkpoint_size(server: Server) -> int:
    r = server.get("/ledger/checkpoint")
    assert r.status == 200, r
    return int(r.body.decode().split("\n")[1])


def wait_for_checkpoint(server: Server, size: int) -> None:
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while checkpoint_size(server) < size:
        assert time.monotonic() < deadline, f"no checkpoint of size >= {size}"
        time.sleep(0.1)


def verify(server: Server, tmp_path: Path) -> int:
    """`custos ledger verify` against `server`; returns the verified size."""
    vkey = tmp_path / f"vkey-{server.port}"
    r = server.get("/v1/ledger/vkey")
    assert r.status == 200, r
    vkey.write_bytes(r.body)
    r = subprocess.run([BINARY, "ledger", "verify", "--url", f"http://127.0.0.1:{server.port}",
                        "--vkey", str(vkey)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"verify failed: {r.stdout}{r.stderr}"
    assert r.stdout.startswith("ledger verified: "), r.stdout
    return int(r.stdout.split()[2])


class Writer(threading.Thread):
    """PUTs unique keys through one instance until stopped (or `count` are done); remembers
    which were acknowledged and when."""

    def __init__(self, server: Server, tenant: dict, name: str, count: int | None = None):
        super().__init__(daemon=True)
        self.server, self.tenant, self.name, self.count = server, tenant, name, count
        self.stop = threading.Event()
        self.acked: list[tuple[str, float]] = []  # (tenant/key, monotonic time of the answer)
        self.attempted: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        i = 0
        c = self.server.client()
        try:
            while not self.stop.is_set() and (self.count is None or i < self.count):
                key = f"{self.name}/{i}"
                self.attempted.append(f"{self.tenant['id']}/{key}")
                try:
                    r = c.request("PUT", key_path(self.tenant["id"], key), key.encode(),
                                  token=self.tenant["admin_token"])
                except (OSError, http.client.HTTPException) as e:  # the instance died: unknown
                    self.errors.append(repr(e))
                    return
                if r.status in (200, 201):
                    self.acked.append((f"{self.tenant['id']}/{key}", time.monotonic()))
                else:
                    self.errors.append(f"{r.status} {r.body[:200]!r}")
                i += 1
        finally:
            c.close()


@pytest.mark.parametrize("n", [2, 3])
def test_instances_append_to_one_log(server_factory, tmp_path, n):
    requires_several_instances()
    servers, tenants = start_instances(server_factory, n)
    writers = [Writer(s, tenants[j % 2], f"i{k}w{j}", count=60)
               for k, s in enumerate(servers) for j in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=300)
    for w in writers:
        assert not w.errors, w.errors[:3]
        assert len(w.acked) == 60
    acked = [k for w in writers for k, _ in w.acked]

    # Every instance serves the whole log: each acknowledged write is recorded exactly once,
    # whichever instance took it, and no write is recorded that was not made.
    for s in servers:
        counts, _ = writes_logged(s, tenants)
        assert counts == {k: 1 for k in acked}, s.port
    size = max(writes_logged(servers[0], tenants)[1]) + 1
    wait_for_checkpoint(servers[-1], size)
    for s in servers:
        assert verify(s, tmp_path) >= size


def test_killed_instance_loses_nothing_and_the_others_carry_on(server_factory, tmp_path):
    """SIGKILL the instance that acknowledged a write most recently, while every instance is
    under write load (each is then committing batches of its own); the row lock it may hold dies
    with its connection, so the others keep appending, and nothing acknowledged is lost."""
    requires_several_instances()
    servers, tenants = start_instances(server_factory, 3)
    writers = [Writer(s, tenants[j % 2], f"i{k}w{j}") for k, s in enumerate(servers)
               for j in range(2)]
    for w in writers:
        w.start()
    time.sleep(2.0)
    victim = max(writers, key=lambda w: w.acked[-1][1] if w.acked else 0).server
    victim.kill()
    killed_at = time.monotonic()
    survivors = [s for s in servers if s is not victim]
    # The others keep appending: each acknowledges writes after the kill (well within the
    # writers' HTTP timeout; a survivor stuck behind a lock held by the dead would not).
    time.sleep(3.0)
    for w in writers:
        w.stop.set()
    for w in writers:
        w.join(timeout=60)
        assert not w.is_alive()
        if w.server is not victim:
            assert not w.errors, w.errors[:3]
    for s in survivors:
        after = [t for w in writers if w.server is s for _, t in w.acked if t > killed_at]
        assert after, f"instance {s.port} acknowledged no write after the kill"

    acked = {k for w in writers for k, _ in w.acked}
    attempted = {k for w in writers for k in w.attempted}
    counts, indexes = writes_logged(survivors[0], tenants)
    for k in acked:
        assert counts.get(k) == 1, f"acknowledged write {k} logged {counts.get(k, 0)} times"
    # A write in flight on the killed instance may or may not have been recorded, but never
    # twice, and nothing is recorded that was not attempted.
    assert set(counts) <= attempted
    assert all(c == 1 for c in counts.values())
    # The acknowledged objects are there, served by a survivor.
    by_tenant = {t["id"]: t for t in tenants}
    for k in sorted(acked)[:: max(1, len(acked) // 40)]:
        tid, key = k.split("/", 1)
        r = survivors[1].get(key_path(tid, key), token=by_tenant[tid]["admin_token"])
        assert r.status == 200 and r.body == key.encode(), (k, r)

    size = max(indexes) + 1
    wait_for_checkpoint(survivors[0], size)
    for s in survivors:
        assert verify(s, tmp_path) >= size
