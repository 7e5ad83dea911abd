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

Modules
-------
``bodies`` (deterministic bodies, dates, ETags), ``spec``/``body_faults``/``faults``
(:class:`Fault` and its constructors), ``resources`` (:class:`Resource`), ``protocol``
(request parsing, ranges, If-Range), ``connection`` (one client socket), ``responses``
(choosing and writing an answer), ``writer`` (writing its body) and ``server``
(:class:`TestServer`).
"""

from __future__ import annotations

from .bodies import (
    AUTO,
    CHANGED_LAST_MODIFIED,
    FIXED_LAST_MODIFIED,
    default_etag,
    http_date,
    make_body,
)
from .faults import Fault, FaultKind
from .protocol import Headers, RecordedRequest
from .resources import Resource
from .server import TestServer

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
