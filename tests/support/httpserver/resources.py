"""A :class:`Resource` is one path the server serves: body, validators, headers, faults."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .bodies import AUTO, CHANGED_LAST_MODIFIED, Auto, default_etag, make_body
from .faults import Fault, FaultKind

__all__ = ["Plan", "Resource"]


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
        etag: str | Auto | None,
        last_modified: str | None,
        accept_ranges: bool,
        headers: Mapping[str, str],
        faults: Iterable[Fault],
        rate_limit_bps: float | None,
    ) -> None:
        self._lock = lock
        self.path = path
        self.body = body
        self.etag: str | None = default_etag(body) if isinstance(etag, Auto) else etag
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
        etag: str | Auto | None = AUTO,
        last_modified: str | None = CHANGED_LAST_MODIFIED,
    ) -> None:
        """Replace the body (and validators) from the next request on."""
        with self._lock:
            self.body = body
            self.etag = default_etag(body) if isinstance(etag, Auto) else etag
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

    def _select(self, method: str, has_range: bool) -> Plan:
        """Pick (and use up) the faults for one request; snapshot the representation."""
        with self._lock:
            plan = Plan(
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
                            if isinstance(fault.new_etag, Auto)
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
class Plan:
    """What one request gets: a snapshot of the representation and the faults it uses up."""

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
