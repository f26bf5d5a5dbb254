#!/usr/bin/python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (committed; rerun after changing the
bad-input cases): the requests, bodies, keys and queries of tests/integration/test_bad_input.py,
a few good inputs of each kind, and signed notes under the fixed key of signed_note.cc.

    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import base64
import hashlib
import json
import os
import shutil
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/integration"))
os.environ.setdefault("CUSTOS_BINARY", "/nonexistent")
import test_bad_input as bad  # noqa: E402

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

CORPUS = ROOT / "tests/fuzz/corpus"
TENANT = "t_0123456789abcdef"
TOKEN = "cst_" + "A" * 43
MAX_SEED = 16384  # keeps libFuzzer's default -max_len (the largest seed) small


COUNT: dict = {}


def write(target: str, name: str, data: bytes) -> None:
    if len(data) > MAX_SEED:
        return
    d = CORPUS / target
    if target not in COUNT:  # a target's seeds are rewritten whole, numbered in order
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    COUNT[target] = COUNT.get(target, 0) + 1
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    (d / f"{COUNT[target]:03d}-{safe}").write_bytes(data)


def body_bytes(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return json.dumps({k: (v.replace("{A}", TENANT) if isinstance(v, str) else v)
                       for k, v in body.items()}).encode()


def http_request(method: str, path: str, body: bytes, headers: dict, token) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if token is not None:
        lines.append("Authorization: " + (token[4:] if str(token).startswith("raw:")
                                          else f"Bearer {TOKEN}"))
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("PUT", "POST"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def main() -> None:
    # --- bad-input cases -----------------------------------------------------------------------
    for case_id, method, path, body, headers, token, _status, _code in bad.CASES:
        path = path.replace("{A}", TENANT).replace("{B}", TENANT)
        data = body_bytes(body)
        write("http_request", case_id, http_request(method, path, data, headers, token))
        if path == "/v1/tenants":
            write("json_tenant", case_id, data)
        elif path == "/v1/principals":
            write("json_principal", case_id, data)
        elif path == "/v1/test/clock":
            write("json_clock", case_id, data)
        prefix = f"/v1/tenants/{TENANT}/objects/"
        if path.startswith(prefix):
            write("object_key", case_id, path[len(prefix):].encode("latin-1", "replace"))
        if "?" in path:
            write("query", case_id, path.split("?", 1)[1].encode())
    for case_id, raw in bad.RAW_CASES:
        write("http_request", "raw-" + case_id,
              raw.replace(b"{A}", TENANT.encode()).replace(b"{TA}", TOKEN.encode()))
    # Deep nesting, cut to fit a seed: still far over Boost.JSON's depth limit.
    write("json_tenant", "deep-nesting", b"[" * 3000 + b"]" * 3000)
    write("json_principal", "deep-nesting", b'{"attributes":' * 2000 + b"1" + b"}" * 2000)

    # --- good inputs ---------------------------------------------------------------------------
    write("json_tenant", "good", json.dumps(bad.tenant_body()).encode())
    write("json_tenant", "good-full", json.dumps({
        "name": "Acme", "customer_type": "enterprise", "geography": "EU",
        "home_region": "eu-west", "services": ["storage", "consumer_services"],
        "technologies": ["facial_recognition"], "lockbox": True, "retention_days": 30,
        "allow_single_region": True}).encode())
    # Access-request and audit-verdict bodies: the refusals of test_access.py, and good ones.
    req = {"tenant_id": TENANT, "operations": ["read"], "prefix": "logs/",
           "justification": "customer ticket", "ticket": "T-1", "duration_minutes": 30}
    for name, body in [
        ("good", req), ("good-full", dict(req, operations=["read", "list", "write", "delete"],
                                           purpose="support")),
        ("duration-too-long", dict(req, duration_minutes=481)),
        ("duration-zero", dict(req, duration_minutes=0)),
        ("duration-huge", dict(req, duration_minutes=2**40)),
        ("duration-float", dict(req, duration_minutes=1.5)),
        ("justification-empty", dict(req, justification="")),
        ("operations-empty", dict(req, operations=[])),
        ("operations-unknown", dict(req, operations=["root"])),
        ("operations-repeated", dict(req, operations=["read", "read"])),
        ("operations-string", dict(req, operations="read")),
        ("prefix-traversal", dict(req, prefix="../etc")),
        ("prefix-control", dict(req, prefix="logs/\u0001")),
        ("purpose-marketing", dict(req, purpose="marketing")),
        ("unknown-field", dict(req, extra=1)),
        ("missing-ticket", {k: v for k, v in req.items() if k != "ticket"}),
        ("missing-duration", {k: v for k, v in req.items() if k != "duration_minutes"}),
    ]:
        write("json_access_request", name, json.dumps(body).encode())
    write("json_access_request", "malformed", b"{not json")
    verdict = {"grant_id": "g_0123456789abcdef", "period": "2026-11", "verdict": "compliant",
               "note": "ticket ok"}
    for name, body in [
        ("good", verdict), ("good-half", dict(verdict, period="2026H2", verdict="inconclusive")),
        ("verdict-unknown", dict(verdict, verdict="meh")),
        ("period-bad", dict(verdict, period="2026-13")),
        ("note-long", dict(verdict, note="x" * 4001)),
        ("note-null", dict(verdict, note=None)),
        ("grant-int", dict(verdict, grant_id=7)),
        ("missing-period", {k: v for k, v in verdict.items() if k != "period"}),
    ]:
        write("json_audit_verdict", name, json.dumps(body).encode())
    write("json_audit_verdict", "not-object", b'["compliant"]')

    write("json_principal", "good", json.dumps(bad.principal_body()).encode())
    write("json_principal", "good-full", json.dumps({
        "name": "Ops", "role": "tenant_user", "tenant_id": TENANT, "expires_in_days": 30,
        "attributes": {"employer": "provider", "citizenship": ["US", "IE"],
                       "screened": True}}).encode())
    write("json_clock", "good", b'{"advance_seconds": 86400}')
    write("json_clock", "null", b'{"advance_seconds": null}')
    for k in ["a.txt", "dir/b.bin", "dir/c", "caf\u00e9/\u65e5\u672c.txt", "k" * 1024]:
        write("object_key", "good", k.encode())
        write("object_key", "good-encoded", urllib.parse.quote(k, safe="/").encode())
    for q in ["prefix=dir/&limit=2", "cursor=" + base64.urlsafe_b64encode(b"dir/b.bin").decode(),
              "limit=1000&cursor=", "from=2026-01-01&to=2026-12-31T23:59:59Z&role=operator&"
              "kind=data.read&limit=10&cursor=42", "index=0&size=1", "old=1&new=18446744073709551615",
              "a=%41%42&a=2&&b", "index=01", "size=-1"]:
        write("query", "good", q.encode())
    for m, p in [("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/v1/regions"),
                 ("GET", f"/v1/tenants/{TENANT}/objects?prefix=a&limit=5"),
                 ("GET", f"/v1/tenants/{TENANT}/access-log?from=2026-01-01"),
                 ("GET", "/ledger/checkpoint"), ("GET", "/ledger/tile/0/x001/234.p/7"),
                 ("GET", "/v1/ledger/proof/inclusion?index=3&size=9"),
                 ("GET", "/v1/ledger/proof/consistency?old=3&new=9")]:
        write("http_request", "good", http_request(m, p, b"", {}, "t"))
    write("http_request", "good-chunked",
          f"PUT /v1/tenants/{TENANT}/objects/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
          "chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode())
    write("http_request", "pipelined", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2)

    # --- tiles ---------------------------------------------------------------------------------
    for p in ["0/000", "0/x001/234", "0/x001/x234/067.p/8", "entries/000.p/5", "1/000.p/255",
              "63/x018/x446/x744/x073/x709/551/615", "0/0000", "0/001.p/256", "0/000.p/0",
              "entries/x000/001", "-1/000", "0/../000", "0/000/", "64/000"]:
        write("tile_path", "path", p.encode())
    bundle = b"".join(len(e).to_bytes(2, "big") + e for e in [b"one", b"", b"x" * 300])
    write("tile_path", "bundle", bundle)
    write("tile_path", "bundle-truncated", bundle[:-1])

    # --- ledger entries (canonical JSON, RFC 8785) ----------------------------------------------
    entry = ('{"digest":"%s","kind":"data.read","tenant":"%s","ts":1700000000000,"v":1}'
             % ("ab" * 32, "0f" * 32)).encode()
    write("ledger_entry", "entry", entry)
    write("ledger_entry", "entry-spaces", entry.replace(b",", b", "))
    write("ledger_entry", "entry-v2", entry.replace(b'"v":1', b'"v":2'))
    write("ledger_entry", "bundle", b"".join(len(e).to_bytes(2, "big") + e
                                             for e in [entry, entry.replace(b"read", b"write")]))

    # --- signed notes (the fixed key of signed_note.cc) ----------------------------------------
    name = "custos.fuzz/log"
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    from cryptography.hazmat.primitives import serialization as ser
    pub = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
    typed = base64.b64encode(b"\x01" + pub).decode()
    vkey = f"{name}+{key_id.hex()}+{typed}"
    write("signed_note", "vkey", vkey.encode())

    def sign(text: bytes, signer_name: str = name, kid: bytes = key_id, k=key) -> bytes:
        sig = k.sign(text)
        return text + b"\n" + f"\u2014 {signer_name} ".encode() + \
            base64.b64encode(kid + sig) + b"\n"

    root = base64.b64encode(hashlib.sha256(b"root").digest()).decode()
    cp = f"{name}\n12345\n{root}\n".encode()
    write("signed_note", "checkpoint", sign(cp))
    write("signed_note", "checkpoint-ext", sign(cp + b"ext line\n"))
    write("signed_note", "checkpoint-unsigned", cp)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    write("signed_note", "two-signatures",
          sign(cp) + sign(cp, "witness.example", b"\0\0\0\1", other).split(b"\n\n", 1)[1])
    write("signed_note", "bad-signature", sign(cp)[:-10] + b"AAAAAAAAA\n")
    write("signed_note", "no-blank-line", cp + sign(cp).split(b"\n\n", 1)[1])
    write("signed_note", "wrong-origin", sign(f"other.origin\n1\n{root}\n".encode()))
    write("signed_note", "size-leading-zero", sign(f"{name}\n012\n{root}\n".encode()))

    # --- regions.yaml ----------------------------------------------------------------------------
    regions = (ROOT / "config/regions.yaml").read_bytes()
    write("regions_yaml", "default", regions)
    write("regions_yaml", "truncated", regions[: len(regions) // 2])
    write("regions_yaml", "empty", b"")
    write("regions_yaml", "scalar", b"regions: 5\n")
    write("regions_yaml", "anchors", b"a: &x [*x]\nregions: *x\n")
    write("regions_yaml", "one", b"regions:\n  - id: r1\n    name: R\n    geography: US\n"
          b"    country: US\n    lat: 91\n    lon: 0\n    operated_by: provider\n")


if __name__ == "__main__":
    main()
