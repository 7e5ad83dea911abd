"""A real, deliberately misbehaving HTTP/1.1 server on the loopback interface.

Every test about bytes on the wire (ranges, resume, truncation, stalls,
redirects, retries) talks to this server through a real TCP socket.  It is
built on :class:`socketserver.ThreadingTCPServer` for the accept loop only;
request parsing and response writing are done by hand on the raw socket so
that it can tell lies in headers, cut connections mid-body, stall, send broken
chunked framing and so on.

Quick tour::

    from tests.support.httpserver import Fault, TestServer, make_body

    body = make_body(1_000_000)
    with TestServer() as server:
        server.add("/song.flac", body, faults=[Fault.drop_after(1000, times=1)])
        url = server.url("/song.flac")
        ...                                   # first GET is cut after 1000 bytes
        assert server.requests_for("/song.flac")[1].range_header == "bytes=1000-"

Normal behaviour
----------------
* ``GET`` and ``HEAD``; any other method gets ``405`` (``Allow: GET, HEAD``).
* Unknown path -> ``404``.
* ``Range: bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` (one range) -> ``206`` with
  ``Content-Range`` and ``Content-Length``.  Unsatisfiable -> ``416`` with
  ``Content-Range: bytes */total`` (a Range on an empty body is always 416).
  Syntactically invalid Range headers and multi-range requests are ignored
  (full ``200``), as RFC 9110 allows.
* ``If-Range`` (entity tag, strong comparison, or HTTP date equal to
  Last-Modified) is honoured: a mismatch answers ``200`` with the full body.
* ``ETag`` (default: quoted sha1 prefix of the body), ``Last-Modified``
  (default: a fixed date) and ``Accept-Ranges: bytes`` are sent.  With
  ``accept_ranges=False`` the server neither advertises nor honours ranges.
* ``Content-Length`` is always sent unless a fault says otherwise.
* Keep-alive: HTTP/1.1 connections serve any number of requests until the client
  sends ``Connection: close`` (HTTP/1.0 requests are answered and closed).
* ``rate_limit_bps`` on :meth:`TestServer.add` paces every response body of that
  resource (per connection, like nginx ``limit_rate``).

Faults
------
A :class:`Fault` is a frozen description of one misbehaviour.  Build them with
the classmethod constructors (``Fault.drop_after(...)``, ``Fault.status(...)``,
...).  Common keyword parameters of every constructor:

* ``times``: apply to the first *N* matching requests only (``None`` = always).
* ``on``: ``"any"``, ``"range"`` (only requests carrying a ``Range`` header) or
  ``"full"`` (only requests without one).
* ``method``: ``None`` means the kind's default: faults that only make sense for
  a body (drops, stalls, lying lengths, range lies, chunking, trickling, ...)
  apply to ``GET`` only and are *not consumed* by ``HEAD`` requests; status,
  redirect, header, delay and connection faults apply to every method.  Pass
  ``"GET"``, ``"HEAD"`` or ``"*"`` to override.

A request that does not match a fault does not use up one of its ``times``.
Several faults may be active on one request (for example a header fault and a
drop).  Byte counts such as ``n_bytes`` are offsets into the *body of that
response*, not into the file.

Statistics (:attr:`TestServer.requests`, :meth:`TestServer.bytes_sent`,
:attr:`TestServer.connections_opened`, :attr:`TestServer.max_concurrent_requests`)
are thread-safe.  :meth:`TestServer.bytes_sent` counts payload bytes of the
resource's own 200/206 responses actually handed to the kernel; error pages,
redirect bodies and chunk framing are not counted.  The count is taken just
before each write and corrected after it, so it is never behind what a client
has received; note that the server may still be finishing a response (and
:attr:`TestServer.in_flight` still be 1) just after the client has read it:
use :meth:`TestServer.wait_until` rather than sleeping when that matters.
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import hashlib
import http
import random
import socket
import socketserver
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from typing import Final, Literal
from urllib.parse import urlsplit

__all__ = [
    "AUTO",
    "CHANGED_LAST_MODIFIED",
    "FIXED_LAST_MODIFIED",
    "Fault",
    "FaultKind",
    "Headers",
    "RecordedRequest",
    "Resource",
    "TestServer",
    "default_etag",
    "http_date",
    "make_body",
]

On = Literal["any", "range", "full"]
ChunkBreak = Literal["truncated", "bad_size", "no_terminator"]

FIXED_LAST_MODIFIED: Final = "Wed, 21 Oct 2015 07:28:00 GMT"
"""Default ``Last-Modified`` of every resource."""

CHANGED_LAST_MODIFIED: Final = "Thu, 22 Oct 2015 07:28:00 GMT"
"""Default ``Last-Modified`` of the new body served by :meth:`Fault.body_changes`."""

_MAX_HEAD: Final = 64 * 1024
_PIECE: Final = 256 * 1024
_BOUNDARY: Final = "RIPSTREAM-TEST-BOUNDARY"
_JOIN_TIMEOUT: Final = 5.0


class _Auto(enum.Enum):
    AUTO = "auto"


AUTO: Final = _Auto.AUTO
"""Sentinel: compute the value (for ``etag``: :func:`default_etag` of the body)."""


def make_body(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes; fast even for tens of megabytes."""
    if size < 0:
        raise ValueError("size must be >= 0")
    return random.Random(seed).randbytes(size)


def http_date(timestamp: float | None = None) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``); now if no timestamp."""
    return formatdate(timestamp, usegmt=True)


def default_etag(body: bytes) -> str:
    """The ETag the server gives a body by default: a quoted sha1 prefix."""
    return '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest()[:16] + '"'


def _reason(code: int) -> str:
    try:
        return http.HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive header mapping preserving the raw list.

    Repeated headers are joined with ``", "`` for item access; :meth:`get_all`
    and :attr:`raw` give each occurrence.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.raw: tuple[tuple[str, str], ...] = tuple(items)
        self._values: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in self.raw:
            key = name.lower()
            if key in self._values:
                self._values[key] = f"{self._values[key]}, {value}"
            else:
                self._values[key] = value
                self._names[key] = name

    def __getitem__(self, key: str) -> str:
        return self._values[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self.raw if n.lower() == key]

    def __repr__(self) -> str:
        return f"Headers({list(self.raw)!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server parsed it."""

    method: str
    path: str
    """Path part of the request target, without the query string."""
    headers: Headers
    range_header: str | None
    time: float
    """``time.monotonic()`` when the request head had been read."""
    connection_id: int
    """1, 2, ... in accept order; equal ids mean the same TCP connection."""
    query: str = ""
    target: str = ""
    version: str = "HTTP/1.1"
    body: bytes = b""
    client_address: tuple[str, int] = ("", 0)


class FaultKind(enum.StrEnum):
    DROP = "drop"
    STALL = "stall"
    CONTENT_LENGTH_TOO_LARGE = "content_length_too_large"
    CONTENT_LENGTH_TOO_SMALL = "content_length_too_small"
    IGNORE_RANGE = "ignore_range"
    STATUS = "status"
    SHORT_RANGE = "short_range"
    WRONG_RANGE_START = "wrong_range_start"
    WRONG_RANGE_TOTAL = "wrong_range_total"
    BODY_CHANGES = "body_changes"
    REDIRECT = "redirect"
    CHUNKED = "chunked"
    BROKEN_CHUNKED = "broken_chunked"
    GZIP = "gzip"
    HEADER = "header"
    OMIT_HEADER = "omit_header"
    TRICKLE = "trickle"
    NO_CONTENT_LENGTH = "no_content_length"
    CLOSE_BEFORE_RESPONSE = "close_before_response"
    CLOSE_AFTER_RESPONSE = "close_after_response"
    DELAY_HEADERS = "delay_headers"
    GARBAGE_RESPONSE = "garbage_response"
    HTTP10 = "http10"
    MULTIPART_BYTERANGES = "multipart_byteranges"


_ANY_METHOD_KINDS: Final = frozenset(
    {
        FaultKind.STATUS,
        FaultKind.REDIRECT,
        FaultKind.HEADER,
        FaultKind.OMIT_HEADER,
        FaultKind.DELAY_HEADERS,
        FaultKind.CLOSE_BEFORE_RESPONSE,
        FaultKind.CLOSE_AFTER_RESPONSE,
        FaultKind.GARBAGE_RESPONSE,
        FaultKind.HTTP10,
        FaultKind.GZIP,
    }
)


@dataclass(frozen=True)
class Fault:
    """One misbehaviour.  Build with the classmethods; fields are their parameters."""

    kind: FaultKind
    times: int | None = None
    on: On = "any"
    method: str | None = None
    n_bytes: int | None = None
    seconds: float = 0.0
    close: bool = False
    reset: bool = False
    code: int = 0
    location: str = ""
    retry_after: str | None = None
    amount: int | None = None
    total: str | None = None
    honest: bool = True
    bps: float = 0.0
    chunk_size: int = 0
    mode: str = ""
    force: bool = False
    body: bytes | None = None
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()
    name: str = ""
    value: str = ""
    replace: bool = True
    after: int = 1
    new_etag: str | _Auto | None = AUTO
    new_last_modified: str | None = CHANGED_LAST_MODIFIED

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 0:
            raise ValueError("times must be None or >= 0")
        if self.on not in ("any", "range", "full"):
            raise ValueError(f"on must be 'any', 'range' or 'full', not {self.on!r}")

    def applies_to(self, method: str, has_range: bool) -> bool:
        """Whether a request with this method / Range presence matches (ignores ``times``)."""
        if self.on == "range" and not has_range:
            return False
        if self.on == "full" and has_range:
            return False
        wanted = self.method
        if wanted is None:
            wanted = "*" if self.kind in _ANY_METHOD_KINDS else "GET"
        return wanted == "*" or wanted.upper() == method

    # ----------------------------------------------------------- body faults
    @classmethod
    def drop_after(
        cls,
        n_bytes: int,
        *,
        reset: bool = False,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Send normal headers, then ``n_bytes`` of body, then close the socket.

        ``reset=True`` closes with SO_LINGER 0 (TCP RST) instead of a FIN.
        """
        return cls(FaultKind.DROP, times, on, method, n_bytes=n_bytes, reset=reset)

    @classmethod
    def stall_after(
        cls,
        n_bytes: int,
        seconds: float,
        *,
        then: Literal["continue", "close"] = "continue",
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """After ``n_bytes`` of body, send nothing for ``seconds``; then go on or close.

        The stall ends early (and the connection closes) when the server stops.
        """
        return cls(
            FaultKind.STALL,
            times,
            on,
            method,
            n_bytes=n_bytes,
            seconds=seconds,
            close=then == "close",
        )

    @classmethod
    def trickle(
        cls,
        bps: float,
        *,
        after_bytes: int = 0,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Send the body at ``bps`` bytes/second (after ``after_bytes`` sent at full speed)."""
        if bps <= 0:
            raise ValueError("bps must be > 0")
        return cls(FaultKind.TRICKLE, times, on, method, bps=bps, n_bytes=after_bytes)

    @classmethod
    def content_length_too_large(
        cls,
        extra: int = 1000,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Content-Length = real length + ``extra``; send the real body, then close."""
        return cls(FaultKind.CONTENT_LENGTH_TOO_LARGE, times, on, method, amount=extra)

    @classmethod
    def content_length_too_small(
        cls,
        missing: int = 10,
        *,
        close: bool = True,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Content-Length = real length - ``missing``, but the whole body is written.

        With ``close=False`` the connection stays open, so the extra bytes sit in
        front of the next response on that connection.
        """
        return cls(
            FaultKind.CONTENT_LENGTH_TOO_SMALL, times, on, method, amount=missing, close=close
        )

    @classmethod
    def no_content_length(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """No Content-Length; ``Connection: close``; body delimited by closing."""
        return cls(FaultKind.NO_CONTENT_LENGTH, times, on, method)

    @classmethod
    def chunked(
        cls,
        chunk_size: int = 8192,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Correct ``Transfer-Encoding: chunked`` framing (no Content-Length)."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        return cls(FaultKind.CHUNKED, times, on, method, chunk_size=chunk_size)

    @classmethod
    def broken_chunked(
        cls,
        mode: ChunkBreak = "truncated",
        *,
        after_bytes: int | None = None,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Chunked framing that breaks after ``after_bytes`` (default: half the body).

        ``"truncated"``: a chunk announces more bytes than are sent, then close.
        ``"bad_size"``: the next chunk-size line is ``zz`` (not hex), then close.
        ``"no_terminator"``: all data chunks, but no final ``0`` chunk, then close.
        """
        if mode not in ("truncated", "bad_size", "no_terminator"):
            raise ValueError(f"unknown broken_chunked mode {mode!r}")
        return cls(FaultKind.BROKEN_CHUNKED, times, on, method, mode=mode, n_bytes=after_bytes)

    @classmethod
    def gzip_encoding(
        cls,
        *,
        force: bool = True,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Serve the body gzip-compressed with ``Content-Encoding: gzip``.

        ``force=True``: even when the client asked for identity (or nothing).
        ``force=False``: only when ``Accept-Encoding`` allows gzip (proper
        negotiation).  Content-Length, ranges and the ETag (``"...-gzip"``) then
        refer to the compressed bytes.
        """
        return cls(FaultKind.GZIP, times, on, method, force=force)

    # ---------------------------------------------------------- range faults
    @classmethod
    def ignore_range(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """Answer a Range request with 200 and the full body."""
        return cls(FaultKind.IGNORE_RANGE, times, on, method)

    @classmethod
    def reject_range(
        cls,
        status: int = 403,
        *,
        times: int | None = None,
        on: On = "range",
        method: str | None = None,
    ) -> Fault:
        """Answer requests carrying a Range header with ``status`` (403, 416, ...).

        A 416 carries ``Content-Range: bytes */total``.
        """
        return cls(FaultKind.STATUS, times, on, method, code=status)

    @classmethod
    def short_range(
        cls,
        missing: int | None = None,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """206 whose Content-Range claims the asked a-b but ``missing`` bytes fewer are sent.

        Content-Length matches the bytes actually sent (so the Content-Range is the
        lie).  Default ``missing``: half the range (at least 1 byte).
        """
        return cls(FaultKind.SHORT_RANGE, times, on, method, amount=missing)

    @classmethod
    def wrong_range_start(
        cls,
        delta: int = -1,
        *,
        honest: bool = True,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """206 for ``start + delta`` instead of the asked start (same length).

        ``honest=True``: Content-Range names the offset actually served.
        ``honest=False``: Content-Range claims the asked range but the bytes come
        from the shifted offset (silent corruption, only a checksum catches it).
        """
        return cls(FaultKind.WRONG_RANGE_START, times, on, method, amount=delta, honest=honest)

    @classmethod
    def wrong_range_total(
        cls,
        delta: int = 1,
        *,
        total: str | None = None,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """206 whose Content-Range total is real total + ``delta`` (or literally ``total``)."""
        return cls(FaultKind.WRONG_RANGE_TOTAL, times, on, method, amount=delta, total=total)

    @classmethod
    def multipart_byteranges(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """Answer a single range as ``multipart/byteranges`` with one part."""
        return cls(FaultKind.MULTIPART_BYTERANGES, times, on, method)

    # --------------------------------------------------------- status faults
    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: int | float | str | None = None,
        body: bytes | None = None,
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        times: int | None = 1,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Answer ``code`` (default: for the first request only), then behave normally.

        ``retry_after``: a number of seconds or a literal string (an HTTP date,
        see :func:`http_date`).  ``body`` defaults to ``b"<code> <reason>\\n"``; with
        ``code=200`` and an HTML body this is a "200 OK error page".  401 adds
        ``WWW-Authenticate``, 405 adds ``Allow: GET`` and 416 adds
        ``Content-Range: bytes */total`` unless ``headers`` set them.
        """
        ra = None if retry_after is None else _retry_after_text(retry_after)
        return cls(
            FaultKind.STATUS,
            times,
            on,
            method,
            code=code,
            retry_after=ra,
            body=body,
            content_type=content_type,
            headers=tuple((headers or {}).items()),
            close=close,
        )

    @classmethod
    def permanent_status(
        cls,
        code: int,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Always answer ``code`` (400, 401, 403, 404, 410, ...)."""
        return cls.status(code, body=body, headers=headers, times=None, on=on, method=method)

    @classmethod
    def head_not_allowed(cls) -> Fault:
        """``HEAD`` gets ``405 Method Not Allowed`` (``Allow: GET``); GET works."""
        return cls.status(405, headers={"Allow": "GET"}, times=None, method="HEAD")

    @classmethod
    def redirect(
        cls,
        location: str,
        status: int = 302,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Answer ``status`` (301/302/303/307/308) with ``Location: location`` verbatim.

        ``location`` may be relative (``/other``), absolute (``server.url(...)``,
        another :class:`TestServer` on 127.0.0.2) or another scheme (``ftp://...``).
        """
        return cls(FaultKind.REDIRECT, times, on, method, code=status, location=location)

    # ------------------------------------------------------- content changes
    @classmethod
    def body_changes(
        cls,
        new_body: bytes | None = None,
        *,
        after: int = 1,
        new_etag: str | _Auto | None = AUTO,
        new_last_modified: str | None = CHANGED_LAST_MODIFIED,
        method: str | None = None,
    ) -> Fault:
        """After the first ``after`` GET requests, serve a different body.

        The new body defaults to ``make_body(len(old) + 1000, seed=4242)`` (different
        content *and* size), with its own ETag and a later Last-Modified.  Requests
        of other methods (HEAD) see whichever version is current.  If-Range
        against the old validators then fails (full 200 of the new body).
        """
        return cls(
            FaultKind.BODY_CHANGES,
            None,
            "any",
            method,
            body=new_body,
            after=after,
            new_etag=new_etag,
            new_last_modified=new_last_modified,
        )

    # -------------------------------------------------------- header faults
    @classmethod
    def header(
        cls,
        name: str,
        value: str,
        *,
        replace: bool = True,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Set header ``name`` on the response, replacing the server's own value.

        ``replace=False`` adds it as an extra line (e.g. a second, conflicting
        Content-Length).  Values are written UTF-8 encoded.
        """
        return cls(FaultKind.HEADER, times, on, method, name=name, value=value, replace=replace)

    @classmethod
    def content_disposition(
        cls,
        value: str,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """``Content-Disposition: value`` verbatim (hostile names welcome)."""
        return cls.header("Content-Disposition", value, times=times, on=on, method=method)

    @classmethod
    def omit_header(
        cls,
        name: str,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Leave header ``name`` out (e.g. ``"ETag"``, ``"Accept-Ranges"``)."""
        return cls(FaultKind.OMIT_HEADER, times, on, method, name=name)

    # ---------------------------------------------------- connection faults
    @classmethod
    def delay_headers(
        cls,
        seconds: float,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Wait ``seconds`` before sending anything (slow first byte; stop() cuts it short)."""
        return cls(FaultKind.DELAY_HEADERS, times, on, method, seconds=seconds)

    @classmethod
    def close_before_response(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """Read the request, then close without answering (stale keep-alive socket)."""
        return cls(FaultKind.CLOSE_BEFORE_RESPONSE, times, on, method)

    @classmethod
    def close_after_response(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """Complete, keep-alive-looking response, then close the connection anyway."""
        return cls(FaultKind.CLOSE_AFTER_RESPONSE, times, on, method)

    @classmethod
    def garbage_response(
        cls,
        data: bytes = b"SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\r\n",
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Write ``data`` instead of an HTTP response, then close."""
        return cls(FaultKind.GARBAGE_RESPONSE, times, on, method, body=data)

    @classmethod
    def http10(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """Answer with an ``HTTP/1.0`` status line and close after the response."""
        return cls(FaultKind.HTTP10, times, on, method)


def _retry_after_text(value: int | float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


class Resource:
    """A path served by :class:`TestServer`; returned by :meth:`TestServer.add`.

    Attributes may be changed between requests through :meth:`set_body`,
    :meth:`set_faults` and :meth:`add_fault` (thread-safe).
    """

    def __init__(
        self,
        lock: threading.RLock,
        path: str,
        body: bytes,
        *,
        content_type: str,
        etag: str | _Auto | None,
        last_modified: str | None,
        accept_ranges: bool,
        headers: Mapping[str, str],
        faults: Iterable[Fault],
        rate_limit_bps: float | None,
    ) -> None:
        self._lock = lock
        self.path = path
        self.body = body
        self.etag: str | None = default_etag(body) if isinstance(etag, _Auto) else etag
        self.last_modified = last_modified
        self.content_type = content_type
        self.accept_ranges = accept_ranges
        self.headers: dict[str, str] = dict(headers)
        self.rate_limit_bps = rate_limit_bps
        self.faults: list[Fault] = list(faults)
        self._uses: list[int] = [0] * len(self.faults)
        self._changed: dict[int, bytes] = {}
        self._gzip_cache: tuple[bytes, bytes] | None = None

    def __repr__(self) -> str:
        return f"Resource({self.path!r}, {len(self.body)} bytes, faults={self.faults!r})"

    def set_body(
        self,
        body: bytes,
        *,
        etag: str | _Auto | None = AUTO,
        last_modified: str | None = CHANGED_LAST_MODIFIED,
    ) -> None:
        """Replace the body (and validators) from the next request on."""
        with self._lock:
            self.body = body
            self.etag = default_etag(body) if isinstance(etag, _Auto) else etag
            self.last_modified = last_modified

    def set_faults(self, faults: Iterable[Fault]) -> None:
        """Replace the faults; their ``times`` counters start again from zero."""
        with self._lock:
            self.faults = list(faults)
            self._uses = [0] * len(self.faults)
            self._changed.clear()

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)
            self._uses.append(0)

    def fault_uses(self) -> list[int]:
        """How many requests each fault (same order as :attr:`faults`) was applied to."""
        with self._lock:
            return list(self._uses)

    def _gzipped(self, body: bytes) -> bytes:
        """gzip of ``body`` (deterministic: mtime 0), cached for the last body seen."""
        with self._lock:
            cached = self._gzip_cache
        if cached is not None and cached[0] is body:
            return cached[1]
        compressed = gzip.compress(body, mtime=0)
        with self._lock:
            self._gzip_cache = (body, compressed)
        return compressed

    def _select(self, method: str, has_range: bool) -> _Plan:
        """Pick (and use up) the faults for one request; snapshot the representation."""
        with self._lock:
            plan = _Plan(
                body=self.body,
                etag=self.etag,
                last_modified=self.last_modified,
                content_type=self.content_type,
                accept_ranges=self.accept_ranges,
                headers=list(self.headers.items()),
                rate=self.rate_limit_bps or 0.0,
            )
            for i, fault in enumerate(self.faults):
                if fault.kind is FaultKind.BODY_CHANGES:
                    if self._uses[i] >= fault.after:
                        new = fault.body
                        if new is None:
                            new = self._changed.get(i)
                            if new is None:
                                new = make_body(len(self.body) + 1000, seed=4242)
                                self._changed[i] = new
                        plan.body = new
                        plan.etag = (
                            default_etag(new)
                            if isinstance(fault.new_etag, _Auto)
                            else fault.new_etag
                        )
                        plan.last_modified = fault.new_last_modified
                    if fault.applies_to(method, has_range):
                        self._uses[i] += 1
                    continue
                if not fault.applies_to(method, has_range):
                    continue
                if fault.times is not None and self._uses[i] >= fault.times:
                    continue
                self._uses[i] += 1
                plan.faults.append(fault)
            return plan


@dataclass
class _Plan:
    body: bytes
    etag: str | None
    last_modified: str | None
    content_type: str
    accept_ranges: bool
    headers: list[tuple[str, str]]
    rate: float
    faults: list[Fault] = field(default_factory=list)

    def first(self, kind: FaultKind) -> Fault | None:
        for fault in self.faults:
            if fault.kind is kind:
                return fault
        return None

    def has(self, kind: FaultKind) -> bool:
        return self.first(kind) is not None


class _BadRequest(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Stopped(Exception):
    """The server is stopping; abandon the connection."""


class _Connection:
    """One accepted socket with a read buffer."""

    def __init__(self, owner: TestServer, sock: socket.socket, conn_id: int) -> None:
        self.owner = owner
        self.sock = sock
        self.id = conn_id
        self.buffer = bytearray()
        self.closed = False

    def _recv(self) -> bytes:
        return self.sock.recv(65536)

    def read_head(self) -> bytes | None:
        """Bytes up to and including the blank line; None on a clean EOF."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[: end + 4])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > _MAX_HEAD:
                raise _BadRequest(431)
            data = self._recv()
            if not data:
                if self.buffer.strip():
                    raise _BadRequest(400)
                return None
            self.buffer += data
            # Tolerate stray CRLFs between requests (RFC 9112 2.2).
            while self.buffer.startswith(b"\r\n"):
                del self.buffer[:2]

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            data = self._recv()
            if not data:
                raise _BadRequest(400)
            self.buffer += data
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def send(self, data: bytes | memoryview, count_for: str | None = None) -> None:
        """Write everything; body bytes are counted for ``count_for`` as they go."""
        view = memoryview(data)
        while view:
            if count_for is None:
                view = view[self.sock.send(view) :]
                continue
            # Count before sending, so that the count is never behind what the
            # client may already have received; take back what did not go out.
            pending = len(view)
            self.owner._count_bytes(count_for, pending)
            sent = 0
            try:
                sent = self.sock.send(view)
            finally:
                if sent < pending:
                    self.owner._count_bytes(count_for, sent - pending)
            view = view[sent:]

    def close(self, *, reset: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self.owner._close_socket(self.sock, reset=reset)


@dataclass
class _Request:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: Headers
    body: bytes

    @property
    def wants_close(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return "close" in tokens


def _parse_head(head: bytes) -> tuple[str, str, str, Headers]:
    try:
        text = head.decode("iso-8859-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
        raise _BadRequest(400) from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400)
    method, target, version = parts
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400)
        items.append((name, value.strip()))
    return method, target, version, Headers(items)


def _split_target(target: str) -> tuple[str, str]:
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path, query


class _Unsatisfiable:
    pass


_UNSATISFIABLE: Final = _Unsatisfiable()


def _parse_range(value: str, total: int) -> tuple[int, int] | _Unsatisfiable | None:
    """(first, last) inclusive, _UNSATISFIABLE, or None to ignore the header."""
    unit, sep, spec = value.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [s.strip() for s in spec.split(",") if s.strip()]
    if len(specs) != 1:
        return None
    first_s, dash, last_s = specs[0].partition("-")
    first_s, last_s = first_s.strip(), last_s.strip()
    if not dash or (first_s and not first_s.isdigit()) or (last_s and not last_s.isdigit()):
        return None
    if not first_s:
        if not last_s:
            return None
        suffix = int(last_s)
        if suffix == 0 or total == 0:
            return _UNSATISFIABLE
        return max(0, total - suffix), total - 1
    first = int(first_s)
    last = int(last_s) if last_s else total - 1
    if last_s and last < first:
        return None
    if first >= total:
        return _UNSATISFIABLE
    return first, min(last, total - 1)


def _if_range_ok(value: str | None, etag: str | None, last_modified: str | None) -> bool:
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return (
            etag is not None
            and not value.startswith("W/")
            and not etag.startswith("W/")
            and value == etag
        )
    if last_modified is None:
        return False
    if value == last_modified:
        return True
    try:
        return parsedate_to_datetime(value) == parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False


def _accepts_gzip(value: str | None) -> bool:
    if not value:
        return False
    for part in value.split(","):
        token, _, params = part.partition(";")
        if token.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, val = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def _weak_suffix(etag: str | None, suffix: str) -> str | None:
    if etag is None:
        return None
    if etag.endswith('"'):
        return etag[:-1] + suffix + '"'
    return etag + suffix


class _TCPServer(socketserver.ThreadingTCPServer):
    """Accept loop only: every connection is handed to :meth:`TestServer._run`."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, owner: TestServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, socketserver.BaseRequestHandler)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        sock = request if isinstance(request, socket.socket) else request[1]
        self.owner._spawn(sock, client_address)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        self.owner._record_error(traceback.format_exc())


class TestServer:
    """Threaded HTTP/1.1 server on ``host`` (default 127.0.0.1), port chosen by the OS.

    Binds in the constructor; :meth:`start` begins serving; :meth:`stop` (or
    leaving the ``with`` block) closes the listening socket and every client
    connection, interrupts stalls and delays, and joins the threads.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._resources: dict[str, Resource] = {}
        self._requests: list[RecordedRequest] = []
        self._bytes: dict[str, int] = {}
        self._connections_opened = 0
        self._next_conn_id = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._errors: list[str] = []
        self._serve_thread: threading.Thread | None = None
        self._closed = False
        self._tcp = _TCPServer(self, (host, port))
        bound = self._tcp.server_address
        self.host: str = str(bound[0])
        self.port: int = int(bound[1])

    # ------------------------------------------------------------- lifecycle
    def start(self) -> TestServer:
        if self._closed:
            raise RuntimeError("TestServer cannot be restarted after stop()")
        if self._serve_thread is None:
            self._serve_thread = threading.Thread(
                target=self._tcp.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"testserver-{self.port}",
                daemon=True,
            )
            self._serve_thread.start()
        return self

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        deadline = time.monotonic() + _JOIN_TIMEOUT
        if self._serve_thread is not None:
            self._tcp.shutdown()
            self._serve_thread.join(max(0.0, deadline - time.monotonic()))
        self._tcp.server_close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
            self._cond.notify_all()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------ addresses
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # ------------------------------------------------------------ resources
    def add(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        etag: str | _Auto | None = AUTO,
        last_modified: str | None = FIXED_LAST_MODIFIED,
        accept_ranges: bool = True,
        headers: Mapping[str, str] | None = None,
        faults: Iterable[Fault] | None = None,
        rate_limit_bps: float | None = None,
    ) -> Resource:
        """Serve ``body`` at ``path`` (replacing any earlier resource there).

        ``etag=AUTO`` gives :func:`default_etag`; ``None`` omits the header (same
        for ``last_modified``).  ``headers`` are added verbatim to 200/206
        responses.  ``rate_limit_bps`` paces bodies to that many bytes/second.
        """
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        resource = Resource(
            self._lock,
            path,
            body,
            content_type=content_type,
            etag=etag,
            last_modified=last_modified,
            accept_ranges=accept_ranges,
            headers=headers or {},
            faults=faults or (),
            rate_limit_bps=rate_limit_bps,
        )
        with self._lock:
            self._resources[path] = resource
        return resource

    def remove(self, path: str) -> None:
        with self._lock:
            self._resources.pop(path, None)

    def resource(self, path: str) -> Resource:
        with self._lock:
            return self._resources[path]

    def add_redirect(self, path: str, location: str, status: int = 302) -> Resource:
        """A path that always redirects to ``location`` (used verbatim)."""
        return self.add(path, b"", faults=[Fault.redirect(location, status)])

    def add_redirect_chain(
        self, path: str, target: str, hops: int, *, status: int = 302, absolute: bool = True
    ) -> list[str]:
        """``hops`` redirects: path -> path~hop1 -> ... -> target.  Returns the redirecting paths.

        Locations are absolute URLs on this server unless ``absolute=False``.
        ``target`` may be a path on this server or a full URL.
        """
        if hops < 1:
            raise ValueError("hops must be >= 1")
        paths = [path] + [f"{path}~hop{i}" for i in range(1, hops)]
        for i, here in enumerate(paths):
            nxt = paths[i + 1] if i + 1 < hops else target
            location = self.url(nxt) if absolute and nxt.startswith("/") else nxt
            self.add_redirect(here, location, status)
        return paths

    def add_redirect_loop(
        self, path: str, length: int = 2, *, status: int = 302, absolute: bool = True
    ) -> list[str]:
        """A cycle of ``length`` redirects starting and ending at ``path`` (1 = self-loop)."""
        if length < 1:
            raise ValueError("length must be >= 1")
        paths = [path] + [f"{path}~loop{i}" for i in range(1, length)]
        for i, here in enumerate(paths):
            nxt = paths[(i + 1) % length]
            self.add_redirect(here, self.url(nxt) if absolute else nxt, status)
        return paths

    # ----------------------------------------------------------- statistics
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if r.path == path]

    def bytes_sent(self, path: str) -> int:
        with self._lock:
            return self._bytes.get(path, 0)

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections_opened

    @property
    def open_connections(self) -> int:
        """Client connections currently open on the server side."""
        with self._lock:
            return len(self._open)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_concurrent_requests(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions inside the server (should stay empty)."""
        with self._lock:
            return list(self._errors)

    def reset_stats(self) -> None:
        """Forget requests, byte counts, connection and concurrency counts (not faults)."""
        with self._lock:
            self._requests.clear()
            self._bytes.clear()
            self._connections_opened = 0
            self._max_in_flight = self._in_flight

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` (re-checked on every server event) is true."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError("condition not reached in time")

    def wait_for_requests(
        self, count: int, path: str | None = None, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests (for ``path``, if given) arrived."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if path is None or r.path == path]

        self.wait_until(lambda: len(matching()) >= count, timeout)
        with self._lock:
            return matching()

    # ------------------------------------------------------------ internals
    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    def _count_bytes(self, path: str, n: int) -> None:
        with self._lock:
            self._bytes[path] = self._bytes.get(path, 0) + n
        self._notify()  # so wait_until(bytes_sent(...) >= n) wakes mid-body

    def _wait(self, seconds: float) -> None:
        """Sleep that ends early (raising _Stopped) when the server stops."""
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Stopped

    def _spawn(self, sock: socket.socket, client_address: object) -> None:
        with self._lock:
            self._next_conn_id += 1
            conn_id = self._next_conn_id
            self._connections_opened += 1
            self._open.add(sock)
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(
                target=self._run,
                args=(sock, conn_id, client_address),
                name=f"testserver-{self.port}-conn{conn_id}",
                daemon=True,
            )
            self._threads.append(thread)
            self._cond.notify_all()
        thread.start()

    def _close_socket(self, sock: socket.socket, *, reset: bool = False) -> None:
        with self._lock:
            self._open.discard(sock)
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_WR)
        sock.close()

    def _run(self, sock: socket.socket, conn_id: int, client_address: object) -> None:
        conn = _Connection(self, sock, conn_id)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._serve_connection(conn, client_address)
        except (OSError, _Stopped):
            pass
        except Exception:  # noqa: BLE001 - a server bug must not kill the thread silently
            self._record_error(traceback.format_exc())
        finally:
            conn.close()

    def _serve_connection(self, conn: _Connection, client_address: object) -> None:
        while not self._stopping.is_set():
            try:
                head = conn.read_head()
                if head is None:
                    return
                method, target, version, headers = _parse_head(head)
                if "Transfer-Encoding" in headers:
                    raise _BadRequest(501)
                length = headers.get("Content-Length", "0").strip()
                if not length.isdigit():
                    raise _BadRequest(400)
                body = conn.read_exact(int(length)) if int(length) else b""
            except _BadRequest as exc:
                self._send_simple(conn, exc.code, close=True)
                return
            path, query = _split_target(target)
            req = _Request(method, target, path, query, version, headers, body)
            addr = client_address if isinstance(client_address, tuple) else ("", 0)
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        method=method,
                        path=path,
                        headers=headers,
                        range_header=headers.get("Range"),
                        time=time.monotonic(),
                        connection_id=conn.id,
                        query=query,
                        target=target,
                        version=version,
                        body=body,
                        client_address=(str(addr[0]), int(addr[1])),
                    )
                )
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)
                self._cond.notify_all()
            try:
                keep_alive = self._respond(conn, req)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._cond.notify_all()
            if not keep_alive or req.wants_close or conn.closed:
                return

    # ------------------------------------------------------------- writing
    @staticmethod
    def _head_bytes(version: str, code: int, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"{version} {code} {_reason(code)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def _send_simple(
        self,
        conn: _Connection,
        code: int,
        *,
        close: bool = False,
        extra: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        head_only: bool = False,
        content_type: str = "text/plain; charset=utf-8",
        version: str = "HTTP/1.1",
    ) -> None:
        if body is None:
            body = f"{code} {_reason(code)}\n".encode()
        if code in (204, 304) or 100 <= code < 200:
            body = b""
        headers = [
            ("Date", http_date()),
            ("Server", "ripstream-testserver"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
        ]
        headers += extra or []
        if close:
            headers.append(("Connection", "close"))
        conn.send(self._head_bytes(version, code, headers) + (b"" if head_only else body))

    def _respond(self, conn: _Connection, req: _Request) -> bool:
        """Answer one request; False when the connection must not be reused."""
        head_only = req.method == "HEAD"
        if req.method not in ("GET", "HEAD"):
            self._send_simple(conn, 405, extra=[("Allow", "GET, HEAD")], close=req.wants_close)
            return True
        with self._lock:
            resource = self._resources.get(req.path)
        if resource is None:
            self._send_simple(conn, 404, head_only=head_only, close=req.wants_close)
            return True

        range_header = req.headers.get("Range")
        plan = resource._select(req.method, range_header is not None)
        version = "HTTP/1.0" if plan.has(FaultKind.HTTP10) else "HTTP/1.1"
        close_after = req.wants_close or version == "HTTP/1.0"

        if plan.has(FaultKind.CLOSE_BEFORE_RESPONSE):
            conn.close()
            return False
        delay = plan.first(FaultKind.DELAY_HEADERS)
        if delay is not None:
            self._wait(delay.seconds)
        garbage = plan.first(FaultKind.GARBAGE_RESPONSE)
        if garbage is not None:
            conn.send(garbage.body or b"")
            conn.close()
            return False

        # Representation (after body changes and content coding).
        body = plan.body
        etag = plan.etag
        gz = plan.first(FaultKind.GZIP)
        encoded = gz is not None and (gz.force or _accepts_gzip(req.headers.get("Accept-Encoding")))
        if encoded:
            body = resource._gzipped(body)
            etag = _weak_suffix(etag, "-gzip")
        total = len(body)

        status = plan.first(FaultKind.STATUS)
        if status is not None:
            extra = list(status.headers)
            names = {n.lower() for n, _ in extra}
            if status.retry_after is not None:
                extra.append(("Retry-After", status.retry_after))
            if status.code == 416 and "content-range" not in names:
                extra.append(("Content-Range", f"bytes */{total}"))
            if status.code == 405 and "allow" not in names:
                extra.append(("Allow", "GET"))
            if status.code == 401 and "www-authenticate" not in names:
                extra.append(("WWW-Authenticate", 'Basic realm="ripstream-test"'))
            close = close_after or status.close
            self._send_simple(
                conn,
                status.code,
                close=close,
                extra=self._edit_headers(plan, extra),
                body=status.body,
                head_only=head_only,
                content_type=status.content_type,
                version=version,
            )
            return not close
        redirect = plan.first(FaultKind.REDIRECT)
        if redirect is not None:
            self._send_simple(
                conn,
                redirect.code,
                close=close_after,
                head_only=head_only,
                version=version,
                extra=self._edit_headers(plan, [("Location", redirect.location)]),
                body=f"redirecting to {redirect.location}\n".encode(),
            )
            return not close_after

        # Ranges.
        code = 200
        first, last = 0, total - 1
        if (
            range_header is not None
            and plan.accept_ranges
            and not plan.has(FaultKind.IGNORE_RANGE)
            and _if_range_ok(req.headers.get("If-Range"), etag, plan.last_modified)
        ):
            parsed = _parse_range(range_header, total)
            if isinstance(parsed, _Unsatisfiable):
                self._send_simple(
                    conn,
                    416,
                    close=close_after,
                    head_only=head_only,
                    version=version,
                    extra=self._edit_headers(plan, [("Content-Range", f"bytes */{total}")]),
                )
                return not close_after
            if parsed is not None:
                code = 206
                first, last = parsed

        claimed = (first, last)
        cr_total = str(total)
        multipart = False
        if code == 206:
            wrong_start = plan.first(FaultKind.WRONG_RANGE_START)
            if wrong_start is not None:
                length = last - first + 1
                first = min(max(0, first + (wrong_start.amount or 0)), total - 1)
                last = min(first + length - 1, total - 1)
                if wrong_start.honest:
                    claimed = (first, last)
            short = plan.first(FaultKind.SHORT_RANGE)
            if short is not None:
                length = last - first + 1
                missing = short.amount if short.amount is not None else max(1, length // 2)
                last -= min(max(missing, 0), length)
            wrong_total = plan.first(FaultKind.WRONG_RANGE_TOTAL)
            if wrong_total is not None:
                cr_total = (
                    wrong_total.total
                    if wrong_total.total is not None
                    else str(total + (wrong_total.amount or 0))
                )
            multipart = plan.has(FaultKind.MULTIPART_BYTERANGES)

        payload: bytes | memoryview = memoryview(body)[first : last + 1]
        content_type = plan.content_type
        content_range = f"bytes {claimed[0]}-{claimed[1]}/{cr_total}"
        if multipart:
            content_type = f"multipart/byteranges; boundary={_BOUNDARY}"
            payload = (
                f"--{_BOUNDARY}\r\nContent-Type: {plan.content_type}\r\n"
                f"Content-Range: {content_range}\r\n\r\n".encode()
                + bytes(payload)
                + f"\r\n--{_BOUNDARY}--\r\n".encode()
            )

        headers: list[tuple[str, str]] = [
            ("Date", http_date()),
            ("Server", "ripstream-testserver"),
            ("Content-Type", content_type),
        ]
        if encoded:
            headers.append(("Content-Encoding", "gzip"))
        if gz is not None:
            headers.append(("Vary", "Accept-Encoding"))
        if plan.accept_ranges:
            headers.append(("Accept-Ranges", "bytes"))
        if etag is not None:
            headers.append(("ETag", etag))
        if plan.last_modified is not None:
            headers.append(("Last-Modified", plan.last_modified))
        if code == 206 and not multipart:
            headers.append(("Content-Range", content_range))

        chunked = plan.first(FaultKind.CHUNKED)
        broken = plan.first(FaultKind.BROKEN_CHUNKED)
        too_large = plan.first(FaultKind.CONTENT_LENGTH_TOO_LARGE)
        too_small = plan.first(FaultKind.CONTENT_LENGTH_TOO_SMALL)
        announce_close = close_after
        if chunked is not None or broken is not None:
            headers.append(("Transfer-Encoding", "chunked"))
            if broken is not None:
                close_after = True
        elif plan.has(FaultKind.NO_CONTENT_LENGTH):
            announce_close = close_after = True
        else:
            length = len(payload)
            if too_large is not None:
                length += too_large.amount or 0
                close_after = True
            if too_small is not None:
                length = max(0, length - (too_small.amount or 0))
                close_after = close_after or too_small.close
            headers.append(("Content-Length", str(length)))
        headers += plan.headers
        if plan.has(FaultKind.CLOSE_AFTER_RESPONSE):
            close_after = True
        if announce_close:
            headers.append(("Connection", "close"))

        conn.send(self._head_bytes(version, code, self._edit_headers(plan, headers)))
        if head_only:
            if close_after:
                conn.close()
            return not close_after

        if broken is not None:
            self._write_broken_chunked(conn, req.path, payload, broken)
            conn.close()
            return False
        drop = plan.first(FaultKind.DROP)
        stall = plan.first(FaultKind.STALL)
        trickle = plan.first(FaultKind.TRICKLE)
        bps, pace_from = plan.rate, 0
        if trickle is not None:
            bps, pace_from = trickle.bps, trickle.n_bytes or 0
        complete = self._write_body(
            conn,
            req.path,
            payload,
            chunk_size=chunked.chunk_size if chunked is not None else 0,
            drop=drop,
            stall=stall,
            bps=bps,
            pace_from=pace_from,
        )
        if not complete or close_after:
            conn.close()
            return False
        return True

    @staticmethod
    def _edit_headers(plan: _Plan, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Apply HEADER / OMIT_HEADER faults to a header list."""
        out = list(headers)
        for fault in plan.faults:
            key = fault.name.lower()
            if fault.kind is FaultKind.OMIT_HEADER:
                out = [(n, v) for n, v in out if n.lower() != key]
            elif fault.kind is FaultKind.HEADER:
                if fault.replace and any(n.lower() == key for n, _ in out):
                    index = next(i for i, (n, _) in enumerate(out) if n.lower() == key)
                    out = [(n, v) for n, v in out if n.lower() != key]
                    out.insert(index, (fault.name, fault.value))
                else:
                    out.append((fault.name, fault.value))
        return out

    def _write_body(
        self,
        conn: _Connection,
        path: str,
        payload: bytes | memoryview,
        *,
        chunk_size: int,
        drop: Fault | None,
        stall: Fault | None,
        bps: float,
        pace_from: int,
    ) -> bool:
        """Write the body with pacing, a stall and/or a drop; False if the socket was closed."""
        view = memoryview(payload)
        size = len(view)
        limit = size if drop is None else min(max(drop.n_bytes or 0, 0), size)
        stall_at = None if stall is None else min(max(stall.n_bytes or 0, 0), limit)
        pos = 0
        paced_start: float | None = None
        paced_bytes = 0
        while True:
            if stall is not None and stall_at is not None and pos >= stall_at:
                stall_at = None
                self._wait(stall.seconds)
                if stall.close:
                    conn.close()
                    return False
            if pos >= limit:
                break
            end = limit
            if stall_at is not None:
                end = min(end, stall_at)
            paced = bps > 0 and pos >= pace_from
            if bps > 0 and not paced:
                end = min(end, pace_from)
            end = min(end, pos + (max(1, int(bps / 20)) if paced else _PIECE))
            if chunk_size:
                end = min(end, pos + chunk_size)
            piece = view[pos:end]
            if paced:
                # Each piece leaves when its last byte is due, so N bytes take N / bps.
                if paced_start is None:
                    paced_start = time.monotonic()
                paced_bytes += len(piece)
                self._wait(paced_start + paced_bytes / bps - time.monotonic())
            if chunk_size:
                conn.send(f"{len(piece):x}\r\n".encode())
            conn.send(piece, count_for=path)
            if chunk_size:
                conn.send(b"\r\n")
            pos = end
        if drop is not None:
            conn.close(reset=drop.reset)
            return False
        if chunk_size:
            conn.send(b"0\r\n\r\n")
        return True

    def _write_broken_chunked(
        self, conn: _Connection, path: str, payload: bytes | memoryview, fault: Fault
    ) -> None:
        view = memoryview(payload)
        size = len(view)
        cut = size // 2 if fault.n_bytes is None else min(max(fault.n_bytes, 0), size)
        if cut:
            conn.send(f"{cut:x}\r\n".encode())
            conn.send(view[:cut], count_for=path)
            conn.send(b"\r\n")
        rest = view[cut:]
        if fault.mode == "truncated":
            announced = max(len(rest), 16)
            conn.send(f"{announced:x}\r\n".encode())
            conn.send(rest[: len(rest) // 2], count_for=path)
        elif fault.mode == "bad_size":
            conn.send(b"zz\r\n")
            conn.send(rest, count_for=path)
            conn.send(b"\r\n0\r\n\r\n")
        else:  # no_terminator
            if rest:
                conn.send(f"{len(rest):x}\r\n".encode())
                conn.send(rest, count_for=path)
                conn.send(b"\r\n")
