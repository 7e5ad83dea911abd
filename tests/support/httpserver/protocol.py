"""HTTP/1.1 as the server reads it: request heads, headers, ranges, If-Range, codings."""

from __future__ import annotations

import http
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "UNSATISFIABLE",
    "BadRequest",
    "Headers",
    "RecordedRequest",
    "Request",
    "Unsatisfiable",
    "accepts_gzip",
    "if_range_ok",
    "parse_head",
    "parse_range",
    "reason_phrase",
    "split_target",
    "weak_suffix",
]


def reason_phrase(code: int) -> str:
    """The reason phrase of a status code (``Unknown`` for unregistered codes)."""
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


class BadRequest(Exception):
    """A request the server cannot parse: answered with ``code`` and a close."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Request:
    """One parsed request, as the responder sees it."""

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


def parse_head(head: bytes) -> tuple[str, str, str, Headers]:
    try:
        text = head.decode("iso-8859-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
        raise BadRequest(400) from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400)
    method, target, version = parts
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400)
        items.append((name, value.strip()))
    return method, target, version, Headers(items)


def split_target(target: str) -> tuple[str, str]:
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    path, _, query = target.partition("?")
    return path, query


class Unsatisfiable:
    """The type of :data:`UNSATISFIABLE`: a Range no byte of the body satisfies."""


UNSATISFIABLE: Final = Unsatisfiable()


def parse_range(value: str, total: int) -> tuple[int, int] | Unsatisfiable | None:
    """(first, last) inclusive, UNSATISFIABLE, or None to ignore the header."""
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
            return UNSATISFIABLE
        return max(0, total - suffix), total - 1
    first = int(first_s)
    last = int(last_s) if last_s else total - 1
    if last_s and last < first:
        return None
    if first >= total:
        return UNSATISFIABLE
    return first, min(last, total - 1)


def if_range_ok(value: str | None, etag: str | None, last_modified: str | None) -> bool:
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


def accepts_gzip(value: str | None) -> bool:
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


def weak_suffix(etag: str | None, suffix: str) -> str | None:
    if etag is None:
        return None
    if etag.endswith('"'):
        return etag[:-1] + suffix + '"'
    return etag + suffix
