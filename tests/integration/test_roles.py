"""Promise 3 by role: nobody at the provider has standing access to customer data, and tenant
principals stay inside their tenant."""

import pytest

from conftest import BACKEND, assert_error, key_path, list_path


@pytest.fixture(scope="module")
def two_tenants(server):
    a = server.create_tenant(geography="US", name="Roles A")
    b = server.create_tenant(geography="EU", name="Roles B")
    server.put_object(a["id"], "doc", b"A's document", a["admin_token"])
    server.put_object(b["id"], "doc", b"B's document", b["admin_token"])
    return a, b


def _counts(server):
    if BACKEND != "sqlite":
        return None
    return server.query_control("SELECT COUNT(*) FROM principals")[0][0]


def _data_routes(tid):
    return [("PUT", key_path(tid, "doc"), b"overwritten"),
            ("PUT", key_path(tid, "planted"), b"planted"),
            ("GET", key_path(tid, "doc"), None),
            ("DELETE", key_path(tid, "doc"), None),
            ("GET", list_path(tid), None),
            ("GET", list_path(tid, prefix="d", limit=1), None)]


def _assert_untouched(server, tenant, content):
    tok = tenant["admin_token"]
    g = server.get(key_path(tenant["id"], "doc"), token=tok)
    assert g.status == 200 and g.body == content
    assert g.header("x-custos-version") == "1"
    assert [o["key"] for o in server.list_all(tenant["id"], tok)] == ["doc"]


@pytest.mark.parametrize("role", ["admin", "operator", "manager", "legal", "auditor"])
def test_provider_roles_have_no_standing_access_to_data(server, two_tenants, role):
    a, _ = two_tenants
    token = server.admin_token if role == "admin" else server.create_principal(
        server.admin_token, role=role, attributes={"screened": True, "citizenship": ["US"]})[
        "token"]
    for method, path, body in _data_routes(a["id"]):
        assert_error(server.request(method, path, body, token=token), 403, "permission_denied")
    # Asking for a purpose does not help either.
    for purpose in ("support", "troubleshooting", "security"):
        r = server.get(key_path(a["id"], "doc"), token=token,
                       headers={"X-Custos-Purpose": purpose})
        assert_error(r, 403, "permission_denied")
    _assert_untouched(server, a, b"A's document")


def test_operator_with_forged_grant_header_is_refused(server, two_tenants):
    a, _ = two_tenants
    op = server.create_principal(server.admin_token, role="operator")
    for method, path, body in _data_routes(a["id"]):
        r = server.request(method, path, body, token=op["token"],
                           headers={"X-Custos-Grant": "made-up-grant-id"})
        assert_error(r, 403, "permission_denied")
    _assert_untouched(server, a, b"A's document")


def test_tenant_user_cannot_create_principals(server, two_tenants):
    a, _ = two_tenants
    user = server.create_principal(a["admin_token"], role="tenant_user", tenant_id=a["id"])
    before = _counts(server)
    for body in ({"name": "u2", "role": "tenant_user", "tenant_id": a["id"]},
                 {"name": "a2", "role": "tenant_admin", "tenant_id": a["id"]},
                 {"name": "op", "role": "operator"}):
        assert_error(server.post("/v1/principals", body, token=user["token"]), 403,
                     "permission_denied")
    assert _counts(server) == before


def test_tenant_admin_cannot_create_principals_elsewhere(server, two_tenants):
    a, b = two_tenants
    before = _counts(server)
    for body in ({"name": "intruder", "role": "tenant_user", "tenant_id": b["id"]},
                 {"name": "intruder", "role": "tenant_admin", "tenant_id": b["id"]},
                 {"name": "op", "role": "operator"},
                 {"name": "boss", "role": "admin"},
                 {"name": "mgr", "role": "manager"}):
        assert_error(server.post("/v1/principals", body, token=a["admin_token"]), 403,
                     "permission_denied")
    assert _counts(server) == before


def test_provider_admin_cannot_create_a_tenants_principals(server, two_tenants):
    """Nobody at the provider has standing access: a principal the admin made for a tenant
    would read its data, and a second tenant_admin could approve the provider's own Lockbox
    requests. The tenant's first tenant_admin comes with the tenant; it makes the rest."""
    a, _ = two_tenants
    before = _counts(server)
    for body in ({"name": "mole", "role": "tenant_user", "tenant_id": a["id"]},
                 {"name": "mole", "role": "tenant_admin", "tenant_id": a["id"]}):
        assert_error(server.post("/v1/principals", body, token=server.admin_token), 403,
                     "permission_denied")
    assert _counts(server) == before
    assert server.create_principal(a["admin_token"], role="tenant_admin", tenant_id=a["id"])


def test_provider_staff_cannot_create_principals(server):
    op = server.create_principal(server.admin_token, role="operator")
    mgr = server.create_principal(server.admin_token, role="manager")
    before = _counts(server)
    for tok in (op["token"], mgr["token"]):
        assert_error(server.post("/v1/principals", {"name": "x", "role": "operator"}, token=tok),
                     403, "permission_denied")
    assert _counts(server) == before


def test_tenant_tokens_do_not_cross_tenants(server, two_tenants):
    a, b = two_tenants
    user_a = server.create_principal(a["admin_token"], role="tenant_user", tenant_id=a["id"])
    for token in (a["admin_token"], user_a["token"]):
        for method, path, body in _data_routes(b["id"]):
            assert_error(server.request(method, path, body, token=token), 403,
                         "permission_denied")
        assert_error(server.get(f"/v1/tenants/{b['id']}", token=token), 403,
                     "permission_denied")
    _assert_untouched(server, b, b"B's document")
    _assert_untouched(server, a, b"A's document")


def test_provider_staff_cannot_read_tenant_description(server, two_tenants):
    a, _ = two_tenants
    op = server.create_principal(server.admin_token, role="operator")
    assert_error(server.get(f"/v1/tenants/{a['id']}", token=op["token"]), 403,
                 "permission_denied")


def test_tenant_user_has_data_access_to_own_tenant(server, two_tenants):
    a, _ = two_tenants
    user = server.create_principal(a["admin_token"], role="tenant_user", tenant_id=a["id"])
    tok = user["token"]
    assert server.put(key_path(a["id"], "user-file"), b"u", token=tok).status == 201
    assert server.get(key_path(a["id"], "user-file"), token=tok).body == b"u"
    assert server.get(list_path(a["id"], prefix="user-"), token=tok).status == 200
    assert server.delete(key_path(a["id"], "user-file"), token=tok).status == 204
    assert server.get(f"/v1/tenants/{a['id']}", token=tok).status == 200

