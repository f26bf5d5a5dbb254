"""Promises 2 and 7 through the API: region restrictions refuse tenants, and pairing follows the
contract (nearest admitting region of the same geography at >= 804.672 km, haversine R =
6371.0088 km), all computed here from GET /v1/regions."""

import secrets

import pytest

from conftest import MIN_PAIR_KM, assert_error, haversine_km

RULES = {  # rule name -> tenant spec field that it checks
    "excluded_services": "services",
    "excluded_technologies": "technologies",
    "excluded_customer_types": "customer_type",
}


def _tenant_count(server) -> int | None:
    try:
        return server.query_control("SELECT COUNT(*) FROM tenants")[0][0]
    except BaseException:  # other backends: the API is all we have
        return None


def _spec(geography, *, home=None, customer_type="enterprise", services=(), technologies=(),
          **extra):
    body = {"name": f"Policy {secrets.token_hex(3)}", "customer_type": customer_type,
            "geography": geography, "services": list(services),
            "technologies": list(technologies), "lockbox": False, **extra}
    if home is not None:
        body["home_region"] = home
    return body


def _admits(region: dict, spec: dict) -> str | None:
    """The rule of `region` that refuses `spec`, or None if it admits it."""
    norm = lambda v: v.strip().lower().replace("-", "_").replace(" ", "_")  # noqa: E731
    r = region["restrictions"]
    if any(norm(s) in r["excluded_services"] for s in spec["services"]):
        return "excluded_services"
    if any(norm(s) in r["excluded_technologies"] for s in spec["technologies"]):
        return "excluded_technologies"
    if norm(spec["customer_type"]) in r["excluded_customer_types"]:
        return "excluded_customer_types"
    return None


def _expected_placement(regions, spec):
    """(home, replica, refusing rule of home) by brute force over the catalog."""
    geo = [r for r in regions if r["geography"] == spec["geography"]]
    if "home_region" in spec:
        home = next(r for r in regions if r["id"] == spec["home_region"])
        rule = _admits(home, spec)
        if rule:
            return home, None, rule
    else:
        admitting = [r for r in geo if _admits(r, spec) is None]
        if not admitting:
            return geo[0], None, _admits(geo[0], spec)
        home = admitting[0]
    best, best_km = None, None
    for r in geo:
        if r is home or _admits(r, spec) is not None:
            continue
        km = haversine_km(home["lat"], home["lon"], r["lat"], r["lon"])
        if km >= MIN_PAIR_KM and (best_km is None or km < best_km):
            best, best_km = r, km
    return home, best, None


def _first_restricted(regions, rule):
    for r in regions:
        if r["restrictions"][rule]:
            return r, r["restrictions"][rule][0]
    pytest.skip(f"no region of the catalog has {rule}")


@pytest.mark.parametrize("rule", sorted(RULES))
def test_region_refuses_tenant_for_each_restriction_kind(server, regions, rule):
    region, value = _first_restricted(regions, rule)
    field = RULES[rule]
    spec = _spec(region["geography"], home=region["id"])
    if field == "customer_type":
        spec["customer_type"] = value
    else:
        spec[field] = ["storage", value] if field == "services" else [value]
    before = _tenant_count(server)
    r = server.post("/v1/tenants", spec, token=server.admin_token)
    err = assert_error(r, 403, "region_policy_violation")
    d = err["details"]
    assert set(d) == {"region", "rule", "reason"}, d
    assert d["region"] == region["id"] and d["rule"] == rule
    assert isinstance(d["reason"], str) and value in d["reason"], d
    assert _tenant_count(server) == before, "a refused tenant must not be stored"
    assert server.healthy()


def test_exclusions_compare_normalised_values(server, regions):
    """"Facial-Recognition" must not slip past an exclusion of facial_recognition."""
    region, value = _first_restricted(regions, "excluded_technologies")
    spelled = value.replace("_", "-").title()
    spec = _spec(region["geography"], home=region["id"], technologies=[spelled])
    err = assert_error(server.post("/v1/tenants", spec, token=server.admin_token), 403,
                       "region_policy_violation")
    assert err["details"]["rule"] == "excluded_technologies"


def test_geography_where_no_region_admits_is_refused(server, regions):
    """Without home_region, a geography whose every region excludes the tenant is refused."""
    by_geo = {}
    for r in regions:
        by_geo.setdefault(r["geography"], []).append(r)
    for geo, rs in by_geo.items():
        common = set.intersection(*(set(r["restrictions"]["excluded_customer_types"])
                                    for r in rs))
        if common:
            value = sorted(common)[0]
            spec = _spec(geo, customer_type=value)
            err = assert_error(server.post("/v1/tenants", spec, token=server.admin_token), 403,
                               "region_policy_violation")
            assert err["details"]["rule"] == "excluded_customer_types"
            assert err["details"]["region"] in {r["id"] for r in rs}
            return
    pytest.skip("no geography excludes a customer type everywhere")


def _profiles_for(regions, geography):
    """The default profile plus one per restriction value found in this geography."""
    profiles = [{}]
    for r in regions:
        if r["geography"] != geography:
            continue
        for rule, field in RULES.items():
            for v in r["restrictions"][rule]:
                p = {"customer_type": v} if field == "customer_type" else {field: [v]}
                if p not in profiles:
                    profiles.append(p)
    return profiles


def _check_placement(server, regions, spec):
    home, replica, rule = _expected_placement(regions, spec)
    r = server.post("/v1/tenants", spec, token=server.admin_token)
    ctx = f"spec {spec}: {r}"
    if rule is not None:
        err = assert_error(r, 403, "region_policy_violation")
        assert err["details"]["region"] == home["id"] and err["details"]["rule"] == rule, ctx
        return
    if replica is None:
        assert_error(r, 409, "failed_precondition")
        r = server.post("/v1/tenants", {**spec, "allow_single_region": True},
                        token=server.admin_token)
        assert r.status == 201, ctx
        t = r.json()
        assert t["home_region"] == home["id"] and t["replica_region"] is None, ctx
        g = server.get(f"/v1/tenants/{t['id']}", token=server.admin_token).json()
        assert g["replica_region"] is None
        assert [(u["region"], u["role"]) for u in g["location"]] == [(home["id"], "home")]
        return
    assert r.status == 201, ctx
    t = r.json()
    assert t["home_region"] == home["id"], ctx
    assert t["replica_region"] == replica["id"], ctx
    placed = next(x for x in regions if x["id"] == t["replica_region"])
    km = haversine_km(home["lat"], home["lon"], placed["lat"], placed["lon"])
    assert km >= MIN_PAIR_KM, f"replica {placed['id']} only {km:.1f} km from {home['id']}"
    assert placed["geography"] == spec["geography"]
    assert _admits(placed, spec) is None
    g = server.get(f"/v1/tenants/{t['id']}", token=t["admin_token"]).json()
    assert sorted((u["region"], u["role"]) for u in g["location"]) == sorted(
        [(home["id"], "home"), (replica["id"], "replica")])


def test_pairing_for_every_geography_default_home(server, regions):
    geographies = list(dict.fromkeys(r["geography"] for r in regions))
    assert len(geographies) >= 2
    for geo in geographies:
        for profile in _profiles_for(regions, geo):
            _check_placement(server, regions, _spec(geo, **profile))


def test_pairing_for_every_home_region(server, regions):
    for home in regions:
        for profile in _profiles_for(regions, home["geography"]):
            _check_placement(server, regions, _spec(home["geography"], home=home["id"],
                                                    **profile))


def test_uk_has_no_pair(server, regions):
    uk = [r for r in regions if r["geography"] == "UK"]
    if not uk:
        pytest.skip("no UK geography in this catalog")
    before = _tenant_count(server)
    r = server.post("/v1/tenants", _spec("UK"), token=server.admin_token)
    assert_error(r, 409, "failed_precondition")
    assert _tenant_count(server) == before
    r = server.post("/v1/tenants", _spec("UK", allow_single_region=True),
                    token=server.admin_token)
    assert r.status == 201, r
    assert r.json()["home_region"] == uk[0]["id"] and r.json()["replica_region"] is None


@pytest.mark.parametrize("spec,why", [
    ({"geography": "XX"}, "unknown geography"),
    ({"geography": "US", "home_region": "nowhere-1"}, "unknown home_region"),
    ({"geography": "US", "home_region": "eu-west"}, "home_region of another geography"),
])
def test_bad_placement_requests_are_400(server, spec, why):
    before = _tenant_count(server)
    body = _spec(spec["geography"])
    body.update(spec)
    assert_error(server.post("/v1/tenants", body, token=server.admin_token), 400,
                 "invalid_argument")
    assert _tenant_count(server) == before, why
