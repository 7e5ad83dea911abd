"""API answers read with bounds: a size cap (after decompression) and a nesting cap.

A service's JSON answer is read into memory whole, so a hostile or broken server could
otherwise exhaust it: an endless body, a small gzip body that inflates to gigabytes, or
``[[[[...]]]]`` deep enough to blow the parser's stack. Each of these becomes a typed
:class:`~ripstream.downloader.exceptions.ResponseMismatchError` naming the (redacted) URL.

Example::

    with session.get(url, stream=True) as response:
        data = read_json(response, url=url, source="http", max_bytes=1 << 20)
"""

from __future__ import annotations

import json
import re
import zlib
from itertools import accumulate
from typing import Any

import requests
import urllib3

from ripstream.downloader.exceptions import ResponseMismatchError
from ripstream.downloader.urls import redact_url

__all__ = [
    "DEFAULT_MAX_API_BYTES",
    "MAX_JSON_DEPTH",
    "deep_field",
    "json_depth",
    "parse_json",
    "read_body",
    "read_json",
]

#: The default cap of one API answer, after decompression.
DEFAULT_MAX_API_BYTES = 32 * 1024 * 1024
#: Deeper JSON than this is refused before it is parsed (real APIs nest a dozen levels).
MAX_JSON_DEPTH = 200
_CHUNK = 64 * 1024
#: zlib's window bits that accept both a gzip and a zlib header.
_GZIP_OR_ZLIB = zlib.MAX_WBITS | 32
_DECODED = frozenset({"gzip", "x-gzip", "deflate"})
_PLAIN = frozenset({"", "identity"})
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"\s*:?|[\[\]{}]')


def _mismatch(text: str, url: str, source: str | None) -> ResponseMismatchError:
    shown = redact_url(url)
    return ResponseMismatchError(f"{shown} {text}", url=shown, source=source)


def read_body(
    response: requests.Response, *, url: str, source: str | None, max_bytes: int
) -> bytes:
    """The body of a streamed ``response``, decompressed (gzip, deflate), at most
    ``max_bytes`` of it.

    Decompression is bounded too: no more than ``max_bytes + 1`` bytes are ever inflated.

    :raises ResponseMismatchError: when the body is larger, its encoding is unknown, or its
        compressed data is corrupt.
    """
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in _PLAIN | _DECODED:
        raise _mismatch(f"sent an answer in an unsupported encoding {encoding!r}", url, source)
    inflater = zlib.decompressobj(_GZIP_OR_ZLIB) if encoding in _DECODED else None
    too_big = f"sent an answer larger than {max_bytes} bytes"
    declared = response.headers.get("Content-Length", "")
    if inflater is None and declared.isdigit() and int(declared) > max_bytes:
        raise _mismatch(too_big, url, source)
    body = bytearray()
    try:
        for chunk in response.raw.stream(_CHUNK, decode_content=False):
            room = max_bytes + 1 - len(body)
            body += inflater.decompress(chunk, room) if inflater is not None else chunk[:room]
            if len(body) > max_bytes:
                raise _mismatch(too_big, url, source)
        if inflater is not None:
            body += inflater.flush(max_bytes + 1 - len(body))
            if not inflater.eof and len(body) <= max_bytes:
                raise _mismatch(f"sent corrupt {encoding} data: it ends early", url, source)
    except zlib.error as exc:
        raise _mismatch(f"sent corrupt {encoding} data: {exc}", url, source) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _mismatch(f"broke off its answer: {exc}", url, source) from exc
    if len(body) > max_bytes:
        raise _mismatch(too_big, url, source)
    return bytes(body)


def json_depth(text: str) -> int:
    """How deeply ``text``'s arrays and objects nest (brackets inside strings do not count).

    Linear and without recursion: the nesting is measured on the brackets alone.
    """
    skeleton = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, skeleton)), default=0)


def deep_field(text: str, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """The dotted keys leading to where ``text`` first nests deeper than ``max_depth``
    (``default_settings.headers``), ``""`` for the top level, or ``None`` when it does not.

    For error messages: it names the field of a config file that is too deep to parse.
    """
    keys: list[str | None] = []
    for match in _TOKEN.finditer(text):
        piece = match.group(0)
        if piece in "[{":
            keys.append(None)
            if len(keys) > max_depth:
                return ".".join(key for key in keys if key)
        elif piece in "]}":
            if keys:
                keys.pop()
        elif piece.endswith(":") and keys:
            keys[-1] = piece[:-1].rstrip()[1:-1]  # as written: this only names the place
    return None


def parse_json(
    data: bytes, *, url: str, source: str | None, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse ``data`` (UTF-8, -16 or -32 JSON), refusing nesting deeper than ``max_depth``.

    :raises ResponseMismatchError: when it is not JSON or nests too deeply.
    """
    try:
        text = data.decode(json.detect_encoding(data))
    except UnicodeDecodeError as exc:
        raise _mismatch("did not return JSON (not UTF-8 text)", url, source) from exc
    if json_depth(text) > max_depth:
        raise _mismatch(f"returned JSON nested deeper than {max_depth} levels", url, source)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _mismatch("did not return JSON", url, source) from exc


def read_json(
    response: requests.Response,
    *,
    url: str,
    source: str | None,
    max_bytes: int = DEFAULT_MAX_API_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """:func:`read_body` then :func:`parse_json`.

    :raises ResponseMismatchError: see both.
    """
    body = read_body(response, url=url, source=source, max_bytes=max_bytes)
    return parse_json(body, url=url, source=source, max_depth=max_depth)
