"""`custos ledger verify` and `custos ledger prove`: the independent verifier, driven against a
real server. Tamper evidence: an edited entry or stored hash in the control store makes verify
fail naming the entry or tile; a rebuilt shorter log or a fork is caught by the saved checkpoint;
an access hidden from a tenant's access log is caught by prove."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from conftest import BINARY, Server, key_path, requires_sqlite_files

CHECKPOINT_WAIT_S = 15.0


# --- helpers -----------------------------------------------------------------------------------

def custos(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=120)


def url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


def checkpoint(server: Server) -> tuple[int, str]:
    r = server.get("/ledger/checkpoint")
    assert r.status == 200, r
    note = r.body.decode()
    return int(note.split("\n")[1]), note


def wait_for_checkpoint(server: Server, size: int) -> str:
    """Polls until a checkpoint covers `size` entries (the server signs at most every second)."""
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while True:
        got, note = checkpoint(server)
        if got >= size:
            return note
        assert time.monotonic() < deadline, f"no checkpoint of size >= {size} (latest {got})"
        time.sleep(0.1)


def vkey_file(server: Server, path: Path) -> Path:
    r = server.get("/v1/ledger/vkey")
    assert r.status == 200, r
    path.write_bytes(r.body)
    return path


def read_entry(server: Server, tenant: dict, key: str) -> int:
    """GET of an object: one data.read entry; returns its ledger index."""
    r = server.get(key_path(tenant["id"], key), token=tenant["admin_token"])
    assert r.status == 200, r
    return int(r.header("X-Custos-Ledger-Index"))


def writes(server: Server, tenant: dict, prefix: str, n: int) -> int:
    """n PUTs (one data.write entry each), then one read; returns the ledger size after them."""
    with server.client() as c:
        for i in range(n):
            r = c.request("PUT", key_path(tenant["id"], f"{prefix}/{i}"), f"{prefix} {i}".encode(),
                          token=tenant["admin_token"])
            assert r.status in (200, 201), r
    return read_entry(server, tenant, f"{prefix}/0") + 1


def verify(server: Server, vkey: Path | str, state: Path | None) -> subprocess.CompletedProcess:
    args = ["ledger", "verify", "--url", url(server), "--vkey", str(vkey)]
    if state is not None:
        args += ["--state", str(state)]
    return custos(*args)


def assert_fails(r: subprocess.CompletedProcess, message: str) -> None:
    assert r.returncode == 1, f"expected failure, got {r.returncode}: {r.stdout}{r.stderr}"
    assert message in r.stderr, f"{message!r} not in stderr: {r.stderr}"
    assert "ledger verified" not in r.stdout


def assert_verified(r: subprocess.CompletedProcess, size: int) -> None:
    assert r.returncode == 0, f"verify failed: {r.stdout}{r.stderr}"
    assert r.stdout.startswith(f"ledger verified: {size} entries, root "), r.stdout


def edit_control(server: Server, sql: str, args: tuple) -> None:
    """Fault injection on the stopped server's control store."""
    conn = sqlite3.connect(str(server.data_dir / "control.db"), timeout=10)
    try:
        assert conn.execute(sql, args).rowcount == 1
        conn.commit()
    finally:
        conn.close()


def tile_row(server: Server, level: int, idx: int, position: int) -> tuple[str, tuple, bytes, int]:
    """The stored row holding entry or hash `position` of a tile: a whole tile in ledger_tiles,
    or the part (one per batch) of a partial tile in ledger_tile_parts. Returns (UPDATE
    statement, its key arguments, the row's data, the position of the row's first element)."""
    whole = server.query_control("SELECT data FROM ledger_tiles WHERE level = ? AND idx = ?",
                                 (level, idx))
    if whole:
        return ("UPDATE ledger_tiles SET data = ? WHERE level = ? AND idx = ?", (level, idx),
                bytes(whole[0][0]), 0)
    parts = server.query_control("SELECT start, data FROM ledger_tile_parts WHERE level = ? AND "
                                 "idx = ? AND start <= ? ORDER BY start DESC LIMIT 1",
                                 (level, idx, position))
    start, data = parts[0]
    return ("UPDATE ledger_tile_parts SET data = ? WHERE level = ? AND idx = ? AND start = ?",
            (level, idx, start), bytes(data), start)


def bundle_entries(blob: bytes) -> list[tuple[int, bytes]]:
    """(offset, entry) of each entry in an entry bundle (big-endian uint16 length prefixes)."""
    out, at = [], 0
    while at < len(blob):
        n = int.from_bytes(blob[at:at + 2], "big")
        out.append((at + 2, blob[at + 2:at + 2 + n]))
        at += 2 + n
    return out


def flip_hex(ch: int) -> int:
    return ord("1") if ch == ord("0") else ord("0")


def tenant_with_activity(server: Server, n: int = 5) -> tuple[dict, int]:
    t = server.create_tenant()
    size = writes(server, t, "a", n)
    wait_for_checkpoint(server, size)
    return t, size


# --- verify ------------------------------------------------------------------------------------

def test_verify_passes_saves_the_checkpoint_and_checks_consistency_next_time(server_factory,
                                                                              tmp_path):
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    state = tmp_path / "state"
    _, size = tenant_with_activity(s)

    r = verify(s, vkey, state)
    assert_verified(r, size)
    assert "no saved checkpoint to compare with yet" in r.stdout
    assert state.read_text() == checkpoint(s)[1], "the state file holds the signed note as served"

    t2 = s.create_tenant()
    size2 = writes(s, t2, "b", 7)
    wait_for_checkpoint(s, size2)
    # The key given as its text rather than a file.
    r = verify(s, vkey.read_text().strip(), state)
    assert_verified(r, size2)
    assert f"consistent with the saved checkpoint of size {size}" in r.stdout
    assert state.read_text() == checkpoint(s)[1]

    # Without --state: verified, nothing compared or saved.
    r = verify(s, vkey, None)
    assert_verified(r, size2)


def test_verify_crosses_the_first_full_tile(server_factory, tmp_path):
    """Over 256 entries: a full entry bundle, a level-1 tile; a stored level-1 hash edited."""
    requires_sqlite_files()
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    t = s.create_tenant()
    size = writes(s, t, "many", 300)
    assert size > 256
    wait_for_checkpoint(s, size)
    assert_verified(verify(s, vkey, tmp_path / "state"), size)

    assert s.stop() == 0
    sql, key, tile, _ = tile_row(s, 1, 0, 0)
    data = bytearray(tile)
    data[0] ^= 0x01
    edit_control(s, sql, (bytes(data), *key))
    s.start()
    assert_fails(verify(s, vkey, tmp_path / "state"),
                 "tile/1/000.p/1 hash 0 does not match the hash of tile/0/000")


def test_edited_entry_is_named(server_factory, tmp_path):
    requires_sqlite_files()
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    state = tmp_path / "state"
    _, size = tenant_with_activity(s)
    assert_verified(verify(s, vkey, state), size)
    saved = state.read_text()

    assert s.stop() == 0
    sql, key, row, start = tile_row(s, -1, 0, 3)
    blob = bytearray(row)
    offset, entry = bundle_entries(bytes(blob))[3 - start]
    at = offset + entry.index(b'"digest":"') + len(b'"digest":"')
    blob[at] = flip_hex(blob[at])  # still a well-formed entry, with another digest
    edit_control(s, sql, (bytes(blob), *key))
    s.start()

    r = verify(s, vkey, state)
    assert_fails(r, f"entry 3 does not match its leaf hash in tile/0/000.p/{size}")
    assert state.read_text() == saved, "a failed verification must not replace the saved state"


def test_edited_stored_hash_is_named(server_factory, tmp_path):
    requires_sqlite_files()
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    _, size = tenant_with_activity(s)

    assert s.stop() == 0
    sql, key, row, start = tile_row(s, 0, 0, 2)
    data = bytearray(row)
    data[(2 - start) * 32 + 7] ^= 0x40  # hash 2
    edit_control(s, sql, (bytes(data), *key))
    s.start()
    assert_fails(verify(s, vkey, None),
                 f"entry 2 does not match its leaf hash in tile/0/000.p/{size}")


def _copy_then_grow(server_factory, tmp_path) -> tuple[Server, Path, Path, Path, int, int, dict]:
    """A server with a log of n1 entries copied aside; the original grown to n2 and verified
    into a state file, then stopped. Returns the copy's data dir among the rest."""
    requires_sqlite_files()
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    state = tmp_path / "state"
    t, n1 = tenant_with_activity(s, 4)
    assert s.stop() == 0
    copy = tmp_path / "copy"
    shutil.copytree(s.data_dir, copy)
    s.start()
    n2 = writes(s, t, "later", 6)
    wait_for_checkpoint(s, n2)
    r = verify(s, vkey, state)
    assert_verified(r, n2)
    assert s.stop() == 0
    return s, copy, vkey, state, n1, n2, t


def test_rebuilt_shorter_log_is_caught_by_the_saved_checkpoint(server_factory, tmp_path):
    _, copy, vkey, state, n1, n2, _ = _copy_then_grow(server_factory, tmp_path)
    old = server_factory(data_dir=copy)  # the same key signs a shorter log
    assert checkpoint(old)[0] == n1
    assert_fails(verify(old, vkey, state),
                 f"log is shorter than the saved checkpoint ({n1} < {n2}): rolled back or rebuilt")
    # The copy on its own is a valid log: only the saved checkpoint tells the story.
    assert_verified(verify(old, vkey, None), n1)


def test_fork_is_caught_by_the_saved_checkpoint(server_factory, tmp_path):
    _, copy, vkey, state, n1, n2, t = _copy_then_grow(server_factory, tmp_path)
    fork = server_factory(data_dir=copy)
    # Different writes up to exactly the saved size: same size, another root.
    with fork.client() as c:
        for i in range(n2 - n1):
            r = c.request("PUT", key_path(t["id"], f"forked/{i}"), b"other history",
                          token=t["admin_token"])
            assert r.status == 201, r
    wait_for_checkpoint(fork, n2)
    assert checkpoint(fork)[0] == n2
    assert_fails(verify(fork, vkey, state), f"fork: the log of {n2} entries has root ")
    # Beyond the saved size: the first n2 entries differ from the saved checkpoint's.
    n3 = writes(fork, t, "more", 2)
    wait_for_checkpoint(fork, n3)
    assert_fails(verify(fork, vkey, state), f"fork: the first {n2} entries of the log (root ")


def test_wrong_key_and_foreign_state_are_named(server_factory, tmp_path):
    a = server_factory()
    b = server_factory()
    vkey_a = vkey_file(a, tmp_path / "vkey_a")
    vkey_b = vkey_file(b, tmp_path / "vkey_b")
    _, size_a = tenant_with_activity(a)
    _, size_b = tenant_with_activity(b)

    assert_fails(verify(a, vkey_b, None), "checkpoint signature does not verify with the given key")

    state_b = tmp_path / "state_b"
    assert_verified(verify(b, vkey_b, state_b), size_b)
    saved = state_b.read_text()
    # A state file holding another log's checkpoint, checked with this log's key.
    assert_fails(verify(a, vkey_a, state_b),
                 f"the saved checkpoint in {state_b} does not verify with the given key")
    assert state_b.read_text() == saved

    assert_fails(verify(a, tmp_path / "missing", None),
                 "--vkey is neither a verifier key nor a file holding one")
    r = custos("ledger", "verify", "--url", f"https://127.0.0.1:{a.port}", "--vkey", str(vkey_a))
    assert_fails(r, "https:// is not supported")
    assert size_a > 0


def test_fresh_log_verifies_at_size_zero(server_factory, tmp_path):
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    assert checkpoint(s)[0] == 0, "init signs the size-0 checkpoint"
    state = tmp_path / "state"
    assert_verified(verify(s, vkey, state), 0)
    _, size = tenant_with_activity(s)
    r = verify(s, vkey, state)
    assert_verified(r, size)
    assert "consistent with the saved checkpoint of size 0" in r.stdout


def test_unreachable_server_fails_cleanly(tmp_path):
    vkey = "custos.example/00000000+00000000+AQ" + "A" * 42 + "="
    r = custos("ledger", "verify", "--url", "http://127.0.0.1:1", "--vkey", vkey,
               "--timeout-ms", "2000")
    assert r.returncode == 1
    assert r.stderr.startswith("ledger verify: "), r.stderr


# --- prove -------------------------------------------------------------------------------------

def prove(server: Server, tenant: dict, vkey: Path, tmp_path: Path,
          state: Path | None = None, token: str | None = None) -> subprocess.CompletedProcess:
    token_file = tmp_path / f"token-{tenant['id']}"
    token_file.write_text((token or tenant["admin_token"]) + "\n")
    args = ["ledger", "prove", "--url", url(server), "--tenant", tenant["id"], "--token",
            str(token_file), "--vkey", str(vkey)]
    if state is not None:
        args += ["--state", str(state)]
    return custos(*args)


def access_log(server: Server, tenant: dict) -> list[dict]:
    r = server.get(f"/v1/tenants/{tenant['id']}/access-log?limit=1000",
                   token=tenant["admin_token"])
    assert r.status == 200, r
    body = r.json()
    assert body["next_cursor"] is None
    return body["events"]


def busy_tenants(server: Server) -> tuple[dict, dict, int]:
    """Two tenants with interleaved activity: writes, reads by a tenant_user, a listing, a
    delete, a failed read (outcome), and refused attempts (data.refused)."""
    t = server.create_tenant()
    u = server.create_tenant(geography="EU")
    user = server.create_principal(t["admin_token"], role="tenant_user", tenant_id=t["id"])
    for i in range(3):
        server.put_object(t["id"], f"doc/{i}", b"t data", t["admin_token"])
        server.put_object(u["id"], f"doc/{i}", b"u data", u["admin_token"])
    assert server.get(key_path(t["id"], "doc/1"), token=user["token"]).status == 200
    assert server.get(f"/v1/tenants/{t['id']}/objects", token=user["token"]).status == 200
    assert server.delete(key_path(t["id"], "doc/2"), token=t["admin_token"]).status == 204
    assert server.get(key_path(t["id"], "missing"), token=t["admin_token"]).status == 404
    refused = server.get(key_path(t["id"], "doc/0"), token=t["admin_token"],
                         headers={"X-Custos-Purpose": "advertising"})
    assert refused.status == 403, refused
    assert server.put(key_path(t["id"], "x"), b"x", token=u["admin_token"]).status == 403
    last = max(e["ledger_index"] for e in access_log(server, t) + access_log(server, u))
    wait_for_checkpoint(server, last + 1)
    return t, u, last + 1


def test_prove_checks_every_record_of_the_tenant(server_factory, tmp_path):
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    t, u, size = busy_tenants(s)
    events = access_log(s, t)
    kinds = {json.loads(e["record"])["kind"] for e in events}
    assert {"tenant.create", "data.write", "data.read", "data.list", "data.delete", "outcome",
            "data.refused"} <= kinds, kinds

    state = tmp_path / "state"
    r = prove(s, t, vkey, tmp_path, state)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(
        f"{len(events)} records of tenant {t['id']} verified against checkpoint of size {size}"
    ), r.stdout
    assert state.read_text() == checkpoint(s)[1]

    r = prove(s, u, vkey, tmp_path, state)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(access_log(s, u))} records of tenant {u['id']} verified" in r.stdout
    assert f"consistent with the saved checkpoint of size {size}" in r.stdout


def test_prove_catches_an_access_hidden_from_the_access_log(server_factory, tmp_path):
    requires_sqlite_files()
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    t, _, _ = busy_tenants(s)
    hidden = read_entry(s, t, "doc/0")
    wait_for_checkpoint(s, hidden + 1)
    assert s.stop() == 0
    # An insider removes the record group holding that read (its batch had only that read).
    edit_control(s, "DELETE FROM ledger_records WHERE tenant_id = ? AND first_index = ?",
                 (t["id"], hidden))
    s.start()
    assert hidden not in [e["ledger_index"] for e in access_log(s, t)]
    assert_verified(verify(s, vkey, None), checkpoint(s)[0])  # the public log itself is intact
    r = prove(s, t, vkey, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"entry {hidden} (data.read) names this tenant's pseudonym but is missing from its "
            "access log") in r.stderr, r.stderr


def test_prove_refuses_a_foreign_state_and_a_foreign_token(server_factory, tmp_path):
    a = server_factory()
    b = server_factory()
    vkey_a = vkey_file(a, tmp_path / "vkey_a")
    vkey_b = vkey_file(b, tmp_path / "vkey_b")
    t, u, _ = busy_tenants(a)
    _, size_b = tenant_with_activity(b)
    state_b = tmp_path / "state_b"
    assert_verified(verify(b, vkey_b, state_b), size_b)

    r = prove(a, t, vkey_a, tmp_path, state_b)
    assert r.returncode == 1
    assert f"the saved checkpoint in {state_b} does not verify with the given key" in r.stderr

    r = prove(a, t, vkey_a, tmp_path, token=u["admin_token"])
    assert r.returncode == 1
    assert f"GET /v1/tenants/{t['id']}: HTTP 403 permission_denied" in r.stderr, r.stderr


class LyingFront:
    """A dishonest server in front of a real one: forwards every GET, but answers the tenant
    with another ledger pseudonym and an empty access log ("hide"), or with another pseudonym
    and only the tenant's real tenant.create record, moved past the checkpoint ("renumber"), or
    an access log of empty pages that never ends ("endless")."""

    def __init__(self, upstream: Server, mode: str):
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                headers = {k: v for k, v in self.headers.items() if k.lower() == "authorization"}
                r = upstream.request("GET", self.path, headers=headers)
                body = r.body
                if mode in ("hide", "renumber") and \
                        re.fullmatch(r"/v1/tenants/[^/?]+", self.path) and r.status == 200:
                    o = json.loads(body)
                    o["ledger_pseudonym"] = "ab" * 32
                    body = json.dumps(o).encode()
                if "/access-log" in self.path and r.status == 200:
                    front.pages += 1
                    cursor = re.search(r"cursor=(\d+)", self.path)
                    events = []
                    if mode == "renumber":
                        events = json.loads(body)["events"][:1]  # tenant.create
                        events[0]["ledger_index"] = 1_000_000
                    nxt = str(int(cursor.group(1)) + 1 if cursor else 1) \
                        if mode == "endless" else None
                    body = json.dumps({"events": events, "next_cursor": nxt}).encode()
                self.send_response(r.status)
                self.send_header("Content-Type", r.header("Content-Type") or "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.pages = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_prove_is_not_fooled_by_another_pseudonym_or_an_endless_log(server_factory, tmp_path):
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    t, _, _ = busy_tenants(s)
    hide = LyingFront(s, "hide")
    renumber = LyingFront(s, "renumber")
    endless = LyingFront(s, "endless")
    try:
        # A pseudonym with no entries and an empty access log: nothing would be missing, but
        # nothing ties that pseudonym to the tenant.
        lying = custos("ledger", "prove", "--url", f"http://127.0.0.1:{hide.port}", "--tenant",
                       t["id"], "--token", t["admin_token"], "--vkey", str(vkey))
        assert lying.returncode == 1, lying.stdout
        assert f"the access log of tenant {t['id']} is empty: it has no tenant.create record" \
            in lying.stderr, lying.stderr
        # The real creation record, but placed past the checkpoint, where no entry ties it to
        # the pseudonym: not proved, and with --state nothing pinned.
        state = tmp_path / "state"
        lying = custos("ledger", "prove", "--url", f"http://127.0.0.1:{renumber.port}",
                       "--tenant", t["id"], "--token", t["admin_token"], "--vkey", str(vkey),
                       "--state", str(state))
        assert lying.returncode == 1, lying.stdout
        assert f"the tenant.create record of tenant {t['id']} (ledger index 1000000) is not " \
            "covered by the checkpoint" in lying.stderr, lying.stderr
        assert not (tmp_path / "state.pseudonyms").exists()
        # Pages that are empty yet name a next one: refused at once, not read forever.
        start = time.monotonic()
        r = custos("ledger", "prove", "--url", f"http://127.0.0.1:{endless.port}", "--tenant",
                   t["id"], "--token", t["admin_token"], "--vkey", str(vkey))
        assert r.returncode == 1, r.stdout
        assert "the access log names a next page after an empty one" in r.stderr, r.stderr
        assert endless.pages == 1 and time.monotonic() - start < 30
    finally:
        hide.close()
        renumber.close()
        endless.close()


def test_prove_pins_the_tenants_pseudonym_beside_its_state(server_factory, tmp_path):
    s = server_factory()
    vkey = vkey_file(s, tmp_path / "vkey")
    t, u, _ = busy_tenants(s)
    state = tmp_path / "state"
    for tenant in (t, u):
        r = prove(s, tenant, vkey, tmp_path, state)
        assert r.returncode == 0, r.stdout + r.stderr
    pins = tmp_path / "state.pseudonyms"
    pseudonym = s.get(f"/v1/tenants/{t['id']}", token=t["admin_token"]).json()["ledger_pseudonym"]
    assert f"{t['id']} {pseudonym}\n" in pins.read_text()
    assert len(pins.read_text().splitlines()) == 2
    # Had the tenant been proved under another pseudonym before, this server is caught.
    pins.write_text(pins.read_text().replace(pseudonym, "cd" * 32))
    r = prove(s, t, vkey, tmp_path, state)
    assert r.returncode == 1
    assert (f"the server names ledger pseudonym {pseudonym} for tenant {t['id']}, but it was "
            f"proved under {'cd' * 32} before ({pins})") in r.stderr, r.stderr
