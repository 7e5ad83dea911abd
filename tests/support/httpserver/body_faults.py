"""Constructors of the faults that break a body or a range (the rest: faults.py)."""

from __future__ import annotations

import threading
from typing import Literal, Self

from .spec import ChunkBreak, FaultKind, FaultSpec, On

__all__ = ["BodyFaults"]


class BodyFaults(FaultSpec):
    """Faults in the bytes of a response: drops, stalls, lying lengths, framing, ranges."""

    # ----------------------------------------------------------- body faults
    @classmethod
    def drop_after(
        cls,
        n_bytes: int,
        *,
        reset: bool = False,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """Send normal headers, then ``n_bytes`` of body, then close the socket.

        ``reset=True`` closes with SO_LINGER 0 (TCP RST) instead of a FIN.
        """
        return cls(FaultKind.DROP, times, on, method, n_bytes=n_bytes, reset=reset)

    @classmethod
    def stall_after(
        cls,
        n_bytes: int,
        seconds: float,
        *,
        then: Literal["continue", "close"] = "continue",
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """After ``n_bytes`` of body, send nothing for ``seconds``; then go on or close.

        The stall ends early (and the connection closes) when the server stops.
        """
        return cls(
            FaultKind.STALL,
            times,
            on,
            method,
            n_bytes=n_bytes,
            seconds=seconds,
            close=then == "close",
        )

    @classmethod
    def pause_after(
        cls,
        n_bytes: int,
        release: threading.Event,
        *,
        timeout: float = 5.0,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """After ``n_bytes`` of body, send nothing until ``release`` is set, then go on.

        Lets a test act while a download is under way.  The pause ends anyway after
        ``timeout`` seconds, or (closing the connection) when the server stops.
        """
        return cls(
            FaultKind.PAUSE, times, on, method, n_bytes=n_bytes, seconds=timeout, gate=release
        )

    @classmethod
    def trickle(
        cls,
        bps: float,
        *,
        after_bytes: int = 0,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """Send the body at ``bps`` bytes/second (after ``after_bytes`` sent at full speed)."""
        if bps <= 0:
            raise ValueError("bps must be > 0")
        return cls(FaultKind.TRICKLE, times, on, method, bps=bps, n_bytes=after_bytes)

    @classmethod
    def content_length_too_large(
        cls,
        extra: int = 1000,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """Content-Length = real length + ``extra``; send the real body, then close."""
        return cls(FaultKind.CONTENT_LENGTH_TOO_LARGE, times, on, method, amount=extra)

    @classmethod
    def content_length_too_small(
        cls,
        missing: int = 10,
        *,
        close: bool = True,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """Content-Length = real length - ``missing``, but the whole body is written.

        With ``close=False`` the connection stays open, so the extra bytes sit in
        front of the next response on that connection.
        """
        return cls(
            FaultKind.CONTENT_LENGTH_TOO_SMALL, times, on, method, amount=missing, close=close
        )

    @classmethod
    def no_content_length(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Self:
        """No Content-Length; ``Connection: close``; body delimited by closing."""
        return cls(FaultKind.NO_CONTENT_LENGTH, times, on, method)

    @classmethod
    def chunked(
        cls,
        chunk_size: int = 8192,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """Correct ``Transfer-Encoding: chunked`` framing (no Content-Length)."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        return cls(FaultKind.CHUNKED, times, on, method, chunk_size=chunk_size)

    @classmethod
    def broken_chunked(
        cls,
        mode: ChunkBreak = "truncated",
        *,
        after_bytes: int | None = None,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """Chunked framing that breaks after ``after_bytes`` (default: half the body).

        ``"truncated"``: a chunk announces more bytes than are sent, then close.
        ``"bad_size"``: the next chunk-size line is ``zz`` (not hex), then close.
        ``"no_terminator"``: all data chunks, but no final ``0`` chunk, then close.
        """
        if mode not in ("truncated", "bad_size", "no_terminator"):
            raise ValueError(f"unknown broken_chunked mode {mode!r}")
        return cls(FaultKind.BROKEN_CHUNKED, times, on, method, mode=mode, n_bytes=after_bytes)

    @classmethod
    def gzip_encoding(
        cls,
        *,
        force: bool = True,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """Serve the body gzip-compressed with ``Content-Encoding: gzip``.

        ``force=True``: even when the client asked for identity (or nothing).
        ``force=False``: only when ``Accept-Encoding`` allows gzip (proper
        negotiation).  Content-Length, ranges and the ETag (``"...-gzip"``) then
        refer to the compressed bytes.
        """
        return cls(FaultKind.GZIP, times, on, method, force=force)

    # ---------------------------------------------------------- range faults
    @classmethod
    def ignore_range(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Self:
        """Answer a Range request with 200 and the full body."""
        return cls(FaultKind.IGNORE_RANGE, times, on, method)

    @classmethod
    def reject_range(
        cls,
        status: int = 403,
        *,
        times: int | None = None,
        on: On = "range",
        method: str | None = None,
    ) -> Self:
        """Answer requests carrying a Range header with ``status`` (403, 416, ...).

        A 416 carries ``Content-Range: bytes */total``.
        """
        return cls(FaultKind.STATUS, times, on, method, code=status)

    @classmethod
    def short_range(
        cls,
        missing: int | None = None,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """206 whose Content-Range claims the asked a-b but ``missing`` bytes fewer are sent.

        Content-Length matches the bytes actually sent (so the Content-Range is the
        lie).  Default ``missing``: half the range (at least 1 byte).
        """
        return cls(FaultKind.SHORT_RANGE, times, on, method, amount=missing)

    @classmethod
    def overrun_range(
        cls, extra: int, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Self:
        """206 whose body runs on with ``extra`` garbage bytes past the end its Content-Range
        announces (use with :meth:`no_content_length`, or the Content-Length tells)."""
        return cls(FaultKind.OVERRUN_RANGE, times, on, method, amount=extra)

    @classmethod
    def wrong_range_start(
        cls,
        delta: int = -1,
        *,
        honest: bool = True,
        keep_end: bool = False,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """206 for ``start + delta`` instead of the asked start (same length).

        ``honest=True``: Content-Range names the offset actually served.
        ``honest=False``: Content-Range claims the asked range but the bytes come
        from the shifted offset (silent corruption, only a checksum catches it).
        ``keep_end=True``: the range still ends where asked, so only its start is
        wrong: with ``honest=True`` end, total and Content-Length all agree with
        the bytes sent, and a client must compare the start to notice.
        """
        return cls(
            FaultKind.WRONG_RANGE_START,
            times,
            on,
            method,
            amount=delta,
            honest=honest,
            keep_end=keep_end,
        )

    @classmethod
    def ignore_if_range(
        cls, *, times: int | None = None, on: On = "range", method: str | None = None
    ) -> Self:
        """Answer a Range with a 206 even when its If-Range no longer matches (a broken cache).

        The 206 comes from the current body, so after a change its Content-Range
        total (and bytes) are the new file's.
        """
        return cls(FaultKind.IGNORE_IF_RANGE, times, on, method)

    @classmethod
    def wrong_range_total(
        cls,
        delta: int = 1,
        *,
        total: str | None = None,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Self:
        """206 whose Content-Range total is real total + ``delta`` (or literally ``total``)."""
        return cls(FaultKind.WRONG_RANGE_TOTAL, times, on, method, amount=delta, total=total)

    @classmethod
    def multipart_byteranges(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Self:
        """Answer a single range as ``multipart/byteranges`` with one part."""
        return cls(FaultKind.MULTIPART_BYTERANGES, times, on, method)
