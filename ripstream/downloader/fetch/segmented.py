"""Parallel HTTP Range segments of one file, written at their offsets into one ``.part`` file.

A bounded first range tells the total and whether ranges work; the file is then split into
parts. Workers (the download's own thread plus helpers from the manager's bounded segment
pool) each claim an unclaimed part, and a worker with nothing left steals half of the largest
part in progress, so a download finishes even when the pool is busy with other downloads.
Every part must come back as a 206 whose ``Content-Range`` is exactly what was asked.
Anything that shows ranges cannot be trusted (a 200, 403, 416 or 501 to a range, an encoded
body, a mismatched ``Content-Range``) falls back to one plain stream. Progress per part is
checkpointed in the resume sidecar, so parts resume independently.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from dataclasses import dataclass

import requests

from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.content import DownloadableContent
from ripstream.downloader.exceptions import (
    DownloadError,
    IncompleteBodyError,
    ResponseMismatchError,
    StorageError,
)
from ripstream.downloader.fetch.job import FetchJob
from ripstream.downloader.fetch.partfile import CHECKPOINT_SECONDS, PartFile
from ripstream.downloader.fetch.pump import pump
from ripstream.downloader.fetch.stream import StreamFetcher
from ripstream.downloader.files import storage_error
from ripstream.downloader.httperrors import error_for_status, map_request_error
from ripstream.downloader.safefs import open_regular
from ripstream.downloader.state import ResumeState, TransferResult
from ripstream.downloader.wire import check_range, content_length, is_encoded, parse_content_range

__all__ = ["RangesUnusable", "SegmentedFetcher", "plan_segments"]

logger = logging.getLogger(__name__)

_STEAL_MIN = 2 * 1024 * 1024
# small, so the other parts start after one round trip, not after a megabyte at a throttled rate
_PROBE_BYTES = 64 * 1024
_REFUSALS = (403, 416, 501)


class RangesUnusable(Exception):
    """Ranges cannot be used with this server: restart as one plain stream."""


class _Stolen(Exception):
    """The rest of a response belongs to a part another worker has taken over (a steal)."""


def plan_segments(settings: DownloadBehaviorSettings, total: int) -> list[tuple[int, int]]:
    """``(start, end)`` pairs (end exclusive) splitting ``total`` bytes for ``settings``."""
    wanted = min(settings.segments, settings.max_connections_per_host)
    count = max(1, min(wanted, total // settings.min_segment_size))
    size = max(1, -(-total // count))  # an empty file is one empty part, not a zero step
    return [(start, min(total, start + size)) for start in range(0, total, size)] or [(0, 0)]


class SegmentedFetcher:
    """Ranged segments when ``settings.segments > 1``; one stream where ranges fail.
    Thread-safe (all state of an attempt lives in its :class:`_Segments`)."""

    name = "segments"

    def __init__(self, stream: StreamFetcher | None = None) -> None:
        self.stream = stream or StreamFetcher()

    def suitable(self, content: DownloadableContent, settings: DownloadBehaviorSettings) -> bool:
        """When more than one segment is asked for."""
        return settings.segments > 1

    def fetch(self, job: FetchJob) -> TransferResult:
        """One attempt: resume the recorded segments, or probe and split a fresh file."""
        part = PartFile.open(job)
        state = part.state
        try:
            if state is not None and state.segments and state.total is not None:
                if state.validator is None:
                    # nothing proves the parts on disk belong to the file served now
                    raise RangesUnusable(
                        "the server gave no ETag or Last-Modified to resume by"  # pragma: no mutate
                    )
                return _Segments(part, state, None).run()
            if state is None or part.size == 0:
                return self._start(part)
        except RangesUnusable as reason:
            logger.info("%s: %s; downloading as one stream", job.shown_url, reason)
            part.reset()
        return self.stream.fetch_into(PartFile.open(job))

    def _start(self, part: PartFile) -> TransferResult:
        # a bounded first range: it tells the total and whether ranges work, and is read to
        # its end, so the connection is kept and no byte is fetched twice
        job = part.job
        probe = min(job.settings.min_segment_size, _PROBE_BYTES)
        response = _get_range(job, 0, probe - 1)
        status = response.status_code
        if status in _REFUSALS or is_encoded(response):
            content_range = parse_content_range(response.headers.get("Content-Range"))
            response.close()
            if status == 416 and content_range and content_range.total == 0:
                part.preallocate(0)
                job.reporter.set_total(0, 0)
                return part.result(0, 0)
            raise RangesUnusable(
                f"the server answered a range request with HTTP {status}"  # pragma: no mutate
            )
        if status >= 400:
            response.close()
            raise error_for_status(response, job.source)
        if status == 200:
            # ranges ignored: this response already is the whole file, so use it
            logger.info("%s: the server ignores ranges; downloading as one stream", job.shown_url)
            return self.stream.fetch_into(part, response)
        try:
            total = _probe_total(response, probe)
            job.reporter.accept(response)
        except BaseException as exc:
            response.close()
            if isinstance(exc, ResponseMismatchError):  # e.g. a length that cannot be trusted
                raise RangesUnusable(str(exc)) from exc  # pragma: no mutate
            raise
        parts = [[start, end, start] for start, end in plan_segments(job.settings, total)]
        state = ResumeState.from_response(job.key, response, total, parts)
        try:
            part.preallocate(total)
        except DownloadError:
            response.close()
            raise
        part.save(state)
        # the probe's response goes on into the first part, but only for the bytes it announced
        return _Segments(part, state, response, first_end=min(probe, total)).run()


def _get_range(
    job: FetchJob, first: int, last: int, validator: str | None = None
) -> requests.Response:
    """Ask for bytes ``first``-``last`` (inclusive) as they are on the server (identity,
    whatever the content's own headers say), under ``If-Range`` when a validator is known."""
    headers = {**job.headers, "Accept-Encoding": "identity", "Range": f"bytes={first}-{last}"}
    if validator:
        headers["If-Range"] = validator
    return job.session.get(job.url, headers=headers, stream=True, check_status=False)


def _probe_total(response: requests.Response, probe: int) -> int:
    """The file's total from the probe's 206, which must be exactly ``bytes=0-probe-1``."""
    content_range = parse_content_range(response.headers.get("Content-Range"))
    if (
        response.status_code != 206
        or content_range is None
        or content_range.start != 0
        or content_range.total is None
        or content_range.end != min(probe, content_range.total) - 1
        or content_length(response) not in (None, content_range.end + 1)
    ):
        response.close()
        raise RangesUnusable(
            f"the server answered bytes=0-{probe - 1} "  # pragma: no mutate
            f"with HTTP {response.status_code} and "  # pragma: no mutate
            f"Content-Range {response.headers.get('Content-Range')!r}"  # pragma: no mutate
        )
    return content_range.total


@dataclass(slots=True)
class _Segment:
    start: int
    end: int  # exclusive; may shrink when another worker steals the tail
    done: int
    claimed: bool = False

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.done)


class _Segments:
    """The parts of one attempt and the workers filling them."""

    def __init__(
        self,
        part: PartFile,
        state: ResumeState,
        first: requests.Response | None,
        *,
        first_end: int | None = None,
    ) -> None:
        self.first_end = first_end  # exclusive: where the first response's announced bytes end
        self.part = part
        self.job = part.job
        self.state = state
        self.first = first
        assert state.total is not None
        self.total = state.total
        self.segments = [_Segment(s, e, d) for s, e, d in state.segments]
        self.lock = threading.Lock()
        self.abort = threading.Event()
        self.finished = threading.Event()
        self.errors: list[BaseException] = []
        self.last_save = self.job.clock()
        self.saved_at = float("-inf")
        self.fd: int  # the part file, open for writing while the workers run

    def run(self) -> TransferResult:
        if self.part.size != self.total:
            if self.first is not None:
                self.first.close()
            raise RangesUnusable(
                "the partial file does not match its resume state"  # pragma: no mutate
            )
        have = sum(seg.done - seg.start for seg in self.segments)
        if self.first is None and not any(seg.remaining for seg in self.segments):
            self._confirm()  # a sidecar saying "all done" is proven by the server, not trusted
        self.job.reporter.set_total(self.total, have)
        try:  # never through a symlink or a hard link planted at the part's name
            self.fd = open_regular(self.job.part, os.O_WRONLY)
        except StorageError as exc:
            if self.first is not None:
                self.first.close()
            raise StorageError(str(exc), path=exc.path, url=self.job.shown_url) from exc
        try:
            self._work()
            if self.job.settings.fsync and not self.errors:
                os.fsync(self.fd)
        finally:
            try:
                self._checkpoint(force=True)
            finally:
                os.close(self.fd)
        self._raise_first_error()
        if any(seg.remaining for seg in self.segments):
            raise IncompleteBodyError(
                f"{self.job.shown_url}: segments left unfinished",
                url=self.job.shown_url,
                source=self.job.source,
            )
        return self.part.result(self.total, have)

    def _confirm(self) -> None:
        """Ask for the last byte: the answer must be a 206 of the same file and total."""
        if self.total:
            self._request(self.total - 1, self.total).close()

    def _work(self) -> None:
        head: _Segment | None = None
        if self.first is not None:
            head = next((s for s in self.segments if s.start == 0 and s.remaining), None)
            if head is not None:
                head.claimed = True
        unclaimed = sum(1 for s in self.segments if s.remaining and not s.claimed)
        # this thread takes the head (or the first part); helpers take the rest
        helpers = unclaimed - (head is None)
        pool = self.job.pool
        futures = [pool.submit(self._helper) for _ in range(helpers)] if pool else []
        try:
            self._worker(head, self.first)
        finally:
            self.finished.set()  # a helper still waiting for a host slot is not needed
            for future in futures:
                # a helper still queued behind other downloads is not needed any more
                if not future.cancel():
                    future.result()

    def _helper(self) -> None:
        """A segment helper: one more connection, so it takes its own slot on the host."""
        hosts = self.job.hosts
        if hosts is None:
            self._worker()
            return
        limit = self.job.settings.max_per_host
        gate = hosts.slot(self.job.url, limit, cancel=self.job.cancel, give_up=self._done)
        try:
            with gate as taken:
                if taken:
                    self._worker()
        except DownloadError as exc:  # cancelled while waiting
            self.errors.append(exc)
            self.abort.set()

    def _done(self) -> bool:
        return self.finished.is_set() or self.abort.is_set()

    def _claim(self) -> _Segment | None:
        with self.lock:
            for segment in self.segments:
                if not segment.claimed and segment.remaining > 0:
                    segment.claimed = True
                    return segment
            open_segments = [s for s in self.segments if s.remaining > 0]
            victim = max(open_segments, key=lambda s: s.remaining, default=None)
            if victim is None or victim.remaining < 2 * _STEAL_MIN:
                return None
            cut = victim.done + victim.remaining // 2
            fresh = _Segment(cut, victim.end, cut, claimed=True)
            victim.end = cut
            self.segments.append(fresh)
            return fresh

    def _worker(
        self, segment: _Segment | None = None, response: requests.Response | None = None
    ) -> None:
        try:
            segment = segment or self._claim()
            while segment is not None and not self.abort.is_set():
                if segment.remaining > 0:
                    limit = self.first_end if response is not None else None
                    self._fetch(segment, response, limit)
                    response = None
                    self._checkpoint()
                segment = self._claim()
        except BaseException as exc:  # noqa: BLE001 - handed to the joining thread
            self.errors.append(exc)
            self.abort.set()
        finally:
            if response is not None:
                response.close()

    def _request(self, first: int, end: int) -> requests.Response:
        """Ask for ``first`` up to ``end`` (exclusive): the answer must be exactly that range
        of the same version of the file."""
        job = self.job
        last = end - 1
        response = _get_range(job, first, last, self.state.validator)
        status = response.status_code
        if status in (200, *_REFUSALS) or is_encoded(response):
            response.close()
            raise RangesUnusable(
                f"a range request was answered with HTTP {status}"  # pragma: no mutate
            )
        if status >= 400:
            response.close()
            raise error_for_status(response, job.source)
        try:
            check_range(response, first, last, self.total, source=job.source)
        except ResponseMismatchError as exc:
            response.close()
            raise RangesUnusable(str(exc)) from exc  # pragma: no mutate
        if self.state.validator and not self.state.same_representation(response.headers):
            response.close()
            # the file changed on the server: parts of two versions must never be joined
            raise RangesUnusable(
                "a part came from another version of the file"  # pragma: no mutate
            )
        return response

    def _fetch(
        self, segment: _Segment, response: requests.Response | None, limit: int | None = None
    ) -> None:
        """Fill ``segment``; ``response`` (already open) may serve it up to ``limit``."""
        stalls = 0
        while segment.remaining > 0:
            self.job.check_cancel()
            end = segment.end
            if response is None:
                # the end is read once: another worker may shrink it (a steal) while this one
                # waits for the answer, which must be checked against the range asked for
                response = self._request(segment.done, end)
            elif limit is not None:
                end = min(end, limit)  # never past the range that response announced
            before = segment.done

            write = functools.partial(self._write, segment, end)
            # a steal ends this response early: the rest is another worker's to fetch
            with contextlib.suppress(_Stolen), contextlib.closing(response):
                pump(self.job, response, end - segment.done, write, segment.done, tick=self._tick)
            response = None
            stalls = stalls + 1 if segment.done == before else 0
            if stalls >= 3:
                raise IncompleteBodyError(
                    f"{self.job.shown_url}: range {segment.done}-{segment.end - 1} keeps "
                    "coming back empty",
                    url=self.job.shown_url,
                    source=self.job.source,
                    expected=segment.end - segment.done,
                    received=0,
                )

    def _write(self, segment: _Segment, end: int, view: memoryview | bytes, position: int) -> None:
        """Write at ``position``, never past ``end`` nor the segment's (shrinking) end."""
        room = min(segment.end, end) - position
        if room <= 0:
            raise _Stolen  # the bytes from here on belong to a part another worker took
        chunk = view if len(view) <= room else view[:room]
        os.pwrite(self.fd, chunk, position)
        segment.done = position + len(chunk)

    def _tick(self, _now: float, _received: int) -> None:
        self._checkpoint()

    def _checkpoint(self, force: bool = False) -> None:
        """Record each part's progress: read it, sync the file, then write the sidecar, so
        it never claims a byte that is not durable (bytes written meanwhile are not
        claimed: they will be again next time)."""
        with self.lock:
            now = self.job.clock()
            if not force and now - self.last_save < CHECKPOINT_SECONDS:
                return
            self.last_save = now
            progress = [[s.start, s.end, min(s.done, s.end)] for s in self.segments]
        try:
            os.fdatasync(self.fd)
        except OSError as exc:
            raise storage_error(exc, self.job.part, url=self.job.shown_url) from exc
        with self.lock:
            if self.saved_at > now:
                return  # a later snapshot was already written by another worker
            self.saved_at = now
            self.state.segments = progress
            self.part.save(self.state)

    def _raise_first_error(self) -> None:
        if not self.errors:
            return
        first_error = self.errors[0]
        if isinstance(first_error, RangesUnusable | DownloadError):
            raise first_error
        raise map_request_error(
            first_error if isinstance(first_error, Exception) else RuntimeError(str(first_error)),
            self.job.url,
            self.job.source,
        ) from first_error
