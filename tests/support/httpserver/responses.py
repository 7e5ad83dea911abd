"""Answering one parsed request: status line, headers, and a body that may misbehave."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .bodies import http_date
from .connection import Connection
from .faults import FaultKind
from .protocol import (
    Request,
    Unsatisfiable,
    accepts_gzip,
    if_range_ok,
    parse_range,
    reason_phrase,
    weak_suffix,
)
from .resources import Plan, Resource
from .writer import BodyWriter

__all__ = ["BOUNDARY", "Responder"]

BOUNDARY: Final = "RIPSTREAM-TEST-BOUNDARY"
"""The boundary of ``multipart/byteranges`` answers."""


class Responder:
    """Writes the answer to each request; thread-safe (it keeps no per-request state).

    :param lookup: the resource served at a path, or ``None``.
    :param wait: sleeps that end early, raising :class:`Stopped`, when the server stops.
    """

    def __init__(
        self, lookup: Callable[[str], Resource | None], wait: Callable[[float], None]
    ) -> None:
        self._lookup = lookup
        self._wait = wait
        self._writer = BodyWriter(wait)

    @staticmethod
    def _head_bytes(version: str, code: int, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"{version} {code} {reason_phrase(code)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def send_simple(
        self,
        conn: Connection,
        code: int,
        *,
        close: bool = False,
        extra: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        head_only: bool = False,
        content_type: str = "text/plain; charset=utf-8",
        version: str = "HTTP/1.1",
    ) -> None:
        if body is None:
            body = f"{code} {reason_phrase(code)}\n".encode()
        if code in (204, 304) or 100 <= code < 200:
            body = b""
        headers = [
            ("Date", http_date()),
            ("Server", "ripstream-testserver"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
        ]
        headers += extra or []
        if close:
            headers.append(("Connection", "close"))
        conn.send(self._head_bytes(version, code, headers) + (b"" if head_only else body))

    def respond(self, conn: Connection, req: Request) -> bool:
        """Answer one request; False when the connection must not be reused."""
        head_only = req.method == "HEAD"
        if req.method not in ("GET", "HEAD"):
            self.send_simple(conn, 405, extra=[("Allow", "GET, HEAD")], close=req.wants_close)
            return True
        resource = self._lookup(req.path)
        if resource is None:
            self.send_simple(conn, 404, head_only=head_only, close=req.wants_close)
            return True

        range_header = req.headers.get("Range")
        plan = resource._select(req.method, range_header is not None)
        version = "HTTP/1.0" if plan.has(FaultKind.HTTP10) else "HTTP/1.1"
        close_after = req.wants_close or version == "HTTP/1.0"

        if plan.has(FaultKind.CLOSE_BEFORE_RESPONSE):
            conn.close()
            return False
        delay = plan.first(FaultKind.DELAY_HEADERS)
        if delay is not None:
            self._wait(delay.seconds)
        garbage = plan.first(FaultKind.GARBAGE_RESPONSE)
        if garbage is not None:
            conn.send(garbage.body or b"")
            conn.close()
            return False

        # Representation (after body changes and content coding).
        body = plan.body
        etag = plan.etag
        gz = plan.first(FaultKind.GZIP)
        encoded = gz is not None and (gz.force or accepts_gzip(req.headers.get("Accept-Encoding")))
        if encoded:
            body = resource._gzipped(body)
            etag = weak_suffix(etag, "-gzip")
        total = len(body)

        status = plan.first(FaultKind.STATUS)
        if status is not None:
            extra = list(status.headers)
            names = {n.lower() for n, _ in extra}
            if status.retry_after is not None:
                extra.append(("Retry-After", status.retry_after))
            if status.code == 416 and "content-range" not in names:
                extra.append(("Content-Range", f"bytes */{total}"))
            if status.code == 405 and "allow" not in names:
                extra.append(("Allow", "GET"))
            if status.code == 401 and "www-authenticate" not in names:
                extra.append(("WWW-Authenticate", 'Basic realm="ripstream-test"'))
            close = close_after or status.close
            self.send_simple(
                conn,
                status.code,
                close=close,
                extra=self._edit_headers(plan, extra),
                body=status.body,
                head_only=head_only,
                content_type=status.content_type,
                version=version,
            )
            return not close
        redirect = plan.first(FaultKind.REDIRECT)
        if redirect is not None:
            self.send_simple(
                conn,
                redirect.code,
                close=close_after,
                head_only=head_only,
                version=version,
                extra=self._edit_headers(plan, [("Location", redirect.location)]),
                body=f"redirecting to {redirect.location}\n".encode(),
            )
            return not close_after

        # Ranges.
        code = 200
        first, last = 0, total - 1
        if (
            range_header is not None
            and plan.accept_ranges
            and not plan.has(FaultKind.IGNORE_RANGE)
            and (
                plan.has(FaultKind.IGNORE_IF_RANGE)
                or if_range_ok(req.headers.get("If-Range"), etag, plan.last_modified)
            )
        ):
            parsed = parse_range(range_header, total)
            if isinstance(parsed, Unsatisfiable):
                self.send_simple(
                    conn,
                    416,
                    close=close_after,
                    head_only=head_only,
                    version=version,
                    extra=self._edit_headers(plan, [("Content-Range", f"bytes */{total}")]),
                )
                return not close_after
            if parsed is not None:
                code = 206
                first, last = parsed

        claimed = (first, last)
        cr_total = str(total)
        multipart = False
        if code == 206:
            wrong_start = plan.first(FaultKind.WRONG_RANGE_START)
            if wrong_start is not None:
                length = last - first + 1
                first = min(max(0, first + (wrong_start.amount or 0)), total - 1)
                if wrong_start.keep_end:
                    last = max(last, first)
                else:
                    last = min(first + length - 1, total - 1)
                if wrong_start.honest:
                    claimed = (first, last)
            short = plan.first(FaultKind.SHORT_RANGE)
            if short is not None:
                length = last - first + 1
                missing = short.amount if short.amount is not None else max(1, length // 2)
                last -= min(max(missing, 0), length)
            wrong_total = plan.first(FaultKind.WRONG_RANGE_TOTAL)
            if wrong_total is not None:
                cr_total = (
                    wrong_total.total
                    if wrong_total.total is not None
                    else str(total + (wrong_total.amount or 0))
                )
            multipart = plan.has(FaultKind.MULTIPART_BYTERANGES)

        payload: bytes | memoryview = memoryview(body)[first : last + 1]
        overrun = plan.first(FaultKind.OVERRUN_RANGE) if code == 206 else None
        if overrun is not None:  # bytes that belong to no range: garbage past the end
            payload = bytes(payload) + b"\xa5" * (overrun.amount or 0)
        content_type = plan.content_type
        content_range = f"bytes {claimed[0]}-{claimed[1]}/{cr_total}"
        if multipart:
            content_type = f"multipart/byteranges; boundary={BOUNDARY}"
            payload = (
                f"--{BOUNDARY}\r\nContent-Type: {plan.content_type}\r\n"
                f"Content-Range: {content_range}\r\n\r\n".encode()
                + bytes(payload)
                + f"\r\n--{BOUNDARY}--\r\n".encode()
            )

        headers: list[tuple[str, str]] = [
            ("Date", http_date()),
            ("Server", "ripstream-testserver"),
            ("Content-Type", content_type),
        ]
        if encoded:
            headers.append(("Content-Encoding", "gzip"))
        if gz is not None:
            headers.append(("Vary", "Accept-Encoding"))
        if plan.accept_ranges:
            headers.append(("Accept-Ranges", "bytes"))
        if etag is not None:
            headers.append(("ETag", etag))
        if plan.last_modified is not None:
            headers.append(("Last-Modified", plan.last_modified))
        if code == 206 and not multipart:
            headers.append(("Content-Range", content_range))

        chunked = plan.first(FaultKind.CHUNKED)
        broken = plan.first(FaultKind.BROKEN_CHUNKED)
        too_large = plan.first(FaultKind.CONTENT_LENGTH_TOO_LARGE)
        too_small = plan.first(FaultKind.CONTENT_LENGTH_TOO_SMALL)
        announce_close = close_after
        if chunked is not None or broken is not None:
            headers.append(("Transfer-Encoding", "chunked"))
            if broken is not None:
                close_after = True
        elif plan.has(FaultKind.NO_CONTENT_LENGTH):
            announce_close = close_after = True
        else:
            length = len(payload)
            if too_large is not None:
                length += too_large.amount or 0
                close_after = True
            if too_small is not None:
                length = max(0, length - (too_small.amount or 0))
                close_after = close_after or too_small.close
            headers.append(("Content-Length", str(length)))
        headers += plan.headers
        if plan.has(FaultKind.CLOSE_AFTER_RESPONSE):
            close_after = True
        if announce_close:
            headers.append(("Connection", "close"))

        conn.send(self._head_bytes(version, code, self._edit_headers(plan, headers)))
        if head_only:
            if close_after:
                conn.close()
            return not close_after

        if broken is not None:
            self._writer.write_broken_chunked(conn, req.path, payload, broken)
            conn.close()
            return False
        drop = plan.first(FaultKind.DROP)
        # a pause is a stall that ends when its gate opens
        stall = plan.first(FaultKind.STALL) or plan.first(FaultKind.PAUSE)
        trickle = plan.first(FaultKind.TRICKLE)
        bps, pace_from = plan.rate, 0
        if trickle is not None:
            bps, pace_from = trickle.bps, trickle.n_bytes or 0
        complete = self._writer.write_body(
            conn,
            req.path,
            payload,
            chunk_size=chunked.chunk_size if chunked is not None else 0,
            drop=drop,
            stall=stall,
            bps=bps,
            pace_from=pace_from,
        )
        if not complete or close_after:
            conn.close()
            return False
        return True

    @staticmethod
    def _edit_headers(plan: Plan, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Apply HEADER / OMIT_HEADER faults to a header list."""
        out = list(headers)
        for fault in plan.faults:
            key = fault.name.lower()
            if fault.kind is FaultKind.OMIT_HEADER:
                out = [(n, v) for n, v in out if n.lower() != key]
            elif fault.kind is FaultKind.HEADER:
                if fault.replace and any(n.lower() == key for n, _ in out):
                    index = next(i for i, (n, _) in enumerate(out) if n.lower() == key)
                    out = [(n, v) for n, v in out if n.lower() != key]
                    out.insert(index, (fault.name, fault.value))
                else:
                    out.append((fault.name, fault.value))
        return out
