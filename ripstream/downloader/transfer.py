"""Moving bytes: streaming, resume, HTTP Range segments, throttling, and response checks.

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
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import requests
import urllib3
from dataclasses_json import DataClassJsonMixin

from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.content import Checksum
from ripstream.downloader.exceptions import (
    DownloadCancelledError,
    DownloadError,
    IncompleteBodyError,
    ResponseMismatchError,
    StallError,
)
from ripstream.downloader.files import atomic_write_text, storage_error
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.session import (
    DownloadSession,
    error_for_status,
    map_request_error,
    redact_url,
)

__all__ = [
    "ContentRange",
    "ResumeState",
    "Transfer",
    "TransferResult",
    "parse_content_range",
    "sidecar_path",
]

logger = logging.getLogger(__name__)

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
_MIN_READ = 16 * 1024
_HASH_BLOCK = 4 * 1024 * 1024
_CHECKPOINT_SECONDS = 1.0
_CHECKPOINT_BYTES = 1024 * 1024
_STEAL_MIN = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ContentRange:
    """A parsed ``Content-Range``: ``start``/``end`` inclusive, or ``None`` for ``*/total``."""

    start: int | None
    end: int | None
    total: int | None


def parse_content_range(value: str | None) -> ContentRange | None:
    """Parse ``bytes a-b/total`` (or ``bytes */total``); ``None`` when absent or malformed."""
    if not value:
        return None
    match = _CONTENT_RANGE.match(value)
    if not match:
        return None
    start_s, end_s, total_s = match.groups()
    total = int(total_s) if total_s != "*" else None
    if start_s is None:
        return ContentRange(None, None, total) if total is not None else None
    start, end = int(start_s), int(end_s)
    if end < start or (total is not None and end >= total):
        return None
    return ContentRange(start, end, total)


def sidecar_path(part: Path) -> Path:
    """Where the resume state of ``part`` is kept."""
    return part.with_name(part.name + ".json")


@dataclass(slots=True)
class ResumeState(DataClassJsonMixin):
    """What proves the bytes of a ``.part`` file: written atomically beside it.

    Keyed by source and content id rather than URL, because streaming services hand out signed
    URLs that change between runs. ``segments`` holds ``[start, end, done]`` (end exclusive)
    for a segmented download and is empty for a single stream (the file size is then the
    resume offset).
    """

    source: str
    content_id: str
    etag: str | None = None
    last_modified: str | None = None
    total: int | None = None
    segments: list[list[int]] = field(default_factory=list)
    version: int = 1

    @property
    def validator(self) -> str | None:
        """The ``If-Range`` value: a strong ETag, else Last-Modified, else ``None``."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def matches(self, source: str, content_id: str) -> bool:
        """Whether this state belongs to ``(source, content_id)``."""
        return (self.source, self.content_id, self.version) == (source, content_id, 1)


@dataclass(slots=True)
class TransferResult:
    """What one successful attempt produced."""

    total: int
    resumed_from: int
    fetched: int
    digest: str | None = None
    segmented: bool = False


class _FallBack(Exception):
    """Ranges cannot be used with this server: restart as one plain stream."""


@dataclass(slots=True)
class _Segment:
    start: int
    end: int  # exclusive; may shrink when another worker steals the tail
    done: int

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.done)


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
                return self._segmented(url, part, headers, state, None)
            if self.settings.segments > 1 and (state is None or part_size(part) == 0):
                return self._start_segmented(url, part, headers)
        except _FallBack as reason:
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
            encoded = _is_encoded(response)
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
                total = None if encoded else _content_length(response)
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
            new_state = ResumeState(
                self.key[0],
                self.key[1],
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                total=total,
            )
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
                _check_wire_length(url, response, self.session.source)
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

    # -- segmented ---

    def _start_segmented(self, url: str, part: Path, headers: dict[str, str]) -> TransferResult:
        # a bounded first range: it tells the total and whether ranges work, and is read to
        # its end, so the connection is kept and no byte is fetched twice
        probe = min(self.settings.min_segment_size, self.settings.chunk_size)
        response = self.session.get(
            url,
            headers={**headers, "Range": f"bytes=0-{probe - 1}"},
            stream=True,
            check_status=False,
        )
        status = response.status_code
        if status in (403, 416, 501) or _is_encoded(response):
            content_range = parse_content_range(response.headers.get("Content-Range"))
            response.close()
            if status == 416 and content_range and content_range.total == 0:
                return self._empty(part)
            raise _FallBack(f"the server answered a range request with HTTP {status}")
        if status >= 400:
            response.close()
            raise error_for_status(response, self.session.source)
        if status == 200:
            # ranges ignored: this response already is the whole file, so use it
            logger.info("%s: the server ignores ranges; downloading as one stream", redact_url(url))
            return self._single(url, part, headers, None, response)
        content_range = parse_content_range(response.headers.get("Content-Range"))
        if (
            status != 206
            or content_range is None
            or content_range.start != 0
            or content_range.total is None
            or content_range.end != min(probe, content_range.total) - 1
            or _content_length(response) not in (None, content_range.end + 1)
        ):
            response.close()
            raise _FallBack(
                f"the server answered bytes=0-{probe - 1} with HTTP {status} and "
                f"Content-Range {response.headers.get('Content-Range')!r}"
            )
        total = content_range.total
        self.on_response(response)
        state = ResumeState(
            self.key[0],
            self.key[1],
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            total=total,
            segments=[[s, e, s] for s, e in self._plan(total)],
        )
        try:
            with open(part, "wb") as handle:
                handle.truncate(total)
        except OSError as exc:
            response.close()
            raise storage_error(exc, part, url=redact_url(url)) from exc
        self._save_state(part, state)
        return self._segmented(url, part, headers, state, response)

    def _plan(self, total: int) -> list[tuple[int, int]]:
        wanted = min(self.settings.segments, self.settings.max_connections_per_host)
        count = max(1, min(wanted, total // self.settings.min_segment_size))
        size = -(-total // count)
        return [(start, min(total, start + size)) for start in range(0, total, size)] or [(0, 0)]

    def _segmented(
        self,
        url: str,
        part: Path,
        headers: dict[str, str],
        state: ResumeState,
        first: requests.Response | None,
    ) -> TransferResult:
        total = state.total
        assert total is not None
        if part_size(part) != total:
            if first is not None:
                first.close()
            raise _FallBack("the partial file does not match its resume state")
        segments = [_Segment(s, e, d) for s, e, d in state.segments]
        have = sum(seg.done - seg.start for seg in segments)
        self.on_total(total, have)
        validator = state.validator
        lock = threading.Lock()
        abort = threading.Event()
        errors: list[BaseException] = []
        last_save = [self.clock()]

        def checkpoint(force: bool = False) -> None:
            with lock:
                now = self.clock()
                if not force and now - last_save[0] < _CHECKPOINT_SECONDS:
                    return
                last_save[0] = now
                state.segments = [[s.start, s.end, min(s.done, s.end)] for s in segments]
            self._save_state(part, state)

        def steal() -> _Segment | None:
            with lock:
                open_segments = [s for s in segments if s.remaining > 0]
                victim = max(open_segments, key=lambda s: s.remaining, default=None)
                if victim is None or victim.remaining < 2 * _STEAL_MIN:
                    return None
                cut = victim.done + victim.remaining // 2
                fresh = _Segment(cut, victim.end, cut)
                victim.end = cut
                segments.append(fresh)
                return fresh

        def worker(segment: _Segment | None, response: requests.Response | None) -> None:
            try:
                while segment is not None and not abort.is_set():
                    if segment.remaining > 0:
                        self._fetch_segment(
                            url, part, fd, segment, total, headers, validator, response
                        )
                        response = None
                        checkpoint()
                    segment = steal()
            except BaseException as exc:  # noqa: BLE001 - handed to the joining thread
                errors.append(exc)
                abort.set()
            finally:
                if response is not None:
                    response.close()

        try:
            fd = os.open(part, os.O_WRONLY)
        except OSError as exc:
            if first is not None:
                first.close()
            raise storage_error(exc, part, url=redact_url(url)) from exc
        try:
            pending = [s for s in segments if s.remaining > 0]
            jobs: list[tuple[_Segment | None, requests.Response | None]] = []
            if first is not None:
                head = next((s for s in pending if s.start == 0), None)
                jobs.append((head, first))
                pending = [s for s in pending if s is not head]
            jobs.extend((s, None) for s in pending)
            threads = [
                threading.Thread(
                    target=worker, args=job, daemon=True, name=f"ripstream-segment-{i}"
                )
                for i, job in enumerate(jobs[1:], 1)
            ]
            for thread in threads:
                thread.start()
            if jobs:
                worker(*jobs[0])
            for thread in threads:
                thread.join()
            if self.settings.fsync and not errors:
                os.fsync(fd)
        finally:
            os.close(fd)
            checkpoint(force=True)
        if errors:
            first_error = errors[0]
            if isinstance(first_error, _FallBack | DownloadError):
                raise first_error
            raise map_request_error(
                first_error
                if isinstance(first_error, Exception)
                else RuntimeError(str(first_error)),
                url,
                self.session.source,
            ) from first_error
        if any(seg.remaining for seg in segments):
            raise IncompleteBodyError(
                f"{redact_url(url)}: segments left unfinished",
                url=redact_url(url),
                source=self.session.source,
            )
        hasher = self._hasher_from_disk(part, total)
        return TransferResult(
            total=total,
            resumed_from=have,
            fetched=total - have,
            digest=hasher.hexdigest() if hasher else None,
            segmented=True,
        )

    def _fetch_segment(
        self,
        url: str,
        part: Path,
        fd: int,
        segment: _Segment,
        total: int,
        headers: dict[str, str],
        validator: str | None,
        response: requests.Response | None,
    ) -> None:
        stalls = 0
        while segment.remaining > 0:
            self._check_cancel()
            if response is None:
                request_headers = {**headers, "Range": f"bytes={segment.done}-{segment.end - 1}"}
                if validator:
                    request_headers["If-Range"] = validator
                response = self.session.get(
                    url, headers=request_headers, stream=True, check_status=False
                )
                status = response.status_code
                if status in (200, 403, 416, 501) or _is_encoded(response):
                    response.close()
                    raise _FallBack(f"a range request was answered with HTTP {status}")
                if status >= 400:
                    response.close()
                    raise error_for_status(response, self.session.source)
                try:
                    self._expect_range(response, segment.done, segment.end - 1, None, total=total)
                except ResponseMismatchError as exc:
                    response.close()
                    raise _FallBack(str(exc)) from exc
            before = segment.done

            def write(view: memoryview | bytes, position: int) -> None:
                limit = segment.end - position
                if limit <= 0:
                    return
                chunk = view if len(view) <= limit else view[:limit]
                os.pwrite(fd, chunk, position)
                segment.done = position + len(chunk)

            with contextlib.closing(response):
                self._pump(
                    url, part, response, segment.end - segment.done, None, write, segment.done
                )
            response = None
            if segment.done == before:
                stalls += 1
                if stalls >= 3:
                    raise IncompleteBodyError(
                        f"{redact_url(url)}: range {segment.done}-{segment.end - 1} keeps "
                        "coming back empty",
                        url=redact_url(url),
                        source=self.session.source,
                        expected=segment.end - segment.done,
                        received=0,
                    )

    def _empty(self, part: Path) -> TransferResult:
        with open(part, "wb"):
            pass
        self.on_total(0, 0)
        hasher = self._hasher_from_disk(part, 0)
        return TransferResult(
            total=0, resumed_from=0, fetched=0, digest=hasher.hexdigest() if hasher else None
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
        reader = _BodyReader(response, self.settings.chunk_size)
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
            length = _content_length(response)
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


class _BodyReader:
    """Reads a response body into one reusable buffer.

    The common case (identity encoding, not chunked) reads with ``readinto1`` straight from
    the socket's buffered reader into our buffer: at most one ``recv`` per call, so a slow
    server never blocks a read for long, and no bytes object is allocated per chunk. The
    http.client response's ``length`` is kept in step, so the connection goes back to the
    pool once the body is complete. Chunked bodies use http.client's ``read1`` (it owns the
    framing); encoded bodies go through urllib3's decoder.
    """

    def __init__(self, response: requests.Response, capacity: int) -> None:
        self.raw: urllib3.HTTPResponse = response.raw
        self.capacity = capacity
        self.view = memoryview(bytearray(capacity))
        fp = getattr(self.raw, "_fp", None)
        self.fp = fp if isinstance(fp, http.client.HTTPResponse) else None
        self.mode = "decoded"
        if self.fp is not None and not _is_encoded(response):
            self.mode = "chunked" if self.fp.chunked else "direct"

    def read(self, want: int) -> memoryview | bytes:
        """Up to ``want`` bytes (empty at the end of the body)."""
        fp = self.fp
        if self.mode == "direct" and fp is not None:
            length = fp.length
            if length is not None:
                want = min(want, length)
            stream = fp.fp
            count = stream.readinto1(self.view[:want]) if want and stream is not None else 0
            if length is not None and count:
                fp.length = length - count
            if not count or fp.length == 0:
                fp.close()
            return self.view[:count]
        if self.mode == "chunked" and fp is not None:
            return fp.read1(want)
        return self.raw.read(want, decode_content=True)

    def release_if_complete(self) -> None:
        """Give the connection back to the pool when the body was read exactly to its end."""
        fp = self.fp
        if fp is None or not fp.isclosed() or fp.will_close:
            return
        if (self.mode == "direct" and fp.length == 0) or self.mode == "chunked":
            self.raw.release_conn()


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


def _is_encoded(response: requests.Response) -> bool:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    return encoding not in ("", "identity")


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or "," in value or not value.strip().isdigit():
        return None
    return int(value)


def _check_wire_length(url: str, response: requests.Response, source: str) -> None:
    expected = _content_length(response)
    wire = response.raw.tell()
    if expected is not None and wire != expected:
        raise IncompleteBodyError(
            f"{redact_url(url)} ended after {wire} of {expected} encoded bytes",
            url=redact_url(url),
            source=source,
            expected=expected,
            received=wire,
        )
