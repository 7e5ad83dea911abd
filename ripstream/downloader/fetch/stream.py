"""One plain stream into the ``.part`` file, resumed with ``Range`` + ``If-Range``.

An attempt resumes from what the ``.part`` file and its sidecar prove is already on disk,
checks every response against what was asked (status, ``Content-Range`` start, end and total,
body length, encoding), and never writes a byte that was not asked for.
"""

from __future__ import annotations

import contextlib
import logging

import requests

from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.content import DownloadableContent
from ripstream.downloader.exceptions import IncompleteBodyError, ResponseMismatchError
from ripstream.downloader.fetch.job import FetchJob
from ripstream.downloader.fetch.partfile import Checkpoint, PartFile
from ripstream.downloader.fetch.pump import pump
from ripstream.downloader.httperrors import error_for_status
from ripstream.downloader.state import ResumeState, TransferResult
from ripstream.downloader.wire import (
    check_range,
    check_wire_length,
    content_length,
    is_encoded,
    parse_content_range,
)

__all__ = ["StreamFetcher"]

logger = logging.getLogger(__name__)


class StreamFetcher:
    """Fetches ``content.url`` as one stream, resuming a proven ``.part`` file. Thread-safe
    (it holds no state; everything of an attempt lives in the job and its :class:`PartFile`).

    Example::

        result = StreamFetcher().fetch(job)
    """

    name = "stream"

    def suitable(self, content: DownloadableContent, settings: DownloadBehaviorSettings) -> bool:
        """Any http(s) content."""
        return True

    def fetch(self, job: FetchJob) -> TransferResult:
        """One attempt; see the module docstring.

        :raises DownloadError: typed; ``retryable`` ones leave the file ready to resume.
        """
        return self.fetch_into(PartFile.open(job))

    def fetch_into(
        self, part: PartFile, response: requests.Response | None = None
    ) -> TransferResult:
        """Fill ``part``; ``response`` is a whole-file answer already in hand (a server that
        ignored a range request), used instead of asking again."""
        job = part.job
        have = part.resumable_bytes if response is None else 0
        if response is None:
            headers = {**job.headers, "Accept-Encoding": "identity"}
            if have:
                assert part.state is not None
                headers["Range"] = f"bytes={have}-"
                headers["If-Range"] = part.state.validator or ""
                # counted before the answer, so that a refused resume takes them back to
                # zero (in a new run nothing counted them yet: the progress went negative)
                job.reporter.set_total(part.state.total, have)
            response = job.session.get(job.url, headers=headers, stream=True, check_status=False)
        with contextlib.closing(response):
            if have and response.status_code == 416:
                return _complete_or_restart(part, response, have)
            have, total = _accept(part, response, have)
            return _write_body(part, response, have, total)


def _accept(part: PartFile, response: requests.Response, have: int) -> tuple[int, int | None]:
    """Check the response against what was asked; returns (bytes kept, total size)."""
    job = part.job
    status = response.status_code
    if status >= 400:
        raise error_for_status(response, job.source)
    encoded = is_encoded(response)
    if status == 206 and have and encoded:
        part.reset()
        job.reporter(-have)
        raise ResponseMismatchError(
            f"{job.shown_url} sent an encoded partial body; starting over",
            url=job.shown_url,
            source=job.source,
            status_code=status,
        )
    if status == 206 and have:
        return have, _resumed_total(part, response, have)
    if status == 200:
        if have:
            # pragma: no mutate start (log text only)
            logger.info("%s: the server sent the whole file; restarting from 0", job.shown_url)
            # pragma: no mutate end
            job.reporter(-have)
        return 0, None if encoded else content_length(response)
    hint = " (asked for the whole file, got a partial answer)" if status == 206 else ""
    raise ResponseMismatchError(
        f"unexpected HTTP {status} for {job.shown_url}{hint}",
        url=job.shown_url,
        source=job.source,
        status_code=status,
    )


def _resumed_total(part: PartFile, response: requests.Response, have: int) -> int | None:
    """The total of a 206 that continues our bytes; anything else restarts the file.

    A server that ignores ``If-Range`` may answer with another version of the file, or a
    range that does not start where ours ends: joining it to the bytes on disk would splice
    two files, so they are thrown away and the next attempt starts from zero.
    """
    job = part.job
    state = part.state
    assert state is not None
    try:
        if not state.same_representation(response.headers):
            raise ResponseMismatchError(
                f"{job.shown_url} answered the resume with another version of the file "
                "(its ETag or Last-Modified changed); starting over",
                url=job.shown_url,
                source=job.source,
                status_code=206,
            )
        return check_range(response, have, None, state.total, source=job.source).total
    except ResponseMismatchError:
        part.reset()
        job.reporter(-have)
        raise


def _write_body(
    part: PartFile, response: requests.Response, have: int, total: int | None
) -> TransferResult:
    job = part.job
    job.reporter.accept(response)
    part.admit(total, have)
    encoded = is_encoded(response)
    state: ResumeState | None = None
    if encoded:
        part.forget()  # a decoded body cannot be checked against ranges: never resume it
    elif job.settings.resume:
        state = ResumeState.from_response(job.key, response, total)
    job.reporter.set_total(total, have)
    expected = None if total is None else total - have
    with part.open_at(have) as handle:
        checkpoint = Checkpoint(part, state, have, handle.fileno())
        try:
            received = pump(
                job,
                response,
                expected,
                lambda view, _position: handle.write(view),
                have,
                tick=checkpoint.tick,
            )
            if expected is not None and received != expected:
                raise IncompleteBodyError(
                    f"{job.shown_url} ended after {have + received} of {total} bytes",
                    url=job.shown_url,
                    source=job.source,
                    expected=expected,
                    received=received,
                )
        except BaseException:
            checkpoint.flush()
            raise
    if encoded:
        check_wire_length(job.url, response, job.source)
    return TransferResult(total=have + received, resumed_from=have, fetched=received)


def _complete_or_restart(part: PartFile, response: requests.Response, have: int) -> TransferResult:
    """A 416 to ``bytes=have-``: the file may already be whole; prove it by the total."""
    job = part.job
    content_range = parse_content_range(response.headers.get("Content-Range"))
    total = content_range.total if content_range else None
    known = part.state.total if part.state else None
    if total is not None and total == have and known in (None, have):
        job.reporter.set_total(total, have)
        return part.result(have, have)
    part.reset()
    job.reporter(-have)
    raise ResponseMismatchError(
        f"{job.shown_url} refused to resume at byte {have} (HTTP 416, total "
        f"{total if total is not None else 'unknown'}); starting over",
        url=job.shown_url,
        source=job.source,
        status_code=416,
    )
