"""Black-box integration tests of the custos binary: shared server harness and HTTP helpers.

Run: CUSTOS_BINARY=build/custos /usr/bin/python3 -m pytest -q tests/integration

Environment:
  CUSTOS_BINARY   the custos executable (default: <repo>/build/custos)
  CUSTOS_BACKEND  sqlite (default) or postgresql
  CUSTOS_PG_DSN   postgresql: a server's DSN (scripts/with-postgres sets it); each data
                  directory gets its own database on that server (see init_args)

Everything here uses the standard library only: subprocess runs the binary, http.client talks
HTTP (it sends the request-target raw: no normalisation of `..` or `//`), socket is used for
requests http.client refuses to send (control characters, malformed request lines, slow
clients), and sqlite3 only ever opens the data directory's files read-only.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pytest

REPO = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("CUSTOS_BINARY") or str(REPO / "build" / "custos")
BACKEND = os.environ.get("CUSTOS_BACKEND", "sqlite")
REGIONS_YAML = REPO / "config" / "regions.yaml"

LISTENING_RE = re.compile(r"custos listening on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 15.0

EARTH_RADIUS_KM = 6371.0088
MIN_PAIR_KM = 804.672


# --------------------------------------------------------------------------------------------
# Backends: the one place that knows how `custos init` is told where the stores live.
# --------------------------------------------------------------------------------------------

def init_args(data_dir: Path) -> list[str]:
    """Arguments of `custos init` for the selected backend."""
    if BACKEND == "sqlite":
        return ["init", "--data-dir", str(data_dir)]
    if BACKEND == "postgresql":
        dsn = os.environ.get("CUSTOS_PG_DSN")
        if not dsn:
            pytest.skip("CUSTOS_BACKEND=postgresql needs CUSTOS_PG_DSN")
        return ["init", "--data-dir", str(data_dir), "--backend", "postgresql", "--dsn",
                pg_database_for(dsn, data_dir)]
    raise pytest.UsageError(f"unknown CUSTOS_BACKEND {BACKEND!r}")


def pg_dsn_with_database(dsn: str, database: str) -> str:
    """`dsn` (a URI or key=value libpq string) pointed at another database of the same server."""
    if dsn.startswith(("postgresql://", "postgres://")):
        return urllib.parse.urlunsplit(urllib.parse.urlsplit(dsn)._replace(path="/" + database))
    return f"{dsn} dbname={database}"


def pg_database_for(dsn: str, data_dir: Path) -> str:
    """Each data directory gets its own database on the CUSTOS_PG_DSN server, so servers stay
    isolated: custos_<digest of the directory's path>. A directory not yet initialised gets a
    fresh one (dropping a leftover of an earlier run); an initialised one meets its own again,
    so a second init of it is refused as on SQLite. Returns its DSN."""
    name = "custos_" + hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:20]
    script = (f"SELECT 'CREATE DATABASE {name}' "
              f"WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}') \\gexec\n")
    if not (Path(data_dir) / "custos.yaml").exists():
        script = f"DROP DATABASE IF EXISTS {name} WITH (FORCE);\n" + script
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", dsn], input=script,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"cannot create database {name}: {r.stderr}"
    return pg_dsn_with_database(dsn, name)


def requires_several_instances() -> None:
    """Tests with several `custos serve` on one data directory: PostgreSQL only."""
    if BACKEND != "postgresql":
        pytest.skip("several instances share a data directory on PostgreSQL only")


def requires_sqlite_files() -> None:
    """Tests that open the store files themselves only make sense on the SQLite backend."""
    if BACKEND != "sqlite":
        pytest.skip("inspects SQLite store files")


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    elapsed: float = 0.0

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"not JSON ({e}): status {self.status} body {self.body[:500]!r}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:300]!r}>"


def _headers(token: str | None, headers: dict[str, str] | None) -> dict[str, str]:
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return h


def _body(body: Any) -> tuple[bytes | None, dict[str, str]]:
    if body is None:
        return None, {}
    if isinstance(body, (bytes, bytearray)):
        return bytes(body), {}
    if isinstance(body, str):
        return body.encode(), {}
    return json.dumps(body).encode(), {"Content-Type": "application/json"}


class Client:
    """One keep-alive HTTP/1.1 connection. Paths are sent exactly as given."""

    def __init__(self, port: int, timeout: float = HTTP_TIMEOUT_S):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
        data, extra = _body(body)
        h = {**extra, **_headers(token, headers)}
        start = time.monotonic()
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        payload = r.read()
        return Response(r.status, r.reason, list(r.getheaders()), payload,
                        time.monotonic() - start)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ResponseReader:
    """Reads HTTP responses from a socket, keeping bytes that belong to the next response."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _recv(self, deadline: float) -> bytes:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"no complete response before the deadline; got "
                                 f"{self.buf[:300]!r}")
        except ConnectionResetError:
            return b""

    def read(self, deadline: float) -> Response | None:
        """One response; None if the peer closed before sending anything."""
        start = time.monotonic()
        while b"\r\n\r\n" not in self.buf:
            chunk = self._recv(deadline)
            if not chunk:
                if not self.buf:
                    return None
                raise AssertionError(f"connection closed mid-response: {self.buf[:300]!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert parts[0].startswith("HTTP/1."), f"bad status line {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        resp = Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, b"")
        length = int(resp.header("content-length") or 0)
        while len(self.buf) < length:
            chunk = self._recv(deadline)
            if not chunk:
                raise AssertionError("connection closed mid-body")
            self.buf += chunk
        resp.body, self.buf = self.buf[:length], self.buf[length:]
        resp.elapsed = time.monotonic() - start
        return resp


def read_http_response(sock: socket.socket, deadline: float) -> Response | None:
    """Reads one HTTP response from `sock`; None if the peer closed before sending anything."""
    return ResponseReader(sock).read(deadline)


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> Response | None:
    """Sends `data` as is on a new connection and reads one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        start = time.monotonic()
        s.sendall(data)
        r = read_http_response(s, start + timeout)
        if r is not None:
            r.elapsed = time.monotonic() - start
        return r


def wait_for_close(sock: socket.socket, deadline: float) -> bytes:
    """Reads until EOF (or reset); returns what was read. Fails at the deadline."""
    got = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError(f"connection still open at the deadline; read {got[:200]!r}")
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


def key_path(tenant_id: str, key: str) -> str:
    """Object URL: the key percent-encoded once, '/' kept as the segment separator."""
    return f"/v1/tenants/{tenant_id}/objects/{urllib.parse.quote(key, safe='/')}"


def list_path(tenant_id: str, **query: Any) -> str:
    q = urllib.parse.urlencode({k: v for k, v in query.items() if v is not None},
                               quote_via=urllib.parse.quote)
    return f"/v1/tenants/{tenant_id}/objects" + (f"?{q}" if q else "")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_error(resp: Response, status: int, code: str) -> dict:
    """The DESIGN.md error shape {"error":{"code","message","details"}} with this status/code."""
    assert resp.status == status, f"expected {status} {code}, got {resp.status}: {resp.body[:500]!r}"
    ctype = resp.header("content-type") or ""
    assert ctype.startswith("application/json"), f"error Content-Type {ctype!r}"
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict) and set(err) == {"code", "message", "details"}, err
    assert err["code"] == code, f"expected code {code}, got {err['code']}: {err['message']}"
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["details"], dict), err
    return err


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    import math
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi = math.radians(lat2 - lat1)
    dl = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------

class Server:
    """A `custos serve` process on a data directory initialised with `custos init`."""

    def __init__(self, data_dir: Path, extra_args: Iterable[str] = (), init: bool = True):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_lines: list[str] = []
        self._log_lock = threading.Lock()
        self.preexec: Any = None  # run in the child before exec (e.g. to lower a limit)
        if init:
            self.init()
        self.admin_token = (self.data_dir / "admin.token").read_text().strip()

    # --- lifecycle -------------------------------------------------------------------------

    def init(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([BINARY, *init_args(self.data_dir)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, f"custos init failed: {r.stdout}\n{r.stderr}"
        token = (self.data_dir / "admin.token").read_text().strip()
        assert token and token in r.stdout, "init must print the admin token it wrote"

    def start(self) -> "Server":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cmd = [BINARY, "serve", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0",
               *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=self.preexec)
        ready = threading.Event()
        port_box: list[int] = []

        def pump(stream, is_stdout: bool) -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                with self._log_lock:
                    self.log_lines.append(line)
                if is_stdout and not ready.is_set():
                    m = LISTENING_RE.search(line)
                    if m:
                        port_box.append(int(m.group(1)))
                        ready.set()
            stream.close()

        self._pumps = [threading.Thread(target=pump, args=(self.proc.stdout, True), daemon=True),
                       threading.Thread(target=pump, args=(self.proc.stderr, False), daemon=True)]
        for t in self._pumps:
            t.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"custos serve did not start: {self.logs()}")
        self.port = port_box[0]
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM; returns the exit status. Fails if it does not exit in time."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"custos did not exit within {timeout}s of SIGTERM")
        for t in self._pumps:
            t.join(timeout=5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> "Server":
        assert self.stop() == 0
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        with self._log_lock:
            return "".join(self.log_lines)

    # --- HTTP ------------------------------------------------------------------------------

    def client(self, timeout: float = HTTP_TIMEOUT_S) -> Client:
        return Client(self.port, timeout)

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """One request on a fresh connection."""
        with self.client() as c:
            return c.request(method, path, body, token=token, headers=headers)

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)

    def raw(self, data: bytes, timeout: float = 10.0) -> Response | None:
        return raw_request(self.port, data, timeout)

    def healthy(self) -> bool:
        r = self.get("/healthz")
        return r.status == 200 and r.json() == {"status": "ok"}

    # --- domain helpers --------------------------------------------------------------------

    def create_tenant(self, *, name: str | None = None, geography: str = "US",
                      customer_type: str = "enterprise", services: Any = ("storage",),
                      technologies: Any = (), lockbox: bool = False, **extra: Any) -> dict:
        """POST /v1/tenants as admin; asserts 201 and returns the answer (id, admin_token, …)."""
        body = {"name": name or f"Tenant {secrets.token_hex(4)}", "customer_type": customer_type,
                "geography": geography, "services": list(services),
                "technologies": list(technologies), "lockbox": lockbox, **extra}
        r = self.post("/v1/tenants", body, token=self.admin_token)
        assert r.status == 201, f"tenant create failed: {r}"
        t = r.json()
        assert t["id"] and t["admin_token"] and t["home_region"], t
        return t

    def create_principal(self, token: str, *, role: str, name: str | None = None,
                         tenant_id: str | None = None, attributes: dict | None = None,
                         **extra: Any) -> dict:
        body: dict[str, Any] = {"name": name or f"{role} {secrets.token_hex(3)}", "role": role}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        if attributes is not None:
            body["attributes"] = attributes
        body.update(extra)
        r = self.post("/v1/principals", body, token=token)
        assert r.status == 201, f"principal create failed: {r}"
        p = r.json()
        assert p["id"] and p["token"], p
        return p

    def put_object(self, tenant_id: str, key: str, data: bytes, token: str,
                   content_type: str | None = None) -> dict:
        headers = {"Content-Type": content_type} if content_type else None
        r = self.put(key_path(tenant_id, key), data, token=token, headers=headers)
        assert r.status in (200, 201), f"PUT {key!r}: {r}"
        return r.json()

    def list_all(self, tenant_id: str, token: str, prefix: str | None = None,
                 limit: int = 1000) -> list[dict]:
        out, cursor = [], None
        for _ in range(10000):
            r = self.get(list_path(tenant_id, prefix=prefix, limit=limit, cursor=cursor),
                         token=token)
            assert r.status == 200, r
            page = r.json()
            out += page["objects"]
            cursor = page["next_cursor"]
            if cursor is None:
                return out
        raise AssertionError("listing does not end")

    # --- store files (SQLite backend) ------------------------------------------------------

    def cell_path(self, region: str) -> Path:
        requires_sqlite_files()
        return self.data_dir / "cells" / f"{region}.db"

    def query_file(self, path: Path, sql: str, args: tuple = ()) -> list[tuple]:
        """Read-only query of one SQLite file of the data directory."""
        requires_sqlite_files()
        uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def query_cell(self, region: str, sql: str, args: tuple = ()) -> list[tuple]:
        return self.query_file(self.cell_path(region), sql, args)

    def query_control(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.query_file(self.data_dir / "control.db", sql, args)

    def cell_regions(self) -> list[str]:
        requires_sqlite_files()
        return sorted(p.name[:-3] for p in (self.data_dir / "cells").glob("*.db"))


def scan_data_dir(data_dir: Path, needles: Iterable[bytes]) -> list[tuple[str, int]]:
    """Every (file, needle index) where a needle occurs in a file under data_dir."""
    needles = list(needles)
    hits = []
    for root, _dirs, files in os.walk(data_dir):
        for name in files:
            p = Path(root) / name
            try:
                data = p.read_bytes()
            except FileNotFoundError:  # a -wal/-shm removed while we walk
                continue
            for i, n in enumerate(needles):
                if n in data:
                    hits.append((str(p.relative_to(data_dir)), i))
    return hits


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    if not Path(BINARY).is_file():
        raise pytest.UsageError(f"custos binary not found at {BINARY} (set CUSTOS_BINARY)")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterable[Server]:
    """The shared server most tests use (default flags)."""
    s = Server(tmp_path_factory.mktemp("session") / "data").start()
    yield s
    assert s.stop() == 0, "graceful shutdown must exit 0"


@pytest.fixture
def server_factory(tmp_path: Path):
    """make(*flags, data_dir=None) starts a dedicated server; teardown SIGTERMs it (exit 0)."""
    made: list[Server] = []

    def make(*extra_args: str, data_dir: Path | None = None) -> Server:
        if data_dir is None:
            s = Server(tmp_path / f"data{len(made)}", extra_args)
        else:
            s = Server(data_dir, extra_args, init=False)
        made.append(s)
        return s.start()

    yield make
    failures = []
    for s in made:
        if s.proc is not None and s.proc.poll() is None:
            rc = s.stop()
            if rc != 0:
                failures.append(f"{s.data_dir}: exit {rc}\n{s.logs()[-2000:]}")
    assert not failures, failures


@pytest.fixture(scope="session")
def regions(server: Server) -> list[dict]:
    r = server.get("/v1/regions")
    assert r.status == 200, r
    return r.json()["regions"]


@pytest.fixture
def tenant(server: Server) -> dict:
    """A fresh US enterprise tenant on the session server."""
    return server.create_tenant()
