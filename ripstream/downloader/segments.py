"""Parallel HTTP Range segments of one file, written at their offsets into one ``.part`` file.

A bounded first range tells the total and whether ranges work; the file is then split into
parts fetched by one thread each, every part checked to come back as a 206 whose
``Content-Range`` is exactly what was asked. A worker that finishes early steals half of the
largest part left. Anything that shows ranges cannot be trusted (a 200, 403, 416 or 501 to a
range, an encoded body, a mismatched ``Content-Range``) raises :class:`RangesUnusable`, and the
transfer falls back to one plain stream. Progress per part is checkpointed in the resume
sidecar, so parts resume independently.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from ripstream.downloader.exceptions import (
    DownloadError,
    IncompleteBodyError,
    ResponseMismatchError,
)
from ripstream.downloader.files import storage_error
from ripstream.downloader.session import error_for_status, map_request_error, redact_url
from ripstream.downloader.state import ResumeState, TransferResult
from ripstream.downloader.wire import content_length, is_encoded, parse_content_range

if TYPE_CHECKING:
    from ripstream.downloader.transfer import Transfer

__all__ = ["RangesUnusable", "plan_segments", "run_segmented", "start_segmented"]

logger = logging.getLogger(__name__)

_CHECKPOINT_SECONDS = 1.0
_STEAL_MIN = 2 * 1024 * 1024
# small, so the other parts start after one round trip, not after a megabyte at a throttled rate
_PROBE_BYTES = 64 * 1024


class RangesUnusable(Exception):
    """Ranges cannot be used with this server: restart as one plain stream."""


@dataclass(slots=True)
class _Segment:
    start: int
    end: int  # exclusive; may shrink when another worker steals the tail
    done: int

    @property
    def remaining(self) -> int:
        return max(0, self.end - self.done)


def start_segmented(
    transfer: Transfer, url: str, part: Path, headers: dict[str, str]
) -> TransferResult:
    # a bounded first range: it tells the total and whether ranges work, and is read to
    # its end, so the connection is kept and no byte is fetched twice
    probe = min(transfer.settings.min_segment_size, _PROBE_BYTES)
    response = transfer.session.get(
        url,
        headers={**headers, "Range": f"bytes=0-{probe - 1}"},
        stream=True,
        check_status=False,
    )
    status = response.status_code
    if status in (403, 416, 501) or is_encoded(response):
        content_range = parse_content_range(response.headers.get("Content-Range"))
        response.close()
        if status == 416 and content_range and content_range.total == 0:
            return _empty(transfer, part)
        raise RangesUnusable(f"the server answered a range request with HTTP {status}")
    if status >= 400:
        response.close()
        raise error_for_status(response, transfer.session.source)
    if status == 200:
        # ranges ignored: this response already is the whole file, so use it
        logger.info("%s: the server ignores ranges; downloading as one stream", redact_url(url))
        return transfer._single(url, part, headers, None, response)
    content_range = parse_content_range(response.headers.get("Content-Range"))
    if (
        status != 206
        or content_range is None
        or content_range.start != 0
        or content_range.total is None
        or content_range.end != min(probe, content_range.total) - 1
        or content_length(response) not in (None, content_range.end + 1)
    ):
        response.close()
        raise RangesUnusable(
            f"the server answered bytes=0-{probe - 1} with HTTP {status} and "
            f"Content-Range {response.headers.get('Content-Range')!r}"
        )
    total = content_range.total
    transfer.on_response(response)
    parts = [[start, end, start] for start, end in plan_segments(transfer, total)]
    state = ResumeState.from_response(transfer.key, response, total, parts)
    try:
        with open(part, "wb") as handle:
            handle.truncate(total)
    except OSError as exc:
        response.close()
        raise storage_error(exc, part, url=redact_url(url)) from exc
    transfer._save_state(part, state)
    return run_segmented(transfer, url, part, headers, state, response)


def plan_segments(transfer: Transfer, total: int) -> list[tuple[int, int]]:
    wanted = min(transfer.settings.segments, transfer.settings.max_connections_per_host)
    count = max(1, min(wanted, total // transfer.settings.min_segment_size))
    size = -(-total // count)
    return [(start, min(total, start + size)) for start in range(0, total, size)] or [(0, 0)]


def run_segmented(
    transfer: Transfer,
    url: str,
    part: Path,
    headers: dict[str, str],
    state: ResumeState,
    first: requests.Response | None,
) -> TransferResult:
    total = state.total
    assert total is not None
    if part.stat().st_size != total:
        if first is not None:
            first.close()
        raise RangesUnusable("the partial file does not match its resume state")
    segments = [_Segment(s, e, d) for s, e, d in state.segments]
    have = sum(seg.done - seg.start for seg in segments)
    transfer.on_total(total, have)
    validator = state.validator
    lock = threading.Lock()
    abort = threading.Event()
    errors: list[BaseException] = []
    last_save = [transfer.clock()]

    def checkpoint(force: bool = False) -> None:
        with lock:
            now = transfer.clock()
            if not force and now - last_save[0] < _CHECKPOINT_SECONDS:
                return
            last_save[0] = now
            state.segments = [[s.start, s.end, min(s.done, s.end)] for s in segments]
        transfer._save_state(part, state)

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
                    _fetch_segment(
                        transfer, url, part, fd, segment, total, headers, validator, response
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
            threading.Thread(target=worker, args=job, daemon=True, name=f"ripstream-segment-{i}")
            for i, job in enumerate(jobs[1:], 1)
        ]
        for thread in threads:
            thread.start()
        if jobs:
            worker(*jobs[0])
        for thread in threads:
            thread.join()
        if transfer.settings.fsync and not errors:
            os.fsync(fd)
    finally:
        os.close(fd)
        checkpoint(force=True)
    if errors:
        first_error = errors[0]
        if isinstance(first_error, RangesUnusable | DownloadError):
            raise first_error
        raise map_request_error(
            first_error if isinstance(first_error, Exception) else RuntimeError(str(first_error)),
            url,
            transfer.session.source,
        ) from first_error
    if any(seg.remaining for seg in segments):
        raise IncompleteBodyError(
            f"{redact_url(url)}: segments left unfinished",
            url=redact_url(url),
            source=transfer.session.source,
        )
    hasher = transfer._hasher_from_disk(part, total)
    return TransferResult(
        total=total,
        resumed_from=have,
        fetched=total - have,
        digest=hasher.hexdigest() if hasher else None,
        segmented=True,
    )


def _fetch_segment(
    transfer: Transfer,
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
        transfer._check_cancel()
        if response is None:
            request_headers = {**headers, "Range": f"bytes={segment.done}-{segment.end - 1}"}
            if validator:
                request_headers["If-Range"] = validator
            response = transfer.session.get(
                url, headers=request_headers, stream=True, check_status=False
            )
            status = response.status_code
            if status in (200, 403, 416, 501) or is_encoded(response):
                response.close()
                raise RangesUnusable(f"a range request was answered with HTTP {status}")
            if status >= 400:
                response.close()
                raise error_for_status(response, transfer.session.source)
            try:
                transfer._expect_range(response, segment.done, segment.end - 1, None, total=total)
            except ResponseMismatchError as exc:
                response.close()
                raise RangesUnusable(str(exc)) from exc
        before = segment.done

        def write(view: memoryview | bytes, position: int) -> None:
            limit = segment.end - position
            if limit <= 0:
                return
            chunk = view if len(view) <= limit else view[:limit]
            os.pwrite(fd, chunk, position)
            segment.done = position + len(chunk)

        with contextlib.closing(response):
            transfer._pump(
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
                    source=transfer.session.source,
                    expected=segment.end - segment.done,
                    received=0,
                )


def _empty(transfer: Transfer, part: Path) -> TransferResult:
    with open(part, "wb"):
        pass
    transfer.on_total(0, 0)
    hasher = transfer._hasher_from_disk(part, 0)
    return TransferResult(
        total=0, resumed_from=0, fetched=0, digest=hasher.hexdigest() if hasher else None
    )
