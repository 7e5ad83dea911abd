"""What is on the wire: Content-Range parsing, response framing, and the body reader.

Shared by the single-stream and the segmented transfer; nothing here knows about files.
"""

from __future__ import annotations

import http.client
import re
from dataclasses import dataclass

import requests
import urllib3

from ripstream.downloader.exceptions import IncompleteBodyError, ResponseMismatchError
from ripstream.downloader.urls import redact_url

__all__ = [
    "BodyReader",
    "ContentRange",
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
    framing); encoded bodies go through urllib3's decoder.
    """

    def __init__(self, response: requests.Response, capacity: int) -> None:
        self.raw: urllib3.HTTPResponse = response.raw
        self.capacity = capacity
        self.view = memoryview(bytearray(capacity))
        fp = getattr(self.raw, "_fp", None)
        self.fp = fp if isinstance(fp, http.client.HTTPResponse) else None
        self.mode = "decoded"
        if self.fp is not None and not is_encoded(response):
            self.mode = "chunked" if self.fp.chunked else "direct"

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
            if not count or fp.length == 0:
                fp.close()
            return self.view[:count]
        if self.mode == "chunked" and fp is not None:
            return fp.read1(want)
        return self.raw.read(want, decode_content=True)

    def release_if_complete(self) -> None:
        """Give the connection back to the pool when the body was read exactly to its end."""
        fp = self.fp
        if fp is None or not fp.isclosed() or fp.will_close:
            return
        if (self.mode == "direct" and fp.length == 0) or self.mode == "chunked":
            self.raw.release_conn()


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
