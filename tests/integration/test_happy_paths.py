"""Happy paths of the API contract (DESIGN.md, "API contract" and "Contract details")."""

import json
import os
import re
import secrets
import socket
import time

import pytest

from conftest import (REGIONS_YAML, ResponseReader, assert_error, key_path, list_path,
                      raw_request, sha256_hex)

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_healthz(server):
    r = server.get("/healthz")
    assert r.status == 200
    assert r.json() == {"status": "ok"}


def _metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{want}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_requests_per_route_with_histograms(server):
    before = server.get("/metrics").body.decode()
    n_before = _metric(before, "custos_http_requests_total", route="/v1/regions", method="GET",
                       status="200") or 0
    h_before = _metric(before, "custos_http_request_duration_seconds_count",
                       route="/v1/regions") or 0
    unauth_before = _metric(before, "custos_http_unauthenticated_total") or 0
    for _ in range(3):
        assert server.get("/v1/regions").status == 200
    assert server.get("/v1/principals/me").status == 401  # no token

    r = server.get("/metrics")
    assert r.status == 200
    assert r.header("content-type").startswith("text/plain")
    text = r.body.decode()
    assert "# TYPE custos_http_requests_total counter" in text
    assert "# TYPE custos_http_request_duration_seconds histogram" in text
    assert _metric(text, "custos_http_requests_total", route="/v1/regions", method="GET",
                   status="200") == n_before + 3
    assert _metric(text, "custos_http_requests_total", route="/v1/principals/me", method="GET",
                   status="401") >= 1
    assert _metric(text, "custos_http_request_duration_seconds_count",
                   route="/v1/regions") == h_before + 3
    assert _metric(text, "custos_http_unauthenticated_total") == unauth_before + 1
    # Histogram buckets are cumulative and end at +Inf == _count.
    buckets = []
    for line in text.splitlines():
        m = re.match(r'custos_http_request_duration_seconds_bucket\{route="/v1/regions",'
                     r'le="([^"]+)"\} (\d+)$', line)
        if m:
            buckets.append((m.group(1), int(m.group(2))))
    assert len(buckets) >= 2 and buckets[-1][0] == "+Inf"
    counts = [c for _, c in buckets]
    assert counts == sorted(counts), buckets
    assert counts[-1] == h_before + 3
    assert _metric(text, "custos_http_request_duration_seconds_sum", route="/v1/regions") > 0


def _yaml_regions() -> list[dict]:
    """A tiny reader of the scalar fields of config/regions.yaml (id, geography, country, lat,
    lon, operated_by) and the inline restriction lists."""
    out: list[dict] = []
    for line in REGIONS_YAML.read_text().splitlines():
        s = line.strip()
        if s.startswith("#") or not s:
            continue
        m = re.match(r"^- id: (\S+)$", s)
        if m:
            out.append({"id": m.group(1), "restrictions": {}})
            continue
        m = re.match(r"^(geography|country|lat|lon|operated_by): (.+)$", s)
        if m and out:
            k, v = m.groups()
            out[-1][k] = float(v) if k in ("lat", "lon") else v
            continue
        m = re.match(r"^(excluded_services|excluded_technologies|excluded_customer_types): "
                     r"\[(.*)\]$", s)
        if m and out:
            out[-1]["restrictions"][m.group(1)] = [x.strip() for x in m.group(2).split(",")]
    return out


def test_regions_shape_matches_catalog(server):
    r = server.get("/v1/regions")
    assert r.status == 200
    body = r.json()
    assert set(body) == {"regions"}
    got = body["regions"]
    want = _yaml_regions()
    assert [g["id"] for g in got] == [w["id"] for w in want], "catalog order is part of the contract"
    for g, w in zip(got, want):
        for k in ("id", "name", "geography", "country", "lat", "lon", "operated_by",
                  "restrictions"):
            assert k in g, (g["id"], k)
        assert isinstance(g["lat"], (int, float)) and isinstance(g["lon"], (int, float))
        assert (g["geography"], g["country"], g["operated_by"]) == (
            w["geography"], w["country"], w["operated_by"]), g["id"]
        assert abs(g["lat"] - w["lat"]) < 1e-9 and abs(g["lon"] - w["lon"]) < 1e-9, g["id"]
        rs = g["restrictions"]
        for k in ("excluded_services", "excluded_technologies", "excluded_customer_types"):
            assert isinstance(rs[k], list) and all(isinstance(x, str) for x in rs[k]), g["id"]
            assert rs[k] == w["restrictions"].get(k, []), (g["id"], k)
        personnel = rs["personnel"]
        assert isinstance(personnel, dict) and set(personnel) <= {"citizenship", "screened"}
        if "citizenship" in personnel:
            assert all(re.fullmatch(r"[A-Z]{2}", c) for c in personnel["citizenship"])
        if "screened" in personnel:
            assert isinstance(personnel["screened"], bool)
    by_id = {g["id"]: g for g in got}
    assert by_id["eu-france"]["restrictions"]["personnel"]["screened"] is True
    assert "FR" in by_id["eu-france"]["restrictions"]["personnel"]["citizenship"]
    assert by_id["cn-north"]["operated_by"] != "provider"


def test_principals_me_for_admin(server):
    r = server.get("/v1/principals/me", token=server.admin_token)
    assert r.status == 200
    me = r.json()
    assert me["role"] == "admin" and me["id"] and me["name"]
    assert "tenant_id" not in me or me["tenant_id"] is None
    assert me["mfa_enrolled"] is False


def test_tenant_admin_creates_tenant_user_of_own_tenant(server, tenant):
    name = f"User {secrets.token_hex(3)}"
    p = server.create_principal(tenant["admin_token"], role="tenant_user", name=name,
                                tenant_id=tenant["id"])
    assert p["role"] == "tenant_user" and p["tenant_id"] == tenant["id"]
    me = server.get("/v1/principals/me", token=p["token"])
    assert me.status == 200
    assert me.json()["id"] == p["id"]
    assert me.json()["name"] == name
    assert me.json()["role"] == "tenant_user"
    assert me.json()["tenant_id"] == tenant["id"]
    assert me.json()["mfa_enrolled"] is False
    # The new user can use the tenant's data.
    r = server.put(key_path(tenant["id"], "by-user.txt"), b"hello", token=p["token"])
    assert r.status == 201, r
    assert server.get(key_path(tenant["id"], "by-user.txt"), token=p["token"]).body == b"hello"


def test_tenant_admin_me(server, tenant):
    me = server.get("/v1/principals/me", token=tenant["admin_token"]).json()
    assert me["role"] == "tenant_admin" and me["tenant_id"] == tenant["id"]


def test_admin_creates_operator_with_attributes(server):
    p = server.create_principal(server.admin_token, role="operator",
                                attributes={"employer": "provider", "citizenship": ["US", "CA"],
                                            "screened": True})
    me = server.get("/v1/principals/me", token=p["token"])
    assert me.status == 200
    assert me.json()["role"] == "operator"
    assert me.json().get("tenant_id") is None
    if os.environ.get("CUSTOS_BACKEND", "sqlite") == "sqlite":
        (attrs,) = server.query_control("SELECT attributes_json FROM principals WHERE id = ?",
                                        (p["id"],))[0]
        assert '"citizenship":["US","CA"]' in attrs.replace(" ", "")


def test_citizenship_single_string_is_a_one_element_list(server):
    p = server.create_principal(server.admin_token, role="operator",
                                attributes={"citizenship": "DE", "screened": False})
    assert server.get("/v1/principals/me", token=p["token"]).status == 200
    if os.environ.get("CUSTOS_BACKEND", "sqlite") == "sqlite":
        (attrs,) = server.query_control("SELECT attributes_json FROM principals WHERE id = ?",
                                        (p["id"],))[0]
        assert '"citizenship":["DE"]' in attrs.replace(" ", "")


def test_tenant_create_and_get_with_location(server):
    t = server.create_tenant(geography="EU", name="Location GmbH")
    assert t["home_region"] == "eu-west" and t["replica_region"] == "eu-central"
    for token in (server.admin_token, t["admin_token"]):
        r = server.get(f"/v1/tenants/{t['id']}", token=token)
        assert r.status == 200, r
        g = r.json()
        assert g["id"] == t["id"] and g["name"] == "Location GmbH"
        assert g["geography"] == "EU" and g["customer_type"] == "enterprise"
        assert g["home_region"] == "eu-west" and g["replica_region"] == "eu-central"
        assert RFC3339.match(g["created_at"]), g["created_at"]
        assert g["retention_days"] == 90 and g["lockbox"] is False
        assert re.fullmatch(r"[0-9a-f]{64}", g["ledger_pseudonym"]), g.get("ledger_pseudonym")
        assert t["id"] not in g["ledger_pseudonym"]
        assert sorted((u["region"], u["role"], u["objects"], u["bytes"]) for u in g["location"]) \
            == [("eu-central", "replica", 0, 0), ("eu-west", "home", 0, 0)]

    other = server.create_tenant(geography="EU")
    pseudonym = g["ledger_pseudonym"]
    assert server.get(f"/v1/tenants/{other['id']}", token=other["admin_token"]).json()[
        "ledger_pseudonym"] != pseudonym, "pseudonyms are per tenant"

    a, b = os.urandom(100), os.urandom(3000)
    server.put_object(t["id"], "a", a, t["admin_token"])
    server.put_object(t["id"], "dir/b", b, t["admin_token"])
    g = server.get(f"/v1/tenants/{t['id']}", token=t["admin_token"]).json()
    loc = {u["region"]: u for u in g["location"]}
    assert set(loc) == {"eu-west", "eu-central"}
    assert loc["eu-west"]["role"] == "home" and loc["eu-central"]["role"] == "replica"
    for u in loc.values():
        assert u["objects"] == 2
        assert u["bytes"] == len(a) + len(b) + 2 * 28, "bytes as stored (sealed)"
        if os.environ.get("CUSTOS_BACKEND", "sqlite") == "sqlite":
            rows = server.query_cell(u["region"], "SELECT COUNT(*), SUM(length(sealed)) "
                                     "FROM objects WHERE tenant_id = ?", (t["id"],))
            assert rows == [(u["objects"], u["bytes"])], "measured from the cells"
    # Deleting one object shows in the location.
    assert server.delete(key_path(t["id"], "a"), token=t["admin_token"]).status == 204
    g = server.get(f"/v1/tenants/{t['id']}", token=t["admin_token"]).json()
    for u in g["location"]:
        assert (u["objects"], u["bytes"]) == (1, len(b) + 28)
    assert g["ledger_pseudonym"] == pseudonym, "the pseudonym is stable"


def test_put_get_replace_delete(server, tenant):
    tid, tok = tenant["id"], tenant["admin_token"]
    path = key_path(tid, "docs/report.txt")
    v1 = b"first version\n"
    r = server.put(path, v1, token=tok, headers={"Content-Type": "text/plain; charset=utf-8"})
    assert r.status == 201, r
    assert r.json() == {"key": "docs/report.txt", "size": len(v1), "sha256": sha256_hex(v1),
                        "version": 1}

    g = server.get(path, token=tok)
    assert g.status == 200
    assert g.body == v1
    assert g.header("content-type") == "text/plain; charset=utf-8"
    assert g.header("etag") == f'"{sha256_hex(v1)}"'

    for version in (2, 3):
        data = os.urandom(50 * version)
        r = server.put(path, data, token=tok, headers={"Content-Type": "application/pdf"})
        assert r.status == 200, r
        assert r.json() == {"key": "docs/report.txt", "size": len(data),
                            "sha256": sha256_hex(data), "version": version}
        g = server.get(path, token=tok)
        assert g.body == data and g.header("content-type") == "application/pdf"
        assert g.header("etag") == f'"{sha256_hex(data)}"'

    d = server.delete(path, token=tok)
    assert d.status == 204 and d.body == b""
    assert_error(server.get(path, token=tok), 404, "not_found")
    assert_error(server.delete(path, token=tok), 404, "not_found")
    # Writing again after a delete starts a new object.
    r = server.put(path, b"again", token=tok)
    assert r.status == 201 and r.json()["version"] == 1


def test_default_content_type_and_empty_object(server, tenant):
    tid, tok = tenant["id"], tenant["admin_token"]
    r = server.put(key_path(tid, "empty"), b"", token=tok)
    assert r.status == 201, r
    assert r.json()["size"] == 0 and r.json()["sha256"] == sha256_hex(b"")
    g = server.get(key_path(tid, "empty"), token=tok)
    assert g.status == 200 and g.body == b""
    assert g.header("content-type") == "application/octet-stream"
    assert g.header("etag") == f'"{sha256_hex(b"")}"'


def test_listing_pages_with_prefix_limit_and_cursor(server, tenant):
    tid, tok = tenant["id"], tenant["admin_token"]
    keys = [f"page/{i:03d}" for i in range(25)]
    for k in keys:
        server.put_object(tid, k, k.encode(), tok)
    for k in ("other/x", "pag", "page", "pagez/1"):
        server.put_object(tid, k, b"noise", tok)

    seen, cursor, pages = [], None, 0
    while True:
        r = server.get(list_path(tid, prefix="page/", limit=10, cursor=cursor), token=tok)
        assert r.status == 200, r
        body = r.json()
        assert set(body) == {"objects", "next_cursor"}
        pages += 1
        for o in body["objects"]:
            assert set(o) == {"key", "size", "sha256", "updated_at"}
            assert o["size"] == len(o["key"]) and o["sha256"] == sha256_hex(o["key"].encode())
            assert RFC3339_MS.match(o["updated_at"]), o["updated_at"]
        seen += [o["key"] for o in body["objects"]]
        cursor = body["next_cursor"]
        if pages < 3:
            assert len(body["objects"]) == 10 and isinstance(cursor, str) and cursor
        else:
            assert len(body["objects"]) == 5 and cursor is None
            break
    assert pages == 3
    assert seen == keys, "every key once, in order"

    # An exact multiple of the limit ends without an empty extra page.
    r1 = server.get(list_path(tid, prefix="page/01", limit=5), token=tok).json()
    assert [o["key"] for o in r1["objects"]] == keys[10:15] and r1["next_cursor"]
    r2 = server.get(list_path(tid, prefix="page/01", limit=5, cursor=r1["next_cursor"]),
                    token=tok).json()
    assert [o["key"] for o in r2["objects"]] == keys[15:20] and r2["next_cursor"] is None

    # Without a prefix: everything of this tenant, nothing of others.
    everything = server.list_all(tid, tok, limit=7)
    assert sorted(o["key"] for o in everything) == sorted(keys + ["other/x", "pag", "page",
                                                                  "pagez/1"])
    # Default limit and a prefix matching nothing.
    r = server.get(list_path(tid, prefix="nothing/"), token=tok)
    assert r.json() == {"objects": [], "next_cursor": None}


@pytest.mark.parametrize("key", [
    "naïve/日本語 file.txt",
    "emoji/😀 smile",
    "spaces in  the middle",
    "punct/a+b=c&d?e#f;g,h",
    "percent/100%/done",
    "quotes/'single' \"double\"",
    "ünïcödé/Ελληνικά/русский",
])
def test_unicode_and_special_keys_round_trip(server, tenant, key):
    tid, tok = tenant["id"], tenant["admin_token"]
    data = ("content of " + key).encode()
    r = server.put(key_path(tid, key), data, token=tok)
    assert r.status == 201, r
    assert r.json()["key"] == key
    g = server.get(key_path(tid, key), token=tok)
    assert g.status == 200 and g.body == data
    listed = server.list_all(tid, tok, prefix=key.split("/")[0])
    assert key in [o["key"] for o in listed]
    assert server.delete(key_path(tid, key), token=tok).status == 204


def test_key_is_percent_decoded_exactly_once(server, tenant):
    tid, tok = tenant["id"], tenant["admin_token"]
    # %2541 decodes once to "%41", not to "A".
    r = server.put(f"/v1/tenants/{tid}/objects/once%2541", b"x", token=tok)
    assert r.status == 201 and r.json()["key"] == "once%41"
    assert_error(server.get(f"/v1/tenants/{tid}/objects/onceA", token=tok), 404, "not_found")
    # An encoded slash is a segment separator after decoding; '+' is not a space.
    r = server.put(f"/v1/tenants/{tid}/objects/enc%2Fslash+plus", b"y", token=tok)
    assert r.status == 201 and r.json()["key"] == "enc/slash+plus"
    assert server.get(key_path(tid, "enc/slash+plus"), token=tok).body == b"y"


def test_key_of_1024_bytes_works(server, tenant):
    tid, tok = tenant["id"], tenant["admin_token"]
    for key in ("k" * 1024, "é" * 512, "a/" * 511 + "zz"):
        assert len(key.encode()) == 1024
        r = server.put(key_path(tid, key), b"long", token=tok)
        assert r.status == 201, r
        assert server.get(key_path(tid, key), token=tok).body == b"long"


def test_keep_alive_serves_many_requests_on_one_connection(server, tenant):
    tid, tok = tenant["id"], tenant["admin_token"]
    with server.client() as c:
        assert c.request("GET", "/healthz").status == 200
        sock = c.conn.sock
        assert c.request("PUT", key_path(tid, "ka"), b"1", token=tok).status == 201
        assert c.request("GET", key_path(tid, "ka"), token=tok).body == b"1"
        # Error answers that read the whole request keep the connection too.
        assert c.request("GET", "/no/such/route").status == 404
        assert c.request("GET", key_path(tid, "missing"), token=tok).status == 404
        assert c.request("GET", "/healthz").status == 200
        assert c.conn.sock is sock, "the server closed a keep-alive connection"


def test_pipelined_requests_are_answered_in_order(server):
    port = server.port
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 10
        reader = ResponseReader(s)
        statuses = [reader.read(deadline).status for _ in range(3)]
    assert statuses == [200, 404, 200]


def test_http_1_0_request_is_answered_and_closed(server):
    r = raw_request(server.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert r is not None and r.status == 200 and b'"ok"' in r.body


def _put_large(server, path, token, body, chunked=False):
    """PUT a large body; fails clearly if the server answers before taking the body."""
    import select
    import socket
    from conftest import read_http_response
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else \
            f"Content-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode())
        if select.select([sock], [], [], 0.3)[0]:
            early = read_http_response(sock, time.monotonic() + 5)
            raise AssertionError(f"answered before the body was sent: {early}")
        if chunked:
            for i in range(0, len(body), 65536):
                part = body[i:i + 65536]
                sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(body)
        return read_http_response(sock, time.monotonic() + 30)


@pytest.mark.parametrize("size,chunked", [
    (1024 * 1024 + 1, False), (5 * 1024 * 1024, False), (5 * 1024 * 1024, True)],
    ids=["1MiB+1", "5MiB", "5MiB-chunked"])
def test_objects_over_1_mib_up_to_the_default_limit(server, tenant, size, chunked):
    """The default --max-object-bytes is 16 MiB, so a few MiB must be accepted (Content-Length
    or chunked) and read back intact."""
    tid, tok = tenant["id"], tenant["admin_token"]
    data = os.urandom(size)
    r = _put_large(server, key_path(tid, f"large-{size}-{chunked}"), tok, data, chunked)
    assert r.status == 201, r
    assert r.json()["size"] == size and r.json()["sha256"] == sha256_hex(data)
    g = server.get(key_path(tid, f"large-{size}-{chunked}"), token=tok)
    assert g.status == 200 and g.body == data


def test_concurrent_writes_to_one_key_get_distinct_versions(server, tenant):
    """Group commit must not lose or duplicate a version: N concurrent PUTs of one key answer
    versions 1..N exactly once, the last version's content is what GET returns, and the home
    and replica cells agree."""
    import threading
    tid, tok = tenant["id"], tenant["admin_token"]
    results, errors = [], []

    def writer(w):
        try:
            with server.client() as c:
                for i in range(5):
                    data = f"writer {w} write {i} {secrets.token_hex(8)}".encode()
                    r = c.request("PUT", key_path(tid, "contended"), data, token=tok)
                    results.append((r.status, r.json()["version"], data))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    versions = sorted(v for _, v, _ in results)
    assert versions == list(range(1, 41)), versions
    assert [s for s, v, _ in results if v == 1] == [201]
    assert all(s == 200 for s, v, _ in results if v > 1)
    last = next(d for _, v, d in results if v == 40)
    g = server.get(key_path(tid, "contended"), token=tok)
    assert g.body == last and g.header("x-custos-version") == "40"
    if os.environ.get("CUSTOS_BACKEND", "sqlite") == "sqlite":
        rows = [server.query_cell(r, "SELECT version, sha256 FROM objects WHERE tenant_id = ? "
                                  "AND key = ?", (tid, "contended"))
                for r in (tenant["home_region"], tenant["replica_region"])]
        assert rows[0] == rows[1] == [(40, sha256_hex(last))]


def test_concurrent_writes_of_many_keys_all_land_in_both_cells(server, tenant):
    import threading
    tid, tok = tenant["id"], tenant["admin_token"]
    data = {f"many/{w}/{i}": os.urandom(64 + i) for w in range(6) for i in range(10)}
    errors = []

    def writer(w):
        try:
            with server.client() as c:
                for i in range(10):
                    k = f"many/{w}/{i}"
                    r = c.request("PUT", key_path(tid, k), data[k], token=tok)
                    assert r.status == 201, r
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    listed = {o["key"]: o["sha256"] for o in server.list_all(tid, tok, prefix="many/")}
    assert listed == {k: sha256_hex(v) for k, v in data.items()}
    if os.environ.get("CUSTOS_BACKEND", "sqlite") == "sqlite":
        q = "SELECT key, sha256, version FROM objects WHERE tenant_id = ? ORDER BY key"
        assert server.query_cell(tenant["home_region"], q, (tid,)) == \
            server.query_cell(tenant["replica_region"], q, (tid,))


def test_prefix_is_literal_not_a_pattern(server, tenant):
    """Prefixes match bytes: '_' and '%' are not wildcards (LIKE), case matters."""
    tid, tok = tenant["id"], tenant["admin_token"]
    for k in ("a_b", "axb", "a%c", "abc", "A_b", "a_", "a__z"):
        server.put_object(tid, k, b"x", tok)
    keys = lambda p: [o["key"] for o in server.list_all(tid, tok, prefix=p)]  # noqa: E731
    assert keys("a_") == ["a_", "a__z", "a_b"]
    assert keys("a%") == ["a%c"]
    assert keys("A") == ["A_b"]
    assert keys("a_b") == ["a_b"]


def test_unicode_tenant_name_round_trips(server):
    name = "Société Générale — 日本 🚀"
    t = server.create_tenant(name=name)
    assert server.get(f"/v1/tenants/{t['id']}", token=t["admin_token"]).json()["name"] == name


def test_metrics_do_not_leak_object_keys_or_ids(server, tenant):
    key = f"metric-leak-{secrets.token_hex(8)}"
    server.put_object(tenant["id"], key, b"x", tenant["admin_token"])
    server.get(key_path(tenant["id"], key), token=tenant["admin_token"])
    text = server.get("/metrics").body.decode()
    assert key not in text and tenant["id"] not in text
    assert 'route="/v1/tenants/{id}/objects/{key...}"' in text


def test_expect_100_continue_gets_an_interim_answer(server, tenant):
    """curl sends Expect: 100-continue for uploads and waits for 100 before the body."""
    import socket as _socket

    from conftest import ResponseReader
    body = b"x" * 2048
    head = (f"PUT {key_path(tenant['id'], 'continued')} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {tenant['admin_token']}\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n").encode()
    with _socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(head)
        reader = ResponseReader(s)
        interim = reader.read(time.monotonic() + 2)  # without the 100, this times out
        assert interim.status == 100
        s.sendall(body)
        final = reader.read(time.monotonic() + 5)
        assert final.status == 201, final


def test_bearer_scheme_is_case_insensitive(server, tenant):
    r = server.get(f"/v1/tenants/{tenant['id']}", headers={
        "Authorization": f"bearer {tenant['admin_token']}"})
    assert r.status == 200, r


def test_metrics_count_requests_refused_before_any_route(server):
    """No route, a wrong method, a malformed head: each is counted, under a fixed label (never
    the client's path or method token, so clients cannot grow the metrics)."""
    before = server.get("/metrics").body.decode()

    def count(text, route, method, status):
        return _metric(text, "custos_http_requests_total", route=route, method=method,
                       status=status) or 0

    assert server.get("/v1/no-such-route").status == 404
    assert server.request("DELETE", "/v1/regions").status == 405
    assert server.request("BREW", "/v1/coffee").status in (400, 404)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")  # header without a colon
        assert s.recv(4096).startswith(b"HTTP/1.1 400")

    text = server.get("/metrics").body.decode()
    assert count(text, "(no route)", "GET", "404") == count(before, "(no route)", "GET", "404") + 1
    assert count(text, "(no route)", "DELETE", "405") == \
        count(before, "(no route)", "DELETE", "405") + 1
    assert "BREW" not in text and "no-such-route" not in text and "coffee" not in text
    assert count(text, "(http)", "other", "400") == count(before, "(http)", "other", "400") + 1


def test_concurrent_reads_each_get_their_own_answer_and_ledger_entry(server):
    """Many reads at once, hits and misses: each answer is its own request's (right bytes, its
    own ledger entry), and the log holds one data.read per request and one outcome per miss."""
    import json
    import threading

    t = server.create_tenant()
    tok = t["admin_token"]
    bodies = {f"r/{i}": secrets.token_bytes(64 + i) for i in range(8)}  # r/8, r/9: missing
    for k, b in bodies.items():
        server.put_object(t["id"], k, b, tok)
    results = []
    lock = threading.Lock()

    def reader(n: int) -> None:
        with server.client() as c:
            for j in range(25):
                key = f"r/{(n + j) % 10}"
                r = c.request("GET", key_path(t["id"], key), token=tok)
                with lock:
                    results.append((key, r))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert len(results) == 16 * 25

    hit_index = {}
    misses = 0
    for key, r in results:
        if key in bodies:
            assert r.status == 200, (key, r)
            assert r.body == bodies[key], key
            index = int(r.header("X-Custos-Ledger-Index"))
            assert index not in hit_index, "two reads answered with one ledger entry"
            hit_index[index] = key
        else:
            assert_error(r, 404, "not_found")
            misses += 1

    log = server.get(f"/v1/tenants/{t['id']}/access-log?limit=1000", token=tok).json()["events"]
    records = {e["ledger_index"]: json.loads(e["record"]) for e in log}
    reads = {i: r for i, r in records.items() if r["kind"] == "data.read"}
    assert len(reads) == len(results)
    for index, key in hit_index.items():
        assert reads[index]["resource"] == key  # the answer's entry is this request's
    outcomes = [r for r in records.values() if r["kind"] == "outcome"]
    assert len(outcomes) == misses
    for o in outcomes:
        assert o["outcome"] == "not_found"
        assert reads[o["of"]]["resource"] in ("r/8", "r/9")
    assert server.healthy()


def test_access_log_filters_and_pages(server):
    """GET /v1/tenants/{id}/access-log: kind, role and time filters, paging by cursor (an empty
    cursor is the start), and bad limits and cursors refused."""
    t = server.create_tenant()
    tid, tok = t["id"], t["admin_token"]
    user = server.create_principal(tok, role="tenant_user", tenant_id=tid)
    for i in range(3):
        server.put_object(tid, f"k{i}", b"x", tok)
    for i in range(3):
        assert server.get(key_path(tid, f"k{i}"), token=user["token"]).status == 200
    base = f"/v1/tenants/{tid}/access-log"

    def events(query: str) -> list[dict]:
        r = server.get(f"{base}?{query}", token=tok)
        assert r.status == 200, r
        return [json.loads(e["record"]) for e in r.json()["events"]]

    everything = events("limit=1000")
    assert [e["kind"] for e in everything][:1] == ["tenant.create"]
    reads = events("kind=data.read")
    assert len(reads) == 3 and all(e["role"] == "tenant_user" for e in reads)
    assert events("role=tenant_user&kind=data.read") == reads
    assert events("role=tenant_admin&kind=data.read") == []
    assert events("from=2999-01-01T00:00:00Z") == []
    assert len(events("to=2999-01-01T00:00:00Z&limit=1000")) == len(everything)
    # Paging two at a time gives the whole log once, in order; an empty cursor is the start.
    paged, cursor = [], ""
    while cursor is not None:
        r = server.get(f"{base}?limit=2&cursor={cursor}", token=tok)
        assert r.status == 200, r
        body = r.json()
        assert len(body["events"]) <= 2
        paged += [json.loads(e["record"]) for e in body["events"]]
        cursor = body["next_cursor"]
    assert paged == everything
    for bad in ("limit=0", "limit=1001", "limit=%2B5", "limit=05", "limit=abc", "cursor=x",
                "cursor=-1", "from=yesterday"):
        assert_error(server.get(f"{base}?{bad}", token=tok), 400, "invalid_argument")
