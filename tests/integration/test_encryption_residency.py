"""Promise 2 and encryption at rest: plaintext never reaches the data directory or the logs, and
a tenant's ciphertext lives in exactly its home and replica cells."""

import os
import secrets

from conftest import key_path, requires_sqlite_files, scan_data_dir

AEAD_OVERHEAD = 28  # 12-byte nonce + 16-byte GCM tag


def _probes(data: bytes, n: int = 16, width: int = 64) -> list[bytes]:
    step = max(1, (len(data) - width) // n)
    return [data[i:i + width] for i in range(0, len(data) - width + 1, step)][:n]


def _assert_exactly_in_cells(server, tenant, expected: dict[str, bytes],
                             deleted: tuple[str, ...] = ()):
    """Every cell DB: the tenant's rows (objects and data keys) exist in exactly home+replica;
    `deleted` objects are there only as tombstones (the key, no content, until purged)."""
    home, replica = tenant["home_region"], tenant["replica_region"]
    want_regions = {home, replica}
    for region in server.cell_regions():
        objects = server.query_cell(region, "SELECT key, size, sealed FROM objects "
                                    "WHERE tenant_id = ? AND deleted = 0", (tenant["id"],))
        tombstones = server.query_cell(region, "SELECT key, size, length(sealed) FROM objects "
                                       "WHERE tenant_id = ? AND deleted = 1", (tenant["id"],))
        keys = server.query_cell(region, "SELECT COUNT(*) FROM data_keys WHERE tenant_id = ?",
                                 (tenant["id"],))[0][0]
        if region not in want_regions:
            assert objects == tombstones == [] and keys == 0, \
                f"tenant data in foreign cell {region}"
            continue
        assert keys >= 1, f"no wrapped data key in {region}"
        assert sorted(tombstones) == [(k, 0, 0) for k in sorted(deleted)], region
        got = {k: (size, bytes(sealed)) for k, size, sealed in objects}
        assert set(got) == set(expected), region
        for k, plain in expected.items():
            size, sealed = got[k]
            assert size == len(plain)
            assert len(sealed) == len(plain) + AEAD_OVERHEAD, (region, k)
            assert sealed != plain and plain[:64] not in sealed, (region, k)


def test_plaintext_never_at_rest_and_only_in_home_and_replica(server_factory):
    requires_sqlite_files()
    s = server_factory()
    tenant_name = f"Secretive Corp {secrets.token_hex(16)}"
    t = s.create_tenant(geography="EU", name=tenant_name)
    assert (t["home_region"], t["replica_region"]) == ("eu-west", "eu-central")
    tok = t["admin_token"]

    marker = secrets.token_hex(32).encode()          # 64 random hex characters
    small = b"customer secret: " + marker + b" end"
    marker2 = secrets.token_hex(32).encode()
    repeated = (marker2 * 2000)[:100 * 1024]          # 100 KiB, highly compressible
    random_large = os.urandom(100 * 1024)             # 100 KiB, incompressible
    objects = {"secret/small.txt": small, "secret/repeated.bin": repeated,
               "secret/random.bin": random_large}
    for k, v in objects.items():
        s.put_object(t["id"], k, v, tok, content_type="application/octet-stream")
    # Reads and listings go through the same stores; do some before scanning.
    for k, v in objects.items():
        assert s.get(key_path(t["id"], k), token=tok).body == v
    s.list_all(t["id"], tok)
    # A replaced and a deleted object must not leave their plaintext behind either.
    gone = secrets.token_hex(32).encode()
    s.put_object(t["id"], "secret/replaced", gone, tok)
    s.put_object(t["id"], "secret/replaced", b"new content", tok)
    deleted = secrets.token_hex(32).encode()
    s.put_object(t["id"], "secret/deleted", deleted, tok)
    assert s.delete(key_path(t["id"], "secret/deleted"), token=tok).status == 204
    objects["secret/replaced"] = b"new content"

    needles = [marker, marker2, gone, deleted, *_probes(random_large)]
    assert scan_data_dir(s.data_dir, needles) == [], "plaintext found at rest while running"
    _assert_exactly_in_cells(s, t, objects, deleted=("secret/deleted",))

    assert s.stop() == 0
    assert scan_data_dir(s.data_dir, needles) == [], "plaintext found at rest after shutdown"
    _assert_exactly_in_cells(s, t, objects, deleted=("secret/deleted",))
    logs = s.logs().encode()
    for n in needles:
        assert n not in logs, "plaintext in the server logs"


def test_object_keys_stay_in_the_tenant_cells_and_out_of_the_logs(server_factory):
    requires_sqlite_files()
    s = server_factory()
    t = s.create_tenant(geography="IN")
    key = f"keymarker-{secrets.token_hex(16)}/file"
    s.put_object(t["id"], key, b"x", t["admin_token"])
    assert s.get(key_path(t["id"], key), token=t["admin_token"]).status == 200
    assert s.stop() == 0
    hits = {f for f, _ in scan_data_dir(s.data_dir, [key.encode()])}
    allowed = {f"cells/{r}.db{suffix}" for r in (t["home_region"], t["replica_region"])
               for suffix in ("", "-wal")}
    assert hits and hits <= allowed, f"object key stored outside the tenant's cells: {hits}"
    assert key not in s.logs(), "object key in the server logs"


def test_tenant_and_principal_names_are_not_stored_in_plaintext(server_factory):
    """DESIGN: the control store holds no readable tenant metadata; the data directory and the
    logs hold no customer plaintext. Tenant names are sealed under the tenant's key, so neither
    the tenant's name nor the names of its principals may appear in clear anywhere."""
    requires_sqlite_files()
    s = server_factory()
    tenant_name = f"NameMarker {secrets.token_hex(16)}"
    t = s.create_tenant(geography="US", name=tenant_name)
    person = f"PersonMarker {secrets.token_hex(16)}"
    s.create_principal(t["admin_token"], role="tenant_user", name=person, tenant_id=t["id"])
    assert s.get(f"/v1/tenants/{t['id']}", token=t["admin_token"]).json()["name"] == tenant_name
    assert s.stop() == 0
    hits = scan_data_dir(s.data_dir, [tenant_name.encode(), person.encode()])
    assert hits == [], f"tenant/principal names stored in plaintext: {hits}"
    assert tenant_name not in s.logs() and person not in s.logs()
