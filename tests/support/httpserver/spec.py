"""The kinds of fault and the fields every fault carries (constructors: faults.py)."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from typing import Final, Literal

from .bodies import AUTO, CHANGED_LAST_MODIFIED, Auto

__all__ = ["ChunkBreak", "FaultKind", "FaultSpec", "On"]

On = Literal["any", "range", "full"]
ChunkBreak = Literal["truncated", "bad_size", "no_terminator"]


class FaultKind(enum.StrEnum):
    """What a :class:`Fault` breaks."""

    DROP = "drop"
    STALL = "stall"
    CONTENT_LENGTH_TOO_LARGE = "content_length_too_large"
    CONTENT_LENGTH_TOO_SMALL = "content_length_too_small"
    IGNORE_RANGE = "ignore_range"
    STATUS = "status"
    SHORT_RANGE = "short_range"
    OVERRUN_RANGE = "overrun_range"
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
    IGNORE_IF_RANGE = "ignore_if_range"
    PAUSE = "pause"


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
class FaultSpec:
    """The fields of a :class:`~tests.support.httpserver.faults.Fault`: its constructors'
    parameters, and which requests it matches.
    """

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
    keep_end: bool = False
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
    new_etag: str | Auto | None = AUTO
    new_last_modified: str | None = CHANGED_LAST_MODIFIED
    gate: threading.Event | None = None

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
