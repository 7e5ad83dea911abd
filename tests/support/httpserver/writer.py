"""Writing a response body: paced, stalled, paused, dropped, or in (broken) chunks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from .connection import Connection
from .faults import Fault

__all__ = ["PIECE", "BodyWriter"]

PIECE: Final = 256 * 1024
"""The most body bytes handed to one ``send`` call."""


class BodyWriter:
    """Writes bodies as the faults of a request say; thread-safe (it keeps no state).

    :param wait: sleeps that end early, raising :class:`Stopped`, when the server stops.
    """

    def __init__(self, wait: Callable[[float], None]) -> None:
        self._wait = wait

    def write_body(
        self,
        conn: Connection,
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
                self._hold(stall)
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
            end = min(end, pos + (max(1, int(bps / 20)) if paced else PIECE))
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

    def _hold(self, fault: Fault) -> None:
        """Send nothing for ``fault.seconds``, or less once its gate opens; Stopped on stop."""
        gate = fault.gate
        if gate is None:
            self._wait(fault.seconds)
            return
        deadline = time.monotonic() + fault.seconds
        while not gate.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            # in short slices, so that stopping the server ends the pause too
            self._wait(min(0.02, left))

    def write_broken_chunked(
        self, conn: Connection, path: str, payload: bytes | memoryview, fault: Fault
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
