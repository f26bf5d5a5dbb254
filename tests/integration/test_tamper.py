"""A tampered cell (fault injection on the stored rows, server stopped): objects are bound to
their tenant and key, so swapped ciphertext is never served as content; and whatever GET serves
matches its ETag (= sha256 of the bytes)."""

import sqlite3

from conftest import assert_error, key_path, requires_sqlite_files, sha256_hex


def _tamper(server, region, sql, args):
    conn = sqlite3.connect(str(server.cell_path(region)), timeout=10)
    try:
        conn.execute(sql, args)
        conn.commit()
    finally:
        conn.close()


def _sealed(server, region, tid, key):
    return server.query_cell(region, "SELECT sealed FROM objects WHERE tenant_id = ? AND "
                             "key = ?", (tid, key))[0][0]


def _assert_not_served(server, tid, key, tok, forbidden: bytes):
    r = server.get(key_path(tid, key), token=tok)
    assert r.body != forbidden, "ciphertext moved to another key/tenant was served as content"
    assert r.status >= 500, r
    assert_error(r, r.status, r.json()["error"]["code"])
    assert server.healthy()


def test_ciphertext_swapped_between_keys_or_tenants_is_refused(server_factory):
    requires_sqlite_files()
    s = server_factory()
    a = s.create_tenant(geography="US")
    b = s.create_tenant(geography="US")
    assert a["home_region"] == b["home_region"]
    s.put_object(a["id"], "one", b"A one", a["admin_token"])
    s.put_object(a["id"], "two", b"A two", a["admin_token"])
    s.put_object(b["id"], "one", b"B one", b["admin_token"])
    assert s.stop() == 0
    for region in (a["home_region"], a["replica_region"]):
        other_key = _sealed(s, region, a["id"], "two")
        other_tenant = _sealed(s, region, b["id"], "one")
        _tamper(s, region, "UPDATE objects SET sealed = ? WHERE tenant_id = ? AND key = ?",
                (other_key, a["id"], "one"))
        _tamper(s, region, "UPDATE objects SET sealed = ? WHERE tenant_id = ? AND key = ?",
                (other_tenant, a["id"], "two"))
    s.start()
    _assert_not_served(s, a["id"], "one", a["admin_token"], b"A two")
    _assert_not_served(s, a["id"], "two", a["admin_token"], b"B one")
    assert s.get(key_path(b["id"], "one"), token=b["admin_token"]).body == b"B one"


def test_rolled_back_ciphertext_is_not_served_under_the_new_etag(server_factory):
    """Restoring an older ciphertext of the same key (e.g. from a backup) into the row of a newer
    version: GET must not serve bytes whose sha256 differs from the ETag it sends."""
    requires_sqlite_files()
    s = server_factory()
    t = s.create_tenant(geography="EU")
    tid, tok = t["id"], t["admin_token"]
    s.put_object(tid, "contract", b"old terms: pay 100", tok)
    old = {r: _sealed(s, r, tid, "contract") for r in (t["home_region"], t["replica_region"])}
    s.put_object(tid, "contract", b"new terms: pay 999", tok)
    assert s.stop() == 0
    for region, blob in old.items():
        _tamper(s, region, "UPDATE objects SET sealed = ? WHERE tenant_id = ? AND key = ?",
                (blob, tid, "contract"))
    s.start()
    r = s.get(key_path(tid, "contract"), token=tok)
    if r.status == 200:
        assert r.header("etag") == f'"{sha256_hex(r.body)}"', (
            f"served {r.body!r} under ETag {r.header('etag')} of other content")
    else:
        assert r.status >= 500
        assert_error(r, r.status, r.json()["error"]["code"])
