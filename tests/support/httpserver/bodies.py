"""What a resource is made of: deterministic bodies, dates and validators."""

from __future__ import annotations

import enum
import hashlib
import random
from email.utils import formatdate
from typing import Final

__all__ = [
    "AUTO",
    "CHANGED_LAST_MODIFIED",
    "FIXED_LAST_MODIFIED",
    "Auto",
    "default_etag",
    "http_date",
    "make_body",
]

FIXED_LAST_MODIFIED: Final = "Wed, 21 Oct 2015 07:28:00 GMT"
"""Default ``Last-Modified`` of every resource."""

CHANGED_LAST_MODIFIED: Final = "Thu, 22 Oct 2015 07:28:00 GMT"
"""Default ``Last-Modified`` of the new body served by :meth:`Fault.body_changes`."""


class Auto(enum.Enum):
    """The type of :data:`AUTO`."""

    AUTO = "auto"


AUTO: Final = Auto.AUTO
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
