"""Proves the local test server with plain sockets and http.client (no requests, no ripstream)."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass

import pytest

from .httpserver import (
    CHANGED_LAST_MODIFIED,
    FIXED_LAST_MODIFIED,
    Fault,
    Headers,
    TestServer,
    default_etag,
    http_date,
    make_body,
)

BODY = make_body(100_000, seed=1)
TIMEOUT = 5.0


@pytest.fixture
def srv() -> Iterator[TestServer]:
    with TestServer() as server:
        yield server
    assert server.errors == []


@dataclass
class RawResponse:
    version: str
    status: int
    headers: Headers
    body: bytes
    complete: bool
    """True when Content-Length bytes arrived (or, without it, EOF was reached)."""


class RawClient:
    """A keep-alive HTTP/1.1 client on a bare socket, for seeing exactly what arrives."""

    def __init__(self, server: TestServer) -> None:
        self.host = server.host
        self.sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        self.buf = bytearray()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(
        self,
        path: str,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        version: str = "HTTP/1.1",
    ) -> None:
        lines = [f"{method} {path} {version}", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def read_head(self) -> tuple[str, int, Headers]:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"EOF before end of head: {bytes(self.buf)!r}")
        end = self.buf.index(b"\r\n\r\n")
        lines = self.buf[:end].decode("utf-8").split("\r\n")
        del self.buf[: end + 4]
        version, code, _ = lines[0].split(" ", 2)
        items = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        return version, int(code), Headers((k, v) for k, v in items)

    def read_at_most(self, n: int) -> bytes:
        while len(self.buf) < n and self._fill():
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_response(self, *, head: bool = False) -> RawResponse:
        version, status, headers = self.read_head()
        if head or status in (204, 304):
            return RawResponse(version, status, headers, b"", True)
        if "Content-Length" in headers:
            want = int(headers["Content-Length"])
            body = self.read_at_most(want)
            return RawResponse(version, status, headers, body, len(body) == want)
        return RawResponse(version, status, headers, self.read_to_eof(), True)

    def request(
        self, path: str, *, method: str = "GET", headers: Mapping[str, str] | None = None
    ) -> RawResponse:
        self.send(path, method=method, headers=headers)
        return self.read_response(head=method == "HEAD")

    def at_eof(self) -> bool:
        """True if the server has closed (waits up to TIMEOUT for it)."""
        return not self.buf and not self._fill()


def get(server: TestServer, path: str, headers: Mapping[str, str] | None = None) -> RawResponse:
    with RawClient(server) as client:
        return client.request(path, headers=headers)


# --------------------------------------------------------------------- basics
def test_make_body_is_deterministic() -> None:
    big = make_body(32 * 1024 * 1024, seed=7)
    assert len(big) == 32 * 1024 * 1024
    assert make_body(1000, seed=7) == big[:1000]
    assert make_body(1000, seed=8) != big[:1000]
    assert make_body(0) == b""
    with pytest.raises(ValueError):
        make_body(-1)


def test_full_get_headers_and_body(srv: TestServer) -> None:
    srv.add("/a.bin", BODY, headers={"X-Extra": "yes"})
    resp = get(srv, "/a.bin")
    assert resp.status == 200
    assert resp.version == "HTTP/1.1"
    assert resp.body == BODY
    assert resp.headers["content-length"] == str(len(BODY))
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.headers["ETag"] == default_etag(BODY)
    assert resp.headers["ETag"].startswith('"')
    assert len(resp.headers["ETag"]) == 18
    assert resp.headers["Last-Modified"] == FIXED_LAST_MODIFIED
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["X-Extra"] == "yes"
    assert "Content-Range" not in resp.headers
    assert srv.bytes_sent("/a.bin") == len(BODY)
    [rec] = srv.requests_for("/a.bin")
    assert rec.method == "GET"
    assert rec.range_header is None
    assert rec.headers["host"] == srv.host


def test_validators_can_be_set_or_omitted(srv: TestServer) -> None:
    srv.add("/custom", b"x", etag='W/"weak"', last_modified=None, content_type="audio/flac")
    srv.add("/none", b"x", etag=None)
    custom = get(srv, "/custom")
    assert custom.headers["ETag"] == 'W/"weak"'
    assert "Last-Modified" not in custom.headers
    assert custom.headers["Content-Type"] == "audio/flac"
    assert "ETag" not in get(srv, "/none").headers


def test_head_and_404_and_other_methods(srv: TestServer) -> None:
    srv.add("/a", BODY)
    with RawClient(srv) as client:
        head = client.request("/a", method="HEAD")
        assert head.status == 200
        assert head.headers["Content-Length"] == str(len(BODY))
        missing = client.request("/nope")
        assert missing.status == 404
        assert client.request("/nope", method="HEAD").status == 404
    assert srv.bytes_sent("/a") == 0
    assert srv.connections_opened == 1


def test_post_gets_405_and_body_is_consumed(srv: TestServer) -> None:
    srv.add("/a", b"abc")
    with RawClient(srv) as client:
        client.sock.sendall(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        first = client.read_response()
        second = client.read_response()
    assert first.status == 405
    assert first.headers["Allow"] == "GET, HEAD"
    assert second.status == 200
    assert second.body == b"abc"
    assert srv.requests[0].body == b"xyz"
    assert [r.connection_id for r in srv.requests] == [1, 1]


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=99000-", 99000, 99999),
        ("bytes=-500", 99500, 99999),
        ("bytes=99990-200000", 99990, 99999),
        ("bytes=-200000", 0, 99999),
        ("bytes=99999-99999", 99999, 99999),
    ],
)
def test_single_ranges(srv: TestServer, header: str, first: int, last: int) -> None:
    srv.add("/a", BODY)
    resp = get(srv, "/a", {"Range": header})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{len(BODY)}"
    assert resp.headers["Content-Length"] == str(last - first + 1)
    assert resp.body == BODY[first : last + 1]
    assert srv.bytes_sent("/a") == last - first + 1
    assert srv.requests_for("/a")[0].range_header == header


@pytest.mark.parametrize("header", ["bytes=100000-", "bytes=200000-300000", "bytes=-0"])
def test_unsatisfiable_range(srv: TestServer, header: str) -> None:
    srv.add("/a", BODY)
    resp = get(srv, "/a", {"Range": header})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{len(BODY)}"
    assert srv.bytes_sent("/a") == 0


@pytest.mark.parametrize(
    "header", ["bytes=5-2", "items=0-1", "bytes=abc", "bytes=0-1,5-6", "bytes=-", "garbage"]
)
def test_invalid_or_multiple_ranges_are_ignored(srv: TestServer, header: str) -> None:
    srv.add("/a", BODY)
    resp = get(srv, "/a", {"Range": header})
    assert resp.status == 200
    assert resp.body == BODY


def test_empty_body_with_and_without_range(srv: TestServer) -> None:
    srv.add("/empty", b"")
    with RawClient(srv) as client:
        full = client.request("/empty")
        assert (full.status, full.body, full.headers["Content-Length"]) == (200, b"", "0")
        for header in ("bytes=0-", "bytes=0-0", "bytes=-1"):
            ranged = client.request("/empty", headers={"Range": header})
            assert ranged.status == 416
            assert ranged.headers["Content-Range"] == "bytes */0"
    assert srv.connections_opened == 1


def test_if_range(srv: TestServer) -> None:
    res = srv.add("/a", BODY)
    etag = res.etag
    assert etag is not None
    cases = [
        (etag, 206),
        ('"something-else"', 200),
        (f"W/{etag}", 200),  # weak tags never match If-Range
        (FIXED_LAST_MODIFIED, 206),
        ("Wed, 21 Oct 2015 07:28:01 GMT", 200),
        ("not a date", 200),
    ]
    with RawClient(srv) as client:
        for value, status in cases:
            resp = client.request("/a", headers={"Range": "bytes=10-", "If-Range": value})
            assert resp.status == status, value
            assert resp.body == (BODY[10:] if status == 206 else BODY)


def test_accept_ranges_false_ignores_ranges(srv: TestServer) -> None:
    srv.add("/a", BODY, accept_ranges=False)
    resp = get(srv, "/a", {"Range": "bytes=10-"})
    assert resp.status == 200
    assert "Accept-Ranges" not in resp.headers
    assert resp.body == BODY


def test_keep_alive_reuse_with_http_client(srv: TestServer) -> None:
    srv.add("/a", BODY)
    srv.add("/b", b"bee")
    with closing(http.client.HTTPConnection(srv.host, srv.port, timeout=TIMEOUT)) as conn:
        for path, expected in [("/a", BODY), ("/b", b"bee"), ("/a", BODY)]:
            conn.request("GET", path)
            assert conn.getresponse().read() == expected
        conn.request("GET", "/a", headers={"Range": "bytes=0-9"})
        resp = conn.getresponse()
        assert resp.status == 206
        assert resp.read() == BODY[:10]
    assert srv.connections_opened == 1
    assert {r.connection_id for r in srv.requests} == {1}
    assert srv.bytes_sent("/a") == 2 * len(BODY) + 10


def test_connection_close_is_honoured(srv: TestServer) -> None:
    srv.add("/a", b"abc")
    with RawClient(srv) as client:
        resp = client.request("/a", headers={"Connection": "close"})
        assert resp.headers["Connection"] == "close"
        assert client.at_eof()
    with RawClient(srv) as client:
        client.send("/a", version="HTTP/1.0")
        assert client.read_response().body == b"abc"
        assert client.at_eof()


def test_pipelined_requests(srv: TestServer) -> None:
    srv.add("/a", b"aaa")
    srv.add("/b", b"bbbb")
    with RawClient(srv) as client:
        client.sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.read_response().body == b"aaa"
        assert client.read_response().body == b"bbbb"


def test_stats_and_reset(srv: TestServer) -> None:
    srv.add("/a", BODY)
    get(srv, "/a", {"Range": "bytes=0-99"})
    srv.wait_until(lambda: srv.in_flight == 0, timeout=2)  # the server may still be finishing
    get(srv, "/a?x=1")
    assert srv.connections_opened == 2
    recs = srv.requests_for("/a")
    assert len(recs) == 2
    assert recs[1].query == "x=1"
    assert recs[1].target == "/a?x=1"
    assert recs[0].connection_id != recs[1].connection_id
    assert recs[0].time <= recs[1].time
    assert srv.bytes_sent("/a") == 100 + len(BODY)
    assert srv.max_concurrent_requests == 1
    srv.wait_until(lambda: srv.in_flight == 0, timeout=2)
    srv.reset_stats()
    assert (srv.requests, srv.bytes_sent("/a"), srv.connections_opened) == ([], 0, 0)
    assert srv.max_concurrent_requests == 0


def test_max_concurrent_requests(srv: TestServer) -> None:
    srv.add("/slow", b"x" * 10, faults=[Fault.delay_headers(0.3)])
    barrier = threading.Barrier(3)
    results: list[int] = []

    def fetch() -> None:
        barrier.wait()
        results.append(get(srv, "/slow").status)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert results == [200, 200, 200]
    assert srv.max_concurrent_requests == 3
    srv.wait_until(lambda: srv.in_flight == 0, timeout=2)
    assert srv.connections_opened == 3


def test_rate_limit_paces_body(srv: TestServer) -> None:
    srv.add("/a", BODY[:20_000], rate_limit_bps=100_000)
    start = time.monotonic()
    resp = get(srv, "/a")
    elapsed = time.monotonic() - start
    assert resp.body == BODY[:20_000]
    assert 0.17 <= elapsed < 2.0


def test_wait_for_requests(srv: TestServer) -> None:
    srv.add("/a", b"x")
    get(srv, "/a")
    assert len(srv.wait_for_requests(1, "/a", timeout=1)) == 1
    with pytest.raises(TimeoutError):
        srv.wait_for_requests(2, "/a", timeout=0.05)


# ------------------------------------------------------------- fault basics
def test_times_and_on_semantics(srv: TestServer) -> None:
    res = srv.add("/a", BODY, faults=[Fault.ignore_range(times=1, on="range")])
    assert get(srv, "/a").status == 200  # no Range: does not match, not consumed
    assert res.fault_uses() == [0]
    assert get(srv, "/a", {"Range": "bytes=1-"}).status == 200  # consumed here
    assert get(srv, "/a", {"Range": "bytes=1-"}).status == 206
    assert res.fault_uses() == [1]
    res.set_faults([Fault.permanent_status(410, on="full")])
    assert get(srv, "/a").status == 410
    assert get(srv, "/a", {"Range": "bytes=1-"}).status == 206


def test_head_does_not_consume_body_faults(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.drop_after(10, times=1)])
    with RawClient(srv) as client:
        head = client.request("/a", method="HEAD")
        assert head.status == 200
        resp = client.request("/a")
        assert resp.body == BODY[:10]
        assert not resp.complete
    assert get(srv, "/a").body == BODY


# ------------------------------------------------------------ fault kinds
def test_drop_after(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.drop_after(1234, times=1)])
    with RawClient(srv) as client:
        resp = client.request("/a")
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(BODY))
        assert "Connection" not in resp.headers
        assert resp.body == BODY[:1234]
        assert not resp.complete
    assert srv.bytes_sent("/a") == 1234
    second = get(srv, "/a", {"Range": "bytes=1234-"})
    assert second.status == 206
    assert second.body == BODY[1234:]


def test_drop_after_on_range_request(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.drop_after(100, on="range")])
    assert get(srv, "/a").body == BODY
    resp = get(srv, "/a", {"Range": "bytes=500-"})
    assert resp.status == 206
    assert resp.body == BODY[500:600]


def test_drop_with_reset(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.drop_after(100, reset=True)])
    with RawClient(srv) as client:
        client.send("/a")
        with pytest.raises(ConnectionResetError):
            client.read_to_eof()
        assert b"HTTP/1.1 200 OK" in client.buf or not client.buf
        assert len(client.buf) <= 100 + 400  # head + at most the 100 body bytes


def test_stall_then_continue(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.stall_after(500, 0.3, times=1)])
    with RawClient(srv) as client:
        client.send("/a")
        client.read_head()
        assert client.read_at_most(500) == BODY[:500]
        start = time.monotonic()
        rest = client.read_at_most(len(BODY) - 500)
        assert time.monotonic() - start >= 0.25
        assert rest == BODY[500:]
        assert client.request("/a").status == 200  # connection still usable


def test_stall_then_close(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.stall_after(500, 0.2, then="close")])
    start = time.monotonic()
    resp = get(srv, "/a")
    assert time.monotonic() - start >= 0.15
    assert resp.body == BODY[:500]
    assert not resp.complete


def test_stall_is_interrupted_by_stop() -> None:
    server = TestServer().start()
    try:
        server.add("/a", BODY, faults=[Fault.stall_after(100, 60)])
        with RawClient(server) as client:
            client.send("/a")
            client.read_head()
            assert client.read_at_most(100) == BODY[:100]
            start = time.monotonic()
            server.stop()
            assert time.monotonic() - start < 2
            assert client.at_eof()
    finally:
        server.stop()
    assert server.open_connections == 0
    assert server.errors == []


def test_stop_closes_idle_keep_alive_connections() -> None:
    with TestServer() as server:
        server.add("/a", b"abc")
        client = RawClient(server)
        with client:
            assert client.request("/a").body == b"abc"
            assert server.open_connections == 1
            server.stop()
            assert client.at_eof()
        assert server.open_connections == 0


def test_delay_headers(srv: TestServer) -> None:
    srv.add("/a", b"abc", faults=[Fault.delay_headers(0.2, times=1)])
    start = time.monotonic()
    assert get(srv, "/a").body == b"abc"
    assert time.monotonic() - start >= 0.18
    start = time.monotonic()
    get(srv, "/a")
    assert time.monotonic() - start < 0.18


def test_content_length_too_large(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.content_length_too_large(500)])
    with RawClient(srv) as client:
        resp = client.request("/a")
        assert resp.headers["Content-Length"] == str(len(BODY) + 500)
        assert resp.body == BODY
        assert not resp.complete


def test_content_length_too_small(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.content_length_too_small(30)])
    with RawClient(srv) as client:
        resp = client.request("/a")
        assert resp.headers["Content-Length"] == str(len(BODY) - 30)
        assert resp.body == BODY[:-30]
        assert resp.complete
        assert client.read_to_eof() == BODY[-30:]
    assert srv.bytes_sent("/a") == len(BODY)


def test_content_length_too_small_keep_alive_poisons_next_response(srv: TestServer) -> None:
    srv.add("/a", b"0123456789", faults=[Fault.content_length_too_small(4, close=False, times=1)])
    with RawClient(srv) as client:
        assert client.request("/a").body == b"012345"
        client.send("/a")
        assert client.read_at_most(4) == b"6789"
        assert client.read_response().body == b"0123456789"


def test_no_content_length(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.no_content_length()])
    with RawClient(srv) as client:
        resp = client.request("/a")
        assert "Content-Length" not in resp.headers
        assert "Transfer-Encoding" not in resp.headers
        assert resp.headers["Connection"] == "close"
        assert resp.body == BODY


def test_ignore_range(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.ignore_range(times=1)])
    first = get(srv, "/a", {"Range": "bytes=100-"})
    assert first.status == 200
    assert first.body == BODY
    assert "Content-Range" not in first.headers
    assert get(srv, "/a", {"Range": "bytes=100-"}).status == 206


@pytest.mark.parametrize("status", [403, 416])
def test_reject_range(srv: TestServer, status: int) -> None:
    srv.add("/a", BODY, faults=[Fault.reject_range(status)])
    rejected = get(srv, "/a", {"Range": "bytes=100-"})
    assert rejected.status == status
    if status == 416:
        assert rejected.headers["Content-Range"] == f"bytes */{len(BODY)}"
    assert get(srv, "/a").status == 200
    assert srv.bytes_sent("/a") == len(BODY)


def test_short_range(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.short_range(40)])
    srv.add("/b", BODY, faults=[Fault.short_range()])
    with RawClient(srv) as client:
        resp = client.request("/a", headers={"Range": "bytes=100-199"})
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 100-199/{len(BODY)}"
        assert resp.headers["Content-Length"] == "60"
        assert resp.body == BODY[100:160]
        assert resp.complete
        default = client.request("/b", headers={"Range": "bytes=0-99"})
        assert default.headers["Content-Range"] == f"bytes 0-99/{len(BODY)}"
        assert default.body == BODY[:50]


def test_wrong_range_start(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.wrong_range_start(-10, times=1)])
    srv.add("/b", BODY, faults=[Fault.wrong_range_start(5, honest=False)])
    honest = get(srv, "/a", {"Range": "bytes=100-199"})
    assert honest.headers["Content-Range"] == f"bytes 90-189/{len(BODY)}"
    assert honest.body == BODY[90:190]
    lying = get(srv, "/b", {"Range": "bytes=100-199"})
    assert lying.headers["Content-Range"] == f"bytes 100-199/{len(BODY)}"
    assert lying.body == BODY[105:205]


def test_wrong_range_start_keeping_the_end(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.wrong_range_start(-7, keep_end=True)])
    early = get(srv, "/a", {"Range": "bytes=100-199"})
    assert early.status == 206
    assert early.headers["Content-Range"] == f"bytes 93-199/{len(BODY)}"
    assert early.headers["Content-Length"] == "107"
    assert early.body == BODY[93:200]
    open_ended = get(srv, "/a", {"Range": "bytes=1000-"})
    assert open_ended.headers["Content-Range"] == f"bytes 993-{len(BODY) - 1}/{len(BODY)}"
    assert open_ended.body == BODY[993:]


def test_ignore_if_range_answers_the_range_of_the_current_body(srv: TestServer) -> None:
    res = srv.add("/a", BODY, faults=[Fault.ignore_if_range()])
    old_etag = res.etag
    assert old_etag is not None
    new = make_body(len(BODY) + 50, seed=99)
    res.set_body(new)
    stale = get(srv, "/a", {"Range": "bytes=100-199", "If-Range": old_etag})
    assert stale.status == 206
    assert stale.headers["Content-Range"] == f"bytes 100-199/{len(new)}"
    assert stale.body == new[100:200]
    full = get(srv, "/a", {"If-Range": old_etag})  # no Range: the fault does not apply
    assert full.status == 200
    assert full.body == new


def test_pause_after_holds_the_body_until_released(srv: TestServer) -> None:
    release = threading.Event()
    srv.add("/a", BODY, faults=[Fault.pause_after(1000, release, timeout=TIMEOUT, times=1)])
    with RawClient(srv) as client:
        client.send("/a")
        srv.wait_until(lambda: srv.bytes_sent("/a") >= 1000)
        assert srv.bytes_sent("/a") == 1000
        release.set()
        response = client.read_response()
    assert response.body == BODY
    assert get(srv, "/a").body == BODY  # times=1: the next request is not held


def test_pause_ends_when_the_server_stops() -> None:
    release = threading.Event()
    with TestServer() as server, RawClient(server) as client:
        server.add("/a", BODY, faults=[Fault.pause_after(1000, release, timeout=60.0)])
        client.send("/a")
        server.wait_until(lambda: server.bytes_sent("/a") >= 1000)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < TIMEOUT
        assert server.bytes_sent("/a") == 1000
        assert not release.is_set()


def test_wrong_range_total(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.wrong_range_total(7)])
    srv.add("/b", BODY, faults=[Fault.wrong_range_total(total="*")])
    assert get(srv, "/a", {"Range": "bytes=0-9"}).headers["Content-Range"] == (
        f"bytes 0-9/{len(BODY) + 7}"
    )
    assert get(srv, "/b", {"Range": "bytes=0-9"}).headers["Content-Range"] == "bytes 0-9/*"


def test_multipart_byteranges(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.multipart_byteranges()])
    resp = get(srv, "/a", {"Range": "bytes=10-19"})
    assert resp.status == 206
    assert resp.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert "Content-Range" not in resp.headers
    assert f"Content-Range: bytes 10-19/{len(BODY)}".encode() in resp.body
    assert BODY[10:20] in resp.body


@pytest.mark.parametrize("code", [500, 502, 503, 408, 429])
def test_transient_status_then_normal(srv: TestServer, code: int) -> None:
    srv.add("/a", BODY, faults=[Fault.status(code, times=2, retry_after=3)])
    with RawClient(srv) as client:
        for _ in range(2):
            resp = client.request("/a")
            assert resp.status == code
            assert resp.headers["Retry-After"] == "3"
        assert client.request("/a").status == 200
    assert srv.bytes_sent("/a") == len(BODY)


def test_retry_after_http_date(srv: TestServer) -> None:
    when = http_date(time.time() + 30)
    srv.add("/a", b"x", faults=[Fault.status(503, retry_after=when)])
    assert get(srv, "/a").headers["Retry-After"] == when
    assert get(srv, "/a").status == 200


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410])
def test_permanent_status(srv: TestServer, code: int) -> None:
    srv.add("/a", BODY, faults=[Fault.permanent_status(code)])
    with RawClient(srv) as client:
        for _ in range(3):
            resp = client.request("/a")
            assert resp.status == code
            assert resp.body.startswith(str(code).encode())
        head = client.request("/a", method="HEAD")
        assert head.status == code
    if code == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_status_200_error_page(srv: TestServer) -> None:
    page = b"<html>please log in</html>"
    srv.add("/a", BODY, faults=[Fault.status(200, body=page, content_type="text/html")])
    resp = get(srv, "/a", {"Range": "bytes=10-"})
    assert (resp.status, resp.body, resp.headers["Content-Type"]) == (200, page, "text/html")


def test_head_not_allowed(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.head_not_allowed()])
    with RawClient(srv) as client:
        head = client.request("/a", method="HEAD")
        assert head.status == 405
        assert head.headers["Allow"] == "GET"
        assert client.request("/a").body == BODY
        assert client.request("/a", method="HEAD").status == 405


def test_body_changes(srv: TestServer) -> None:
    res = srv.add("/a", BODY, faults=[Fault.body_changes()])
    old_etag = res.etag
    with RawClient(srv) as client:
        first = client.request("/a")
        assert first.body == BODY
        assert first.headers["ETag"] == old_etag
        head = client.request("/a", method="HEAD")  # HEAD sees the current version
        assert head.headers["ETag"] != old_etag
        second = client.request("/a", headers={"Range": "bytes=1000-", "If-Range": str(old_etag)})
        assert second.status == 200
        assert second.headers["ETag"] != old_etag
        assert second.headers["Last-Modified"] == CHANGED_LAST_MODIFIED
        assert len(second.body) == len(BODY) + 1000
        assert second.body != BODY
        assert second.headers["ETag"] == default_etag(second.body)
        plain = client.request("/a", headers={"Range": "bytes=1000-"})
        assert plain.status == 206
        assert plain.body == second.body[1000:]


def test_body_changes_explicit(srv: TestServer) -> None:
    srv.add("/a", b"old", faults=[Fault.body_changes(b"brand new", after=2, new_etag='"v2"')])
    bodies = [get(srv, "/a") for _ in range(3)]
    assert [b.body for b in bodies] == [b"old", b"old", b"brand new"]
    assert bodies[2].headers["ETag"] == '"v2"'


def test_resource_set_body(srv: TestServer) -> None:
    res = srv.add("/a", b"one")
    res.set_body(b"two", etag='"2"')
    resp = get(srv, "/a")
    assert (resp.body, resp.headers["ETag"]) == (b"two", '"2"')


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect(srv: TestServer, code: int) -> None:
    srv.add("/final", b"done")
    srv.add("/start", b"", faults=[Fault.redirect("/final", code)])
    resp = get(srv, "/start")
    assert resp.status == code
    assert resp.headers["Location"] == "/final"
    assert get(srv, "/final").body == b"done"


def test_redirect_chain_loop_and_schemes(srv: TestServer) -> None:
    srv.add("/final", b"done")
    chain = srv.add_redirect_chain("/c", "/final", 3)
    assert len(chain) == 3
    url, hops = srv.url("/c"), 0
    with RawClient(srv) as client:
        while True:
            resp = client.request(url.removeprefix(srv.base_url))
            if resp.status != 302:
                break
            url, hops = resp.headers["Location"], hops + 1
        assert (hops, resp.body) == (3, b"done")
        loop = srv.add_redirect_loop("/loop")
        first = client.request("/loop")
        assert first.headers["Location"] == srv.url(loop[1])
        assert client.request(loop[1]).headers["Location"] == srv.url("/loop")
        srv.add_redirect_loop("/self", 1, status=301)
        assert client.request("/self").headers["Location"] == srv.url("/self")
        srv.add_redirect("/ftp", "ftp://127.0.0.1/file.flac", 301)
        assert client.request("/ftp").headers["Location"] == "ftp://127.0.0.1/file.flac"


def test_redirect_to_other_host_records_headers(srv: TestServer) -> None:
    with TestServer(host="127.0.0.2") as other:
        assert other.base_url.startswith("http://127.0.0.2:")
        other.add("/file", b"elsewhere")
        srv.add_redirect("/go", other.url("/file"), 307)
        resp = get(srv, "/go")
        assert resp.headers["Location"] == other.url("/file")
        with RawClient(other) as client:
            assert client.request("/file", headers={"Authorization": "Bearer x"}).body == (
                b"elsewhere"
            )
        [rec] = other.requests_for("/file")
        assert rec.headers["authorization"] == "Bearer x"
        assert rec.client_address[0] == "127.0.0.1"
    assert other.errors == []


def test_chunked(srv: TestServer) -> None:
    srv.add("/a", BODY, faults=[Fault.chunked(chunk_size=7000)])
    with closing(http.client.HTTPConnection(srv.host, srv.port, timeout=TIMEOUT)) as conn:
        conn.request("GET", "/a")
        resp = conn.getresponse()
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert resp.getheader("Content-Length") is None
        assert resp.read() == BODY
        conn.request("GET", "/a", headers={"Range": "bytes=10-"})
        resp = conn.getresponse()
        assert resp.status == 206
        assert resp.read() == BODY[10:]
    assert srv.connections_opened == 1
    with RawClient(srv) as client:
        client.send("/a")
        client.read_head()
        assert client.read_at_most(6) == b"1b58\r\n"  # 7000 in hex


@pytest.mark.parametrize("mode", ["truncated", "bad_size", "no_terminator"])
def test_broken_chunked(srv: TestServer, mode: str) -> None:
    assert mode in ("truncated", "bad_size", "no_terminator")
    srv.add("/a", BODY, faults=[Fault.broken_chunked(mode)])  # type: ignore[arg-type]
    with closing(http.client.HTTPConnection(srv.host, srv.port, timeout=TIMEOUT)) as conn:
        conn.request("GET", "/a")
        resp = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            resp.read()
        resp.close()
    with RawClient(srv) as client:
        client.send("/a")
        client.read_head()
        wire = client.read_to_eof()
    half = len(BODY) // 2
    assert wire.startswith(f"{half:x}\r\n".encode() + BODY[:half] + b"\r\n")
    tail = wire[len(f"{half:x}\r\n") + half + 2 :]
    if mode == "bad_size":
        assert tail.startswith(b"zz\r\n")
    elif mode == "truncated":
        assert tail.startswith(f"{len(BODY) - half:x}\r\n".encode())
        assert len(tail) < len(BODY) - half
    else:
        assert tail == f"{len(BODY) - half:x}\r\n".encode() + BODY[half:] + b"\r\n"


def test_gzip_forced_even_for_identity(srv: TestServer) -> None:
    srv.add("/a", BODY[:5000] * 4, faults=[Fault.gzip_encoding()])
    resp = get(srv, "/a", {"Accept-Encoding": "identity"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Content-Length"] == str(len(resp.body))
    assert len(resp.body) < 20000
    assert gzip.decompress(resp.body) == BODY[:5000] * 4


def test_gzip_negotiated(srv: TestServer) -> None:
    srv.add("/a", b"hello " * 1000, faults=[Fault.gzip_encoding(force=False)])
    identity = get(srv, "/a")
    assert "Content-Encoding" not in identity.headers
    assert identity.body == b"hello " * 1000
    refused = get(srv, "/a", {"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers
    compressed = get(srv, "/a", {"Accept-Encoding": "gzip, deflate"})
    assert compressed.headers["Content-Encoding"] == "gzip"
    assert compressed.headers["Vary"] == "Accept-Encoding"
    assert compressed.headers["ETag"] != identity.headers["ETag"]
    assert gzip.decompress(compressed.body) == b"hello " * 1000


@pytest.mark.parametrize(
    "value",
    [
        'attachment; filename="../../etc/passwd"',
        "attachment; filename*=UTF-8''%E2%82%AC%20rates.flac",
        'attachment; filename="CON.mp3"',
        "attachment; filename=\"NUL\"; filename*=UTF-8''..%2F..%2Fx",
    ],
)
def test_content_disposition(srv: TestServer, value: str) -> None:
    srv.add("/a", b"x", faults=[Fault.content_disposition(value)])
    assert get(srv, "/a").headers["Content-Disposition"] == value


def test_header_and_omit_header(srv: TestServer) -> None:
    srv.add(
        "/a",
        b"abc",
        faults=[
            Fault.header("Content-Type", "text/html"),
            Fault.header("Content-Length", "99", replace=False),
            Fault.omit_header("ETag"),
            Fault.omit_header("Accept-Ranges"),
        ],
    )
    with RawClient(srv) as client:
        client.send("/a")
        _, _, headers = client.read_head()
    assert headers["Content-Type"] == "text/html"
    assert headers.get_all("Content-Length") == ["3", "99"]
    assert "ETag" not in headers
    assert "Accept-Ranges" not in headers


def test_trickle(srv: TestServer) -> None:
    srv.add("/a", BODY[:3000], faults=[Fault.trickle(10_000, after_bytes=1000, times=1)])
    start = time.monotonic()
    assert get(srv, "/a").body == BODY[:3000]
    assert 0.15 <= time.monotonic() - start < 2
    start = time.monotonic()
    get(srv, "/a")
    assert time.monotonic() - start < 0.15


def test_close_before_response(srv: TestServer) -> None:
    srv.add("/a", b"abc", faults=[Fault.close_before_response(times=1)])
    with RawClient(srv) as client:
        client.send("/a")
        assert client.at_eof()
    assert get(srv, "/a").body == b"abc"
    assert len(srv.requests_for("/a")) == 2


def test_close_after_response(srv: TestServer) -> None:
    srv.add("/a", b"abc", faults=[Fault.close_after_response()])
    with RawClient(srv) as client:
        resp = client.request("/a")
        assert resp.body == b"abc"
        assert "Connection" not in resp.headers
        assert client.at_eof()


def test_garbage_response(srv: TestServer) -> None:
    srv.add("/a", b"abc", faults=[Fault.garbage_response(b"\x00\x01garbage")])
    with RawClient(srv) as client:
        client.send("/a")
        assert client.read_to_eof() == b"\x00\x01garbage"


def test_http10_response(srv: TestServer) -> None:
    srv.add("/a", b"abc", faults=[Fault.http10()])
    with RawClient(srv) as client:
        resp = client.request("/a")
        assert resp.version == "HTTP/1.0"
        assert resp.body == b"abc"
        assert client.at_eof()


def test_malformed_request_gets_400(srv: TestServer) -> None:
    with RawClient(srv) as client:
        client.sock.sendall(b"NONSENSE\r\n\r\n")
        resp = client.read_response()
        assert resp.status == 400
        assert client.at_eof()


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault.trickle(0)
    with pytest.raises(ValueError):
        Fault.chunked(0)
    with pytest.raises(ValueError):
        Fault.ignore_range(on="sometimes")  # type: ignore[arg-type]
    assert Fault.status(503).times == 1
    assert Fault.permanent_status(404).times is None
    assert hash(Fault.drop_after(3)) == hash(Fault.drop_after(3))


def test_large_body_throughput(srv: TestServer) -> None:
    big = make_body(16 * 1024 * 1024, seed=3)
    srv.add("/big", big)
    start = time.monotonic()
    with closing(http.client.HTTPConnection(srv.host, srv.port, timeout=TIMEOUT)) as conn:
        conn.request("GET", "/big")
        assert conn.getresponse().read() == big
        conn.request("GET", "/big", headers={"Range": "bytes=1000000-"})
        assert conn.getresponse().read() == big[1_000_000:]
    assert time.monotonic() - start < 3
    assert srv.bytes_sent("/big") == 2 * len(big) - 1_000_000


def test_client_hanging_up_mid_body_is_not_a_server_error(srv: TestServer) -> None:
    srv.add("/big", make_body(8 * 1024 * 1024))
    with RawClient(srv) as client:
        client.send("/big")
        client.read_head()
    srv.wait_until(lambda: srv.open_connections == 0 and srv.in_flight == 0)
    assert srv.bytes_sent("/big") < 8 * 1024 * 1024
    # the fixture asserts srv.errors == []


def test_server_without_start_stops_cleanly() -> None:
    server = TestServer()
    assert server.url("/x") == f"http://127.0.0.1:{server.port}/x"
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        server.start()
