"""HTTP/1.1 as RFC 9110/9112 ask of a server, and the limits that keep one client from holding
the server: framing that cannot be smuggled through, buffers that do not grow with what a client
sends, slow readers served and stalled ones cut off, and accept errors that do not spin."""

import os
import resource
import socket
import time
from pathlib import Path

import pytest

from conftest import (Server, assert_error, key_path, raw_request, read_http_response,
                      wait_for_close)


def read_head(sock: socket.socket, deadline: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and whatever bytes followed the head."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"closed before a complete head: {buf[:300]!r}"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), headers, rest


def all_responses(port: int, data: bytes, wait: float = 1.5) -> bytes:
    """Everything the server sends back for `data` until it closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        got = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            got += chunk
        return got


# RFC 9112 6.3: a request whose Transfer-Encoding does not end in chunked has no knowable end;
# served on, its body would be read as the next request (request smuggling).
@pytest.mark.parametrize("coding", ["gzip", "chunked, gzip", "identity", "gzip, chunked"])
def test_transfer_encodings_other_than_chunked_are_400_and_close(server, coding):
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    got = all_responses(server.port, b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\n"
                        b"Transfer-Encoding: " + coding.encode() + b"\r\n\r\n" +
                        (b"%x\r\n" % len(smuggled) + smuggled + b"\r\n0\r\n\r\n"
                         if coding.endswith("chunked") else smuggled))
    assert got.startswith(b"HTTP/1.1 400 "), got[:200]
    assert got.count(b"HTTP/1.1 ") == 1, f"the body was served as a request: {got!r}"
    assert server.healthy()


@pytest.mark.parametrize("hosts", [b"", b"Host: a\r\nHost: b\r\n"], ids=["none", "two"])
def test_an_http11_request_needs_exactly_one_host(server, hosts):
    r = raw_request(server.port, b"GET /healthz HTTP/1.1\r\n" + hosts + b"\r\n")
    assert_error(r, 400, "invalid_argument")
    # HTTP/1.0 has no Host requirement.
    assert raw_request(server.port, b"GET /healthz HTTP/1.0\r\n\r\n").status == 200


# A chunk header's extensions and the trailers are read into the connection's buffer, which no
# header or body limit covers: the buffer is capped, and a client past it gets 400 at once
# instead of making the server hold everything it sends until the request timeout.
@pytest.mark.parametrize("prefix", [b"2;ext=", b"0\r\nX-Trailer: "], ids=["chunk-ext", "trailer"])
def test_endless_chunk_extensions_or_trailers_are_refused(server_factory, prefix):
    s = server_factory("--request-timeout-ms", "20000")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n" + prefix)
        start = time.monotonic()
        try:
            for _ in range(64):  # 4 MiB, far past the cap (8 KiB of head + 64 KiB)
                sock.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = read_http_response(sock, start + 10)
    assert r is not None
    assert_error(r, 400, "invalid_argument")
    assert b"too long" in r.body
    assert s.healthy()


def test_head_is_get_without_the_content(server, tenant):
    data = os.urandom(5000)
    server.put_object(tenant["id"], "head/me", data, tenant["admin_token"])
    path = key_path(tenant["id"], "head/me").encode()
    auth = b"Authorization: Bearer " + tenant["admin_token"].encode() + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # Two HEADs and a GET on one connection: a HEAD answer must carry no bytes of content,
        # or the next answer would be read from the middle of it.
        sock.sendall(b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n"
                     b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 10
        status, headers, rest = read_head(sock, deadline)
        assert status == 200 and headers["content-length"] == str(len(data)), headers
        assert rest == b"" or rest.startswith(b"HTTP/1.1 200"), rest[:100]
        # Read on until the GET's content is in: the two answers after the first may have come
        # with it already, or may still be on their way.
        sock.settimeout(5)
        while not (rest.count(b"HTTP/1.1 200 OK\r\n") >= 2 and rest.endswith(b'{"status":"ok"}')):
            chunk = sock.recv(65536)
            assert chunk, f"closed early: {rest[:300]!r}"
            rest += chunk
        assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:200]
        second_head, _, after = rest.partition(b"\r\n\r\n")
        assert b"Content-Length: %d" % len(b'{"status":"ok"}') in second_head, second_head
        assert after.startswith(b"HTTP/1.1 200 OK\r\n") and after.endswith(b'{"status":"ok"}')
    # A 405 names HEAD beside GET.
    r = server.request("PATCH", "/healthz")
    assert r.status == 405 and "HEAD" in r.header("Allow").split(", ")


def test_204_carries_no_content_length(server, tenant):
    server.put_object(tenant["id"], "gone", b"x", tenant["admin_token"])
    r = server.delete(key_path(tenant["id"], "gone"), token=tenant["admin_token"])
    assert r.status == 204
    assert r.header("Content-Length") is None, r.headers  # RFC 9110 8.6


def test_100_continue_only_for_http11(server):
    body = b'{"name":"x"}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/tenants HTTP/1.0\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        time.sleep(0.3)
        sock.sendall(body)
        r = read_http_response(sock, time.monotonic() + 10)
    assert r.status == 401, r  # the answer itself, no 100 (Continue) before it


def test_empty_lines_before_a_request_and_absolute_targets_are_served(server):
    assert raw_request(server.port, b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    target = b"http://127.0.0.1:%d/healthz" % server.port
    assert raw_request(server.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n").status == 200


def test_idle_time_between_requests_does_not_count_against_the_next(server_factory):
    s = server_factory("--request-timeout-ms", "1000", "--idle-timeout-ms", "10000")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_http_response(sock, time.monotonic() + 5).status == 200
        time.sleep(1.5)  # idle longer than the request timeout
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.5)
        sock.sendall(b"Host: x\r\n\r\n")
        assert read_http_response(sock, time.monotonic() + 5).status == 200


def test_a_slow_reader_gets_the_whole_response(server_factory):
    """The request timeout bounds each piece of a response, not the whole: a client reading an
    8 MB object at ~2.5 MB/s for longer than the timeout gets all of it."""
    s = server_factory("--request-timeout-ms", "1000")
    t = s.create_tenant()
    data = os.urandom(8 << 20)
    s.put_object(t["id"], "big", data, t["admin_token"])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    sock.connect(("127.0.0.1", s.port))
    with sock:
        sock.sendall(b"GET " + key_path(t["id"], "big").encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + t["admin_token"].encode() + b"\r\n\r\n")
        status, headers, body = read_head(sock, time.monotonic() + 10)
        assert status == 200 and int(headers["content-length"]) == len(data)
        start = time.monotonic()
        sock.settimeout(10)
        while len(body) < len(data):
            chunk = sock.recv(128 << 10)
            assert chunk, f"cut off after {len(body)} of {len(data)} bytes"
            body += chunk
            time.sleep(0.05)
        assert time.monotonic() - start > 1.5, "the read was not slower than the timeout"
        assert body == data
    assert s.healthy()


def test_max_connections_closes_new_ones(server_factory):
    s = server_factory("--max-connections", "4", "--idle-timeout-ms", "30000")
    held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(4)]
    try:
        time.sleep(0.3)  # accepted and counted
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_http_response(extra, time.monotonic() + 5) is None
    finally:
        for h in held:
            h.close()
    deadline = time.monotonic() + 10
    while True:  # the held connections' sessions end once their close is seen
        r = raw_request(s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        if r is not None and r.status == 200:
            break
        assert time.monotonic() < deadline, "not serving again after connections closed"
        time.sleep(0.1)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_out_of_file_descriptors_pauses_accepts_instead_of_spinning(tmp_path: Path):
    s = Server(tmp_path / "data")
    s.start()
    try:
        assert s.healthy()
        baseline = open_fds(s.proc.pid)
    finally:
        assert s.stop() == 0
    limit = baseline + 24

    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    s.preexec = low_fd_limit
    s.log_lines.clear()
    s.start()
    try:
        assert s.healthy()
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(60)]
        time.sleep(1.5)
        failed = s.logs().count("accept failed")
        assert 1 <= failed <= 40, f"{failed} accept failures logged in 1.5 s"
        for h in held:
            h.close()
        deadline = time.monotonic() + 10
        while not s.healthy():
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        assert s.stop() == 0



def test_an_error_before_the_body_reaches_a_client_still_sending_it(server_factory):
    """A client that sends its whole request before reading (Python's http.client, most
    libraries) gets the 413 answered as soon as the head is read. Closing with its body unread
    would make the kernel reset the connection, destroying the answer before the client reads
    it; the server reads and discards the rest instead (a lingering close)."""
    s = server_factory("--max-object-bytes", "1024")
    t = s.create_tenant()
    body = b"x" * (32 << 20)  # far more than the socket buffers hold
    for attempt in range(3):
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(b"PUT " + key_path(t["id"], f"big{attempt}").encode() +
                         b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                         t["admin_token"].encode() +
                         b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            r = read_http_response(sock, time.monotonic() + 10)
            assert r is not None, "no answer"
            assert_error(r, 413, "too_large")
            assert wait_for_close(sock, time.monotonic() + 10) == b""
    assert s.list_all(t["id"], t["admin_token"]) == []


def test_every_answer_tells_browsers_not_to_guess_the_content_type(server, tenant):
    """Objects are served with the Content-Type their writer stored; a browser must not sniff
    another (stored text/plain run as HTML, say). Errors carry the header too."""
    tok = tenant["admin_token"]
    server.put_object(tenant["id"], "page", b"<script>alert(1)</script>", tok,
                      content_type="text/plain")
    for r in (server.get(key_path(tenant["id"], "page"), token=tok),
              server.get(key_path(tenant["id"], "missing"), token=tok),
              server.get("/healthz")):
        assert r.header("X-Content-Type-Options") == "nosniff", r
    assert server.get(key_path(tenant["id"], "page"), token=tok).header("Content-Type") == \
        "text/plain"
