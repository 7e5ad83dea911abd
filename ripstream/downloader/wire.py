"""What is on the wire: Content-Range parsing, response framing, and the body reader.

Shared by the single-stream and the segmented transfer; nothing here knows about files.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import zlib
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from ripstream.downloader.exceptions import IncompleteBodyError, ResponseMismatchError
from ripstream.downloader.urls import redact_url

__all__ = [
    "BodyReader",
    "ContentRange",
    "Inflater",
    "check_range",
    "check_wire_length",
    "content_length",
    "is_encoded",
    "parse_content_range",
]

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ContentRange:
    """A parsed ``Content-Range``: ``start``/``end`` inclusive, or ``None`` for ``*/total``."""

    start: int | None
    end: int | None
    total: int | None


def parse_content_range(value: str | None) -> ContentRange | None:
    """Parse ``bytes a-b/total`` (or ``bytes */total``); ``None`` when absent or malformed."""
    if not value:
        return None
    match = _CONTENT_RANGE.match(value)
    if not match:
        return None
    start_s, end_s, total_s = match.groups()
    total = int(total_s) if total_s != "*" else None
    if start_s is None:
        return ContentRange(None, None, total) if total is not None else None
    start, end = int(start_s), int(end_s)
    if end < start or (total is not None and end >= total):
        return None
    return ContentRange(start, end, total)


class BodyReader:
    """Reads a response body into one reusable buffer.

    The common case (identity encoding, not chunked) reads with ``readinto1`` straight from
    the socket's buffered reader into our buffer: at most one ``recv`` per call, so a slow
    server never blocks a read for long, and no bytes object is allocated per chunk. The
    http.client response's ``length`` is kept in step, so the connection goes back to the
    pool once the body is complete. Chunked bodies use http.client's ``read1`` (it owns the
    framing). A compressed body (sent although ``identity`` was asked for) goes through an
    :class:`Inflater`: bounded, and refused when its stream ends early.

    :param max_ratio: a compressed body may decode to at most this many times its wire size.
    """

    def __init__(
        self, response: requests.Response, capacity: int, *, max_ratio: float = 100.0
    ) -> None:
        self.raw: urllib3.HTTPResponse = response.raw
        self.url = redact_url(response.url)
        fp = getattr(self.raw, "_fp", None)
        self.fp = fp if isinstance(fp, http.client.HTTPResponse) else None
        self.mode = "decoded"
        self.inflater: Inflater | None = None
        if self.fp is not None and not is_encoded(response):
            self.mode = "chunked" if self.fp.chunked else "direct"
        elif is_encoded(response):
            self.inflater = Inflater(response, max_ratio)
        if self.mode == "direct" and self.fp is not None and self.fp.length is not None:
            # read into our buffer, and no more than the body: a 64 KiB file does not set
            # aside (and fault in) the whole chunk size
            capacity = max(1, min(capacity, self.fp.length))
        self.capacity = capacity
        self.view = memoryview(bytearray(capacity))

    def read(self, want: int) -> memoryview | bytes:
        """Up to ``want`` bytes (empty at the end of the body)."""
        fp = self.fp
        if self.mode == "direct" and fp is not None:
            length = fp.length
            if length is not None:
                want = min(want, length)
            stream = fp.fp
            count = stream.readinto1(self.view[:want]) if want and stream is not None else 0
            if length is not None and count:
                fp.length = length - count
            if fp.length == 0 and stream is not None:
                _refuse_extra_bytes(stream, self.url)
            if not count or fp.length == 0:
                fp.close()
            return self.view[:count]
        if self.mode == "chunked" and fp is not None:
            return fp.read1(want)
        if self.inflater is not None:
            return self.inflater.read(want)
        return self.raw.read(want, decode_content=True)

    def release_if_complete(self) -> None:
        """Give the connection back to the pool when the body was read exactly to its end."""
        fp = self.fp
        if fp is None or not fp.isclosed() or fp.will_close:
            return
        if (self.mode == "direct" and fp.length == 0) or self.mode == "chunked":
            self.raw.release_conn()


def _refuse_extra_bytes(stream: Any, url: str) -> None:
    """After the declared length: bytes already waiting on the connection mean the server
    sent more than its ``Content-Length`` said, so the length (and the file) is a lie.

    Only what has already arrived can be seen (the check never waits): a server that sends
    the extra bytes later is caught only by a checksum.
    """
    sock = getattr(getattr(stream, "raw", None), "_sock", None)
    if sock is None:
        return
    usual = sock.gettimeout()
    try:
        sock.settimeout(0)
        extra = stream.peek(1)
    except (OSError, ValueError):
        return
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(usual)
    if extra:
        raise ResponseMismatchError(
            f"{url} sent more bytes than its Content-Length declares", url=url
        )


class Inflater:
    """Decodes a gzip or deflate body with bounds: what it inflates to may not pass
    ``max_ratio`` times the compressed bytes (a small body that would fill the disk), and a
    stream without its end (half a gzip file, no trailer) is an error, not a shorter file.
    Not thread-safe; one per response.

    :raises ResponseMismatchError: an unsupported encoding, corrupt data, or a bomb.
    :raises IncompleteBodyError: the compressed stream ends early.
    """

    _SLACK = 1024 * 1024  # tiny bodies may inflate well past the ratio: allow a MiB anyway

    def __init__(self, response: requests.Response, max_ratio: float) -> None:
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        self.url = redact_url(response.url)
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise ResponseMismatchError(
                f"{self.url} sent its body in an unsupported encoding {encoding!r}",
                url=self.url,
                status_code=response.status_code,
            )
        self.raw: urllib3.HTTPResponse = response.raw
        self.encoding = encoding
        self.max_ratio = max_ratio
        # the zlib header, or the gzip one: servers disagree about what "deflate" means
        self.inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)
        self.tail = b""
        self.wire = 0
        self.decoded = 0

    def read(self, want: int) -> bytes:
        """Up to ``want`` decoded bytes; empty at the proven end of the stream."""
        try:
            while True:
                if self.tail:
                    out = self.inflate.decompress(self.tail, want)
                    self.tail = self.inflate.unconsumed_tail
                    if out:
                        return self._counted(out)
                if self.inflate.eof:
                    rest = self.inflate.unused_data or self._from_wire()
                    if not rest:
                        return b""
                    # RFC 1952: gzip members one after another decode to one body; zlib
                    # stops at the end of the first, which would truncate the file
                    self.inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)
                    self.tail = rest
                    continue
                chunk = self._from_wire()
                if not chunk:
                    return self._ended(want)
                out = self.inflate.decompress(chunk, want)
                self.tail = self.inflate.unconsumed_tail
                if out:
                    return self._counted(out)
        except zlib.error as exc:
            raise ResponseMismatchError(
                f"{self.url} sent corrupt {self.encoding} data: {exc}", url=self.url
            ) from exc

    def _from_wire(self) -> bytes:
        chunk: bytes = self.raw.read(64 * 1024, decode_content=False)
        self.wire += len(chunk)
        return chunk

    def _ended(self, want: int) -> bytes:
        out = self.inflate.flush(want)
        if out:
            return self._counted(out)
        if not self.inflate.eof:
            raise IncompleteBodyError(
                f"{self.url} ended its {self.encoding} stream early (no end marker)",
                url=self.url,
            )
        return b""

    def _counted(self, out: bytes) -> bytes:
        self.decoded += len(out)
        if self.decoded > max(self.wire * self.max_ratio, self._SLACK):
            raise ResponseMismatchError(
                f"{self.url} sent {self.encoding} data that decodes to more than "
                f"{self.max_ratio:g} times its size (a decompression bomb?)",
                url=self.url,
            )
        return out


def is_encoded(response: requests.Response) -> bool:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    return encoding not in ("", "identity")


def content_length(response: requests.Response) -> int | None:
    """The body length the response declares, or ``None`` when it declares none.

    :raises ResponseMismatchError: for a length that is not ASCII digits, lengths that
        disagree (``5, 7``), or a length together with chunked framing: each of these
        means the body's end cannot be trusted.
    """
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    values = {item.strip() for item in value.split(",")}
    if len(values) != 1 or not all(v.isascii() and v.isdigit() for v in values):
        raise _mismatch(response, f"an unusable Content-Length {value!r}")
    if "chunked" in response.headers.get("Transfer-Encoding", "").lower():
        raise _mismatch(response, "both Content-Length and chunked framing")
    return int(values.pop())


def _mismatch(response: requests.Response, what: str) -> ResponseMismatchError:
    url = redact_url(response.url)
    return ResponseMismatchError(f"{url} sent {what}", url=url, status_code=response.status_code)


def check_wire_length(url: str, response: requests.Response, source: str) -> None:
    expected = content_length(response)
    wire = response.raw.tell()
    if expected is not None and wire != expected:
        raise IncompleteBodyError(
            f"{redact_url(url)} ended after {wire} of {expected} encoded bytes",
            url=redact_url(url),
            source=source,
            expected=expected,
            received=wire,
        )


def check_range(
    response: requests.Response,
    start: int,
    end: int | None,
    known_total: int | None,
    *,
    source: str | None = None,
) -> ContentRange:
    """The 206's ``Content-Range``, proven to be exactly what was asked.

    :param end: the last byte asked for, or ``None`` for "to the end of the file".
    :param known_total: the size recorded when the download started, if any.
    :raises ResponseMismatchError: naming the first thing that does not match.
    """
    header = response.headers.get("Content-Range")
    content_range = parse_content_range(header)
    problem = _range_problem(content_range, header, start, end, known_total)
    if problem is None and content_range is not None and content_range.end is not None:
        length = content_length(response)
        first = content_range.start or 0
        if length is not None and length != content_range.end - first + 1:
            problem = f"Content-Length {length} that disagrees with Content-Range {header!r}"
    if problem is not None or content_range is None:
        url = redact_url(response.url)
        raise ResponseMismatchError(
            f"{url} sent {problem}", url=url, source=source, status_code=206
        )
    return content_range


def _range_problem(
    got: ContentRange | None,
    header: str | None,
    start: int,
    end: int | None,
    known_total: int | None,
) -> str | None:
    if got is None or got.start is None:
        return f"a 206 with an unusable Content-Range {header!r}"
    if got.start != start:
        return f"bytes from {got.start} when {start} was asked"
    if end is not None and got.end != end:
        return f"a range ending at {got.end} when {end} was asked"
    if end is None and got.total is not None and got.end != got.total - 1:
        return f"a range ending at {got.end}, before the end of the file"
    if known_total is not None and got.total != known_total:
        return f"a total of {got.total} bytes where {known_total} was known"
    return None
