"""`custos mfa enroll` and `custos access …`: the workflow from a terminal, against a real
server with --fake-clock (TOTP codes from oathtool)."""

from __future__ import annotations

import json
import subprocess

from conftest import BINARY, assert_error, key_path
from test_access import advance, oathtool, STEP


def custos(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60)


def test_cli_enrolls_and_runs_the_workflow(server_factory, tmp_path):
    s = server_factory("--fake-clock")
    url = f"http://127.0.0.1:{s.port}"
    t = s.create_tenant()
    s.put_object(t["id"], "logs/a", b"log a", t["admin_token"])
    op = s.create_principal(s.admin_token, role="operator")
    mgr = s.create_principal(s.admin_token, role="manager")
    op_token = tmp_path / "op.token"
    op_token.write_text(op["token"] + "\n")

    secrets = {}
    for who, token in (("op", str(op_token)), ("mgr", mgr["token"])):
        r = custos("mfa", "enroll", "--url", url, "--token", token)
        assert r.returncode == 0, r.stderr
        assert "\u2588" in r.stdout  # the QR code, in half blocks
        secrets[who] = next(line.split(": ", 1)[1] for line in r.stdout.splitlines()
                            if line.startswith("secret: "))
    # Re-enrolling without a code is refused, with the server's error on stderr.
    r = custos("mfa", "enroll", "--url", url, "--token", str(op_token))
    assert r.returncode == 1 and "mfa_required" in r.stderr

    # Without --prefix nothing is filed: an omitted prefix must not ask for the whole tenant.
    r = custos("access", "request", "--url", url, "--token", str(op_token), "--tenant", t["id"],
               "--operations", "read,list", "--justification", "SUP-9 logs", "--ticket", "SUP-9")
    assert r.returncode != 0 and "--prefix" in r.stderr, r
    assert s.get("/v1/access-requests", token=mgr["token"]).json()["requests"] == []
    r = custos("access", "request", "--url", url, "--token", str(op_token), "--tenant", t["id"],
               "--operations", "read,list", "--prefix", "logs/", "--justification", "SUP-9 logs",
               "--ticket", "SUP-9", "--duration", "15")
    assert r.returncode == 0, r.stderr
    req = json.loads(r.stdout)
    assert req["state"] == "pending_manager" and req["operations"] == ["read", "list"]

    r = custos("access", "approve", "--url", url, "--token", mgr["token"], "--id", req["id"])
    assert r.returncode == 1 and "mfa_required" in r.stderr
    code = oathtool(secrets["mgr"], advance(s, STEP))
    r = custos("access", "approve", "--url", url, "--token", mgr["token"], "--id", req["id"],
               "--totp", code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state"] == "approved"

    code = oathtool(secrets["op"], advance(s, STEP))
    r = custos("access", "activate", "--url", url, "--token", str(op_token), "--id", req["id"],
               "--totp", code)
    assert r.returncode == 0, r.stderr
    grant = json.loads(r.stdout)["grant_id"]
    got = s.get(key_path(t["id"], "logs/a"), token=op["token"],
                headers={"X-Custos-Grant": grant})
    assert got.status == 200 and got.body == b"log a"

    r = custos("access", "list", "--url", url, "--token", mgr["token"], "--state", "active")
    assert r.returncode == 0, r.stderr
    assert [x["id"] for x in json.loads(r.stdout)["requests"]] == [req["id"]]

    r = custos("access", "revoke", "--url", url, "--token", mgr["token"], "--id", req["id"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state"] == "revoked"
    assert_error(s.get(key_path(t["id"], "logs/a"), token=op["token"],
                       headers={"X-Custos-Grant": grant}), 403, "permission_denied")
    r = custos("access", "close", "--url", url, "--token", str(op_token), "--id", req["id"])
    assert r.returncode == 1 and "failed_precondition" in r.stderr
