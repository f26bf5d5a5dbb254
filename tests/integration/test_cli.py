"""The custos command line around the server: init's files, refusing to clobber a data
directory, and serve failing fast (never hanging) when it cannot run."""

import os
import socket
import stat
import subprocess

import pytest

from conftest import BACKEND, BINARY, Server, init_args


def _run(*args, timeout=30):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout)


def test_init_writes_secret_files_0600(tmp_path):
    s = Server(tmp_path / "data")
    mode = stat.S_IMODE(os.stat(s.data_dir / "admin.token").st_mode)
    assert mode == 0o600, oct(mode)
    assert s.admin_token.startswith("cst_")
    if BACKEND == "sqlite" or (s.data_dir / "master.key").exists():
        mode = stat.S_IMODE(os.stat(s.data_dir / "master.key").st_mode)
        assert mode == 0o600, oct(mode)


def test_init_twice_refuses_and_keeps_the_keys(tmp_path):
    s = Server(tmp_path / "data")
    before = {p.name: p.read_bytes() for p in s.data_dir.iterdir() if p.is_file()}
    r = _run(*init_args(s.data_dir))
    assert r.returncode != 0, "a second init must refuse"
    assert r.stderr.strip(), "and say why"
    after = {p.name: p.read_bytes() for p in s.data_dir.iterdir() if p.is_file()}
    assert after == before, "a refused init changed the data directory"
    # The original admin token still works.
    s.start()
    try:
        assert s.get("/v1/principals/me", token=s.admin_token).status == 200
    finally:
        assert s.stop() == 0


def test_serve_without_init_fails_fast(tmp_path):
    r = _run("serve", "--data-dir", str(tmp_path / "nothing"), "--listen", "127.0.0.1:0",
             timeout=15)
    assert r.returncode != 0
    assert "init" in r.stderr


def test_serve_on_a_busy_port_fails_fast(tmp_path):
    s = Server(tmp_path / "data")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _run("serve", "--data-dir", str(s.data_dir), "--listen", f"127.0.0.1:{port}",
                 timeout=15)
    assert r.returncode != 0 and r.stderr.strip()


@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1:99999", "127.0.0.1:-1",
                                    "not-an-ip:80", "127.0.0.1:+18312", "127.0.0.1: 18313",
                                    "::1:18317"])
def test_serve_rejects_a_bad_listen_address(tmp_path, listen):
    s = Server(tmp_path / "data")
    r = _run("serve", "--data-dir", str(s.data_dir), "--listen", listen, timeout=15)
    assert r.returncode != 0 and r.stderr.strip()


@pytest.mark.parametrize("limit", ["0", "268435457", "2000000000"])
def test_serve_refuses_an_object_limit_no_cell_can_store(tmp_path, limit):
    """An object is one value in a cell: SQLite refuses values over 1e9 bytes, PostgreSQL over
    1 GiB (read back as hex: twice the size). The limit is at most 256 MiB."""
    s = Server(tmp_path / "data")
    r = _run("serve", "--data-dir", str(s.data_dir), "--listen", "127.0.0.1:0",
             "--max-object-bytes", limit, timeout=15)
    assert r.returncode != 0
    assert "--max-object-bytes" in r.stderr, r.stderr


@pytest.mark.parametrize("origin", ["a+b", "with space", "two\nlines"])
def test_init_refuses_a_bad_origin_before_creating_anything(tmp_path, origin):
    d = tmp_path / "data"
    r = _run(*init_args(d), "--origin", origin)
    assert r.returncode != 0 and "--origin" in r.stderr
    assert not d.exists() or not any(d.iterdir()), sorted(p.name for p in d.iterdir())
    # The corrected run needs nothing removed by hand.
    r = _run(*init_args(d), "--origin", "custos.example.com/log")
    assert r.returncode == 0, r.stderr


def test_init_refuses_an_existing_keyring_before_creating_anything(tmp_path):
    first = Server(tmp_path / "first")
    keyring = tmp_path / "shared.keyring"
    r = _run(*init_args(first.data_dir.parent / "second"), "--keyring", str(keyring))
    assert r.returncode == 0, r.stderr
    before = keyring.read_bytes()
    d = tmp_path / "third"
    r = _run(*init_args(d), "--keyring", str(keyring))
    assert r.returncode != 0 and "keyring exists" in r.stderr
    assert keyring.read_bytes() == before
    assert not d.exists() or not any(d.iterdir()), sorted(p.name for p in d.iterdir())


def test_serve_listens_on_bracketed_ipv6(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    s = Server(tmp_path / "data")
    proc = subprocess.Popen([BINARY, "serve", "--data-dir", str(s.data_dir), "--listen",
                             "[::1]:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        for _ in range(50):
            if "listening" in line:
                break
            line = proc.stdout.readline()
        assert "listening" in line, line
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
