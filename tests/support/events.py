"""Watching a run from a test: an event sink that remembers, and a wait for a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ripstream.downloader.events import EventKind, RunEvent

__all__ = ["WAIT", "Recorder", "eventually"]

#: the longest a test waits for something that should happen at once
WAIT = 10.0


class Recorder:
    """An event sink that remembers events and wakes tests waiting for one."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: RunEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: EventKind, url: str | None = None) -> list[RunEvent]:
        with self._cond:
            return [e for e in self.events if e.event is kind and (url is None or e.url == url)]

    def wait_for(self, kind: EventKind, count: int = 1, url: str | None = None) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.of(kind, url)) >= count, WAIT), kind


def eventually(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait until ``predicate()`` holds (looked at every 10 ms), or fail naming ``what``.

    For state that nothing announces (a count in another thread); the condition decides,
    never the delay.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
