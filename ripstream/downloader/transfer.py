"""Moving bytes: one stream with resume, throttling and response checks (segments: segments.py).

One :class:`Transfer` fills one ``.part`` file from one URL. Each call of :meth:`Transfer.run`
is one attempt; the retry loop around it lives in :mod:`ripstream.downloader.base`. An
attempt resumes from what the ``.part`` file and its sidecar (see :class:`ResumeState`)
prove is already on disk, checks every response against what was asked (status,
``Content-Range`` start/end/total, body length, encoding), and never writes a byte that was
not asked for.

The hot loop reads straight into one reusable buffer (``readinto``), writes it with one
syscall, and does nothing else per chunk but an event check, a counter update and, only
when asked for, a digest update and a throttle reservation.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import requests
import urllib3

from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.content import Checksum
from ripstream.downloader.exceptions import (
    DownloadCancelledError,
    IncompleteBodyError,
    ResponseMismatchError,
    StallError,
)
from ripstream.downloader.files import atomic_write_text, storage_error
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.segments import RangesUnusable, run_segmented, start_segmented
from ripstream.downloader.session import (
    DownloadSession,
    error_for_status,
    map_request_error,
    redact_url,
)
from ripstream.downloader.state import ResumeState, TransferResult, sidecar_path
from ripstream.downloader.wire import (
    BodyReader,
    ContentRange,
    check_wire_length,
    content_length,
    is_encoded,
    parse_content_range,
)

# ResumeState, TransferResult, sidecar_path, ContentRange and parse_content_range live in
# state.py and wire.py and are re-exported here, where callers look for them
__all__ = [
    "ContentRange",
    "ResumeState",
    "Transfer",
    "TransferResult",
    "parse_content_range",
    "sidecar_path",
]

logger = logging.getLogger(__name__)

_MIN_READ = 16 * 1024
_HASH_BLOCK = 4 * 1024 * 1024
_CHECKPOINT_SECONDS = 1.0
_CHECKPOINT_BYTES = 1024 * 1024


class Transfer:
    """Fills one ``.part`` file from one URL, one attempt per :meth:`run`. Not thread-safe.

    :param key: ``(source, content_id)``, recorded in the resume sidecar.
    :param progress: called with the number of new bytes (negative after a restart).
    :param on_total: called as ``(total, already_on_disk)`` once the size is known.
    :param buckets: bandwidth limits this transfer shares (run-wide and per-download).
    :param checksum: when given, a digest of that algorithm is computed.
    :param on_response: called with the response that starts the body (for its headers).
    """

    def __init__(
        self,
        session: DownloadSession,
        settings: DownloadBehaviorSettings,
        *,
        key: tuple[str, str],
        progress: Callable[[int], None] = lambda n: None,
        on_total: Callable[[int | None, int], None] = lambda total, have: None,
        cancel: threading.Event | None = None,
        buckets: Sequence[TokenBucket] = (),
        checksum: Checksum | None = None,
        on_response: Callable[[requests.Response], None] = lambda response: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.settings = settings
        self.key = key
        self.progress = progress
        self.on_total = on_total
        self.cancel = cancel or threading.Event()
        self.buckets = tuple(buckets)
        self.checksum = checksum
        self.on_response = on_response
        self.clock = clock

    # -- entry point ---

    def run(self, url: str, part: Path, headers: dict[str, str] | None = None) -> TransferResult:
        """One attempt at filling ``part`` from ``url``.

        :raises DownloadError: typed; ``retryable`` ones leave ``part`` ready to resume.
        """
        headers = {**(headers or {}), "Accept-Encoding": "identity"}
        state = self._load_state(part)
        try:
            if state is not None and state.segments and state.total is not None:
                return run_segmented(self, url, part, headers, state, None)
            if self.settings.segments > 1 and (state is None or part_size(part) == 0):
                return start_segmented(self, url, part, headers)
        except RangesUnusable as reason:
            logger.info("%s: %s; downloading as one stream", redact_url(url), reason)
            self._reset(part)
            state = None
        return self._single(url, part, headers, state)

    # -- single stream ---

    def _single(
        self,
        url: str,
        part: Path,
        headers: dict[str, str],
        state: ResumeState | None,
        response: requests.Response | None = None,
    ) -> TransferResult:
        have = part_size(part) if state is not None and state.segments == [] else 0
        validator = state.validator if state is not None else None
        if have and not (self.settings.resume and validator):
            have = 0
        if response is None:
            request_headers = dict(headers)
            if have:
                request_headers["Range"] = f"bytes={have}-"
                request_headers["If-Range"] = validator or ""
            response = self.session.get(
                url, headers=request_headers, stream=True, check_status=False
            )
        with contextlib.closing(response):
            status = response.status_code
            if have and status == 416:
                return self._check_complete(url, part, response, have, state)
            if status >= 400:
                raise error_for_status(response, self.session.source)
            encoded = is_encoded(response)
            if status == 206 and have and encoded:
                self._reset(part)
                self.progress(-have)
                raise ResponseMismatchError(
                    f"{redact_url(url)} sent an encoded partial body; starting over",
                    url=redact_url(url),
                    source=self.session.source,
                    status_code=status,
                )
            if status == 206 and have:
                content_range = self._expect_range(response, have, None, state)
                total = content_range.total
            elif status == 200:
                if have:
                    logger.info(
                        "%s: the server sent the whole file; restarting from 0", redact_url(url)
                    )
                    self.progress(-have)
                have = 0
                total = None if encoded else content_length(response)
            else:
                raise ResponseMismatchError(
                    f"unexpected HTTP {status} for {redact_url(url)}"
                    + (
                        " (asked for the whole file, got a partial answer)" if status == 206 else ""
                    ),
                    url=redact_url(url),
                    source=self.session.source,
                    status_code=status,
                )
            self.on_response(response)
            new_state = ResumeState.from_response(self.key, response, total)
            pending: ResumeState | None = None
            if encoded:
                # a decoded body cannot be checked against ranges: never resume it
                _remove(sidecar_path(part))
            elif self.settings.resume and (have == 0 or state != new_state):
                # written lazily: a file done within the first checkpoint interval never
                # needs one, and an interrupted one gets it on the way out
                pending = new_state
            deadline = self.clock() + _CHECKPOINT_SECONDS

            def checkpoint(now: float, received: int) -> None:
                nonlocal pending
                if pending is not None and (now >= deadline or received >= _CHECKPOINT_BYTES):
                    self._save_state(part, pending)
                    pending = None

            self.on_total(total, have)
            hasher = self._hasher_from_disk(part, have)
            expected = None if total is None else total - have
            try:
                with _open_at(part, have) as handle:
                    received = self._pump(
                        url,
                        part,
                        response,
                        expected,
                        hasher,
                        lambda view, _pos: handle.write(view),
                        have,
                        checkpoint,
                    )
                if expected is not None and received != expected:
                    raise IncompleteBodyError(
                        f"{redact_url(url)} ended after {have + received} of {total} bytes",
                        url=redact_url(url),
                        source=self.session.source,
                        expected=expected,
                        received=received,
                    )
            except BaseException:
                if pending is not None and part_size(part) > 0:
                    self._save_state(part, pending)
                raise
            if encoded:
                check_wire_length(url, response, self.session.source)
            return TransferResult(
                total=have + received,
                resumed_from=have,
                fetched=received,
                digest=hasher.hexdigest() if hasher is not None else None,
            )

    def _check_complete(
        self,
        url: str,
        part: Path,
        response: requests.Response,
        have: int,
        state: ResumeState | None,
    ) -> TransferResult:
        content_range = parse_content_range(response.headers.get("Content-Range"))
        total = content_range.total if content_range else None
        known = state.total if state else None
        if total is not None and total == have and known in (None, have):
            self.on_total(total, have)
            hasher = self._hasher_from_disk(part, have)
            return TransferResult(
                total=have,
                resumed_from=have,
                fetched=0,
                digest=hasher.hexdigest() if hasher else None,
            )
        self._reset(part)
        self.progress(-have)
        raise ResponseMismatchError(
            f"{redact_url(url)} refused to resume at byte {have} (HTTP 416, total "
            f"{total if total is not None else 'unknown'}); starting over",
            url=redact_url(url),
            source=self.session.source,
            status_code=416,
        )

    # -- the hot loop ---

    def _pump(
        self,
        url: str,
        part: Path,
        response: requests.Response,
        expected: int | None,
        hasher: Any,
        write: Callable[[memoryview | bytes, int], object],
        position: int,
        tick: Callable[[float, int], None] | None = None,
    ) -> int:
        """Copy the body into ``write`` until ``expected`` bytes or EOF; returns bytes written."""
        reader = BodyReader(response, self.settings.chunk_size)
        size = min(256 * 1024, reader.capacity)
        received = 0
        floor = self.settings.min_speed
        window_start, window_bytes, throttled = self.clock(), 0, 0.0
        try:
            while expected is None or received < expected:
                if self.cancel.is_set():
                    raise DownloadCancelledError(
                        "download cancelled", url=redact_url(url), source=self.session.source
                    )
                want = size if expected is None else min(size, expected - received)
                started = self.clock()
                chunk = reader.read(want)
                count = len(chunk)
                if not count:
                    break
                try:
                    write(chunk, position + received)
                except OSError as exc:
                    raise storage_error(exc, part, url=redact_url(url)) from exc
                if hasher is not None:
                    hasher.update(chunk)
                received += count
                for bucket in self.buckets:
                    throttled += bucket.acquire(count, cancel=self.cancel)
                self.progress(count)
                now = self.clock()
                if tick is not None:
                    tick(now, received)
                elapsed = now - started
                # adapt the read size: big reads when data flows, small ones when it trickles
                if elapsed < 0.05 and size < reader.capacity:
                    size = min(reader.capacity, size * 2)
                elif elapsed > 0.5 and size > _MIN_READ:
                    size = max(_MIN_READ, size // 2)
                if floor is not None:
                    window_bytes += count
                    span = now - window_start - throttled
                    if span >= self.settings.min_speed_window:
                        if window_bytes / span < floor:
                            raise StallError(
                                f"{redact_url(url)} slowed to {window_bytes / span:.0f} B/s, "
                                f"under the floor of {floor:.0f} B/s",
                                url=redact_url(url),
                                source=self.session.source,
                            )
                        window_start, window_bytes, throttled = now, 0, 0.0
        except (
            OSError,
            http.client.HTTPException,
            urllib3.exceptions.HTTPError,
            requests.RequestException,
            ValueError,
        ) as exc:
            raise map_request_error(exc, url, self.session.source) from exc
        reader.release_if_complete()
        return received

    # -- helpers ---

    def _expect_range(
        self,
        response: requests.Response,
        start: int,
        end: int | None,
        state: ResumeState | None,
        *,
        total: int | None = None,
    ) -> ContentRange:
        header = response.headers.get("Content-Range")
        content_range = parse_content_range(header)
        url = redact_url(response.url)
        known_total = total if total is not None else (state.total if state else None)
        problem = None
        if content_range is None or content_range.start is None:
            problem = f"a 206 with an unusable Content-Range {header!r}"
        elif content_range.start != start:
            problem = f"bytes from {content_range.start} when {start} was asked"
        elif end is not None and content_range.end != end:
            problem = f"a range ending at {content_range.end} when {end} was asked"
        elif (
            end is None
            and content_range.total is not None
            and content_range.end != content_range.total - 1
        ):
            problem = f"a range ending at {content_range.end}, before the end of the file"
        elif known_total is not None and content_range.total != known_total:
            problem = f"a total of {content_range.total} bytes where {known_total} was known"
        if problem is None and content_range is not None and content_range.end is not None:
            length = content_length(response)
            assert content_range.start is not None
            if length is not None and length != content_range.end - content_range.start + 1:
                problem = f"Content-Length {length} that disagrees with Content-Range {header!r}"
        if problem is not None or content_range is None:
            raise ResponseMismatchError(
                f"{url} sent {problem}", url=url, source=self.session.source, status_code=206
            )
        return content_range

    def _hasher_from_disk(self, part: Path, length: int) -> Any:
        if self.checksum is None:
            return None
        hasher = self.checksum.new_hasher()
        if length:
            with open(part, "rb") as handle:
                left = length
                while left:
                    block = handle.read(min(_HASH_BLOCK, left))
                    if not block:
                        break
                    hasher.update(block)
                    left -= len(block)
        return hasher

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise DownloadCancelledError("download cancelled", source=self.session.source)

    def _load_state(self, part: Path) -> ResumeState | None:
        if not self.settings.resume:
            return None
        try:
            state = ResumeState.from_json(sidecar_path(part).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return state if state.matches(*self.key) and part.exists() else None

    def _save_state(self, part: Path, state: ResumeState) -> None:
        if self.settings.resume:
            try:
                atomic_write_text(sidecar_path(part), state.to_json(), fsync=self.settings.fsync)
            except OSError as exc:
                raise storage_error(exc, sidecar_path(part)) from exc

    def _reset(self, part: Path) -> None:
        _remove(sidecar_path(part))
        with contextlib.suppress(FileNotFoundError):
            os.truncate(part, 0)


def part_size(part: Path) -> int:
    """Size of ``part`` in bytes, 0 when it does not exist."""
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _open_at(part: Path, offset: int) -> BinaryIO:
    try:
        if offset:
            handle = open(part, "r+b", buffering=0)  # noqa: SIM115 - returned to a with-block
            handle.truncate(offset)
            handle.seek(offset)
            return handle
        return open(part, "wb", buffering=0)
    except OSError as exc:
        raise storage_error(exc, part) from exc
