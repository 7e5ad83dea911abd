"""The engine: the lifecycle of one download, with its collaborators passed in once.

:meth:`DownloadEngine.run` takes a source (anything shaped like :class:`Source`; every
:class:`~ripstream.downloader.base.BaseDownloader` is one) and a resolved content, and:

1. renders the final path inside the output folder (:meth:`DownloadEngine.target_path`);
2. claims it for this run (:class:`~ripstream.downloader.placement.PathClaims`);
3. decides about a file already there (:func:`~ripstream.downloader.placement.decide_existing`);
4. picks the fetcher for the content (:class:`~ripstream.downloader.fetch.FetcherRegistry`);
5. runs attempts into ``<name>.part`` under the retry policy; a first checksum mismatch is
   one more attempt of that policy, not a recursive call;
6. verifies size and checksum; takes the server's ``Content-Disposition`` name if the
   template allows; lets the source name the file from its bytes (:meth:`Source.final_name`);
7. runs the post-processors (tags) on the verified ``.part`` file;
8. moves it into place atomically without clobbering
   (:func:`~ripstream.downloader.placement.move_into_place`);
9. builds the :class:`DownloadResult` once, from the decisions of the steps.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import requests

from ripstream.downloader.config import DownloadBehaviorSettings, DownloadConfig
from ripstream.downloader.content import Checksum, DownloadableContent, DownloadResult
from ripstream.downloader.exceptions import (
    ChecksumError,
    DownloadCancelledError,
    DownloadError,
    IncompleteBodyError,
)
from ripstream.downloader.executors import SegmentPool
from ripstream.downloader.fetch import (
    CustomFetch,
    Fetcher,
    FetcherRegistry,
    FetchJob,
    PartFile,
    SourceFetcher,
)
from ripstream.downloader.files import (
    filename_from_content_disposition,
    part_path,
    render_template,
    resolve_inside,
    safe_filename,
    storage_error,
)
from ripstream.downloader.outcome import Done, result_of
from ripstream.downloader.placement import (
    Claim,
    FinalName,
    PathClaims,
    Skip,
    WriteTo,
    decide_existing,
    discard_part,
    file_digest,
    move_into_place,
)
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.retry import call_with_retries
from ripstream.downloader.session import DownloadSession
from ripstream.downloader.state import TransferResult
from ripstream.downloader.urls import redact_url

__all__ = [
    "DownloadEngine",
    "EngineServices",
    "PostProcessor",
    "ProgressReporter",
    "Source",
]

logger = logging.getLogger(__name__)


class PostProcessor(Protocol):
    """A last touch to a verified file before it moves into place (tags, a transcode).

    Called with the content, the ``.part`` file (change it in place), the final path it will
    have, and the naming values. Returns a note for the result's ``message``, or ``None``.
    It must not raise for a problem that should not cost the download.
    """

    def __call__(
        self,
        content: DownloadableContent,
        part: Path,
        final: Path,
        values: Mapping[str, Any],
    ) -> str | None: ...


class Source(Protocol):
    """What the engine needs of a source (a :class:`BaseDownloader` is one)."""

    config: DownloadConfig

    @property
    def source_name(self) -> str: ...
    @property
    def settings(self) -> DownloadBehaviorSettings: ...
    @property
    def session(self) -> DownloadSession: ...
    @property
    def naming_template(self) -> str: ...
    @property
    def custom_fetch(self) -> CustomFetch | None: ...
    def naming_values(self, content: DownloadableContent) -> dict[str, Any]: ...
    def request_url(self, content: DownloadableContent) -> str: ...
    def check_response(self, content: DownloadableContent, response: requests.Response) -> None: ...
    def final_name(
        self, content: DownloadableContent, part: Path, path: Path
    ) -> FinalName | None: ...
    def placed(self, content: DownloadableContent, path: Path) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineServices:
    """Everything an engine works with, given once. Frozen; the parts are thread-safe.

    :param cancel: setting it stops every download at its next buffer (``.part`` kept).
    :param claims: final paths being written in this run.
    :param tracker: where progress goes.
    :param bandwidth: the run-wide rate limit, shared by every download.
    :param post_processors: run in order on each verified file (tags, ...).
    :param fetchers: how bytes arrive, chosen per content.
    :param segment_pool: where segment workers run; ``None`` keeps them on the download's
        thread.
    :param sleep: waits between retries; by default a wait on ``cancel`` (so a stop is
        immediate). Tests pass a fake.
    :param clock: monotonic seconds, for throttling, checkpoints and timings.
    """

    cancel: threading.Event = field(default_factory=threading.Event)
    claims: PathClaims = field(default_factory=PathClaims)
    tracker: ProgressTracker = field(default_factory=ProgressTracker)
    bandwidth: TokenBucket | None = None
    post_processors: tuple[PostProcessor, ...] = ()
    fetchers: FetcherRegistry = field(default_factory=FetcherRegistry.default)
    segment_pool: SegmentPool | None = None
    sleep: Callable[[float], Any] | None = None
    clock: Callable[[], float] = time.monotonic


class ProgressReporter:
    """What a fetch reports through: byte counts, the total, and the first response.

    Thread-safe (the tracker is). Call it with a byte count (``progress_callback(len(chunk))``)
    and call :meth:`set_total` once the size is known.
    """

    def __init__(
        self,
        tracker: ProgressTracker,
        download_id: str,
        *,
        check: Callable[[requests.Response], None] = lambda response: None,
        default_fetch: Callable[[DownloadableContent, Path], TransferResult] | None = None,
    ) -> None:
        self.tracker = tracker
        self.download_id = download_id
        self._check = check
        self._default_fetch = default_fetch
        self._disposition: str | None = None

    def __call__(self, delta: int) -> None:
        self.tracker.update(self.download_id, delta)

    def set_total(self, total: int | None, already: int = 0) -> None:
        """Record the total size and the bytes already on disk."""
        self.tracker.set_total(self.download_id, total, already=already)

    def accept(self, response: requests.Response) -> None:
        """Let the source refuse the response, then keep its ``Content-Disposition``."""
        self._check(response)
        self._disposition = response.headers.get("Content-Disposition") or self._disposition

    @property
    def suggested_name(self) -> str | None:
        """The file name the server's ``Content-Disposition`` suggests, if any."""
        return filename_from_content_disposition(self._disposition)

    def fetch_default(self, content: DownloadableContent, part: Path) -> TransferResult:
        """The standard fetch (stream, segments...) of ``content`` into ``part``: what a
        ``_download_content`` override gets from ``super()``."""
        if self._default_fetch is None:
            raise DownloadError("no default fetch is available outside a download")
        return self._default_fetch(content, part)


@dataclass(slots=True)
class _Run:
    """What one :meth:`DownloadEngine.run` has learnt so far (its own, never shared)."""

    path: Path | None = None
    attempts: int = 0
    refetched: bool = False


class DownloadEngine:
    """Runs the lifecycle of downloads. Thread-safe: many threads may :meth:`run` at once.

    Example::

        engine = DownloadEngine(EngineServices(post_processors=(my_tagger,)))
        result = engine.run(source, source.get_download_info("track_1"))
    """

    def __init__(self, services: EngineServices | None = None) -> None:
        self.services = services or EngineServices()
        self._directories: dict[Path, Path] = {}

    def run(
        self,
        source: Source,
        content: DownloadableContent,
        file_path: str | Path | None = None,
    ) -> DownloadResult:
        """Download ``content`` to its final path; see the module docstring for the steps.

        :returns: the result; failures are typed results, never raised.
        """
        started = self.services.clock()
        run = _Run()
        outcome: Skip | Done | DownloadError
        try:
            run.path = self.target_path(source, content, file_path)
            renameable = file_path is None and content.filename is None
            outcome = self._claimed(source, content, run, renameable=renameable)
            source.placed(content, outcome.path)
        except DownloadError as exc:
            outcome = exc
            logger.warning("%s %s: %s", content.source, content.content_id, exc)
        elapsed = self.services.clock() - started
        return result_of(content, outcome, path=run.path, attempts=run.attempts, elapsed=elapsed)

    def target_path(
        self, source: Source, content: DownloadableContent, file_path: str | Path | None = None
    ) -> Path:
        """Where ``content`` will be written: ``file_path``, or the naming template's result.

        A relative path lands under ``download_directory``; nothing from a server or from
        metadata can leave it.

        :raises StorageError: when the path would leave the output folder.
        """
        directory = self._real_directory(source.config.download_directory)
        if file_path is not None:
            path = Path(file_path)
            return path if path.is_absolute() else resolve_inside(directory, path, resolved=True)
        relative = render_template(source.naming_template, source.naming_values(content))
        return resolve_inside(directory, relative, resolved=True)

    def _real_directory(self, directory: Path) -> Path:
        """``directory`` through symlinks, resolved once per engine."""
        real = self._directories.get(directory)
        if real is None:
            real = self._directories[directory] = Path(os.path.realpath(directory))
        return real

    # -- the steps ---

    def _claimed(
        self, source: Source, content: DownloadableContent, run: _Run, *, renameable: bool
    ) -> Skip | Done:
        assert run.path is not None
        claims = self.services.claims
        with Claim(claims, run.path, content.source) as claim:
            decision = decide_existing(
                claim.path, source.settings, self._expected(source, content), claims.snapshot()
            )
            claim.move(decision.path)
            run.path = decision.path
            if isinstance(decision, Skip):
                return decision
            return self._write(source, content, claim, run, renameable=renameable)

    def _write(
        self,
        source: Source,
        content: DownloadableContent,
        claim: Claim,
        run: _Run,
        *,
        renameable: bool,
    ) -> Skip | Done:
        try:
            claim.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, claim.path.parent, url=redact_url(content.url)) from exc
        part = part_path(claim.path)
        download_id = f"{content.source}:{content.content_id}"
        tracker = self.services.tracker
        tracker.start(download_id, content.size, title=content.title)
        success = False
        try:
            reporter = ProgressReporter(
                tracker,
                download_id,
                check=lambda response: source.check_response(content, response),
                default_fetch=lambda what, into: self._standard_fetch(source, what, into, reporter),
            )
            transfer = self._fetch_verified(source, content, part, reporter, run)
            name = reporter.suggested_name if renameable else None
            decision = self._renamed(source, content, claim, name) if name else None
            named = None
            if not isinstance(decision, Skip):
                named = self._final_name(source, content, part, claim)
                if named is not None and named.name != claim.path.name:
                    target = claim.path.with_name(named.name)
                    decision = self._moved(source, content, claim, target)
            run.path = claim.path
            if isinstance(decision, Skip):
                discard_part(part)
                success = True
                return decision
            tagged = self._post_process(source, content, part, claim.path)
            notes = [named.note if named else None, tagged]
            move_into_place(part, claim.path, source.settings)
            success = True
            return Done(claim.path, transfer, "; ".join(filter(None, notes)) or None)
        finally:
            tracker.finish(download_id, success=success)

    def _renamed(
        self, source: Source, content: DownloadableContent, claim: Claim, name: str
    ) -> Skip | WriteTo:
        """The decision for the server's ``Content-Disposition`` name."""
        final = claim.path
        if safe_filename(name) == final.name and source.naming_template == "{filename}":
            return WriteTo(final)
        target = self.target_path(source, replace(content, filename=name))
        return self._moved(source, content, claim, target)

    def _moved(
        self, source: Source, content: DownloadableContent, claim: Claim, target: Path
    ) -> Skip | WriteTo:
        """The decision for a new final path, found after the bytes arrived."""
        if target == claim.path:
            return WriteTo(target)
        claim.move(target)
        decision = decide_existing(
            target,
            source.settings,
            self._expected(source, content),
            self.services.claims.snapshot(),
        )
        claim.move(decision.path)
        return decision

    def _final_name(
        self, source: Source, content: DownloadableContent, part: Path, claim: Claim
    ) -> FinalName | None:
        """The source's name for the verified bytes; a refusal discards them."""
        try:
            named = source.final_name(content, part, claim.path)
        except DownloadError:
            discard_part(part)
            raise
        return None if named is None else replace(named, name=safe_filename(named.name))

    def _post_process(
        self, source: Source, content: DownloadableContent, part: Path, final: Path
    ) -> str | None:
        if not self.services.post_processors:
            return None
        values = source.naming_values(content)
        notes = [
            note
            for step in self.services.post_processors
            if (note := step(content, part, final, values))
        ]
        return "; ".join(notes) or None

    # -- fetching ---

    def _expected(self, source: Source, content: DownloadableContent) -> Checksum | None:
        return content.expected_checksum if source.settings.verify_checksums else None

    def _fetcher(self, source: Source, content: DownloadableContent) -> Fetcher:
        custom = source.custom_fetch
        if custom is not None:
            return SourceFetcher(custom)
        return self.services.fetchers.choose(content, source.settings)

    def _job(
        self, source: Source, content: DownloadableContent, part: Path, reporter: ProgressReporter
    ) -> FetchJob:
        settings = source.settings
        own = TokenBucket(settings.rate_limit) if settings.rate_limit else None
        return FetchJob(
            content=content,
            url=source.request_url(content),
            part=part,
            session=source.session,
            settings=settings,
            reporter=reporter,
            headers=dict(content.headers),
            cancel=self.services.cancel,
            buckets=[bucket for bucket in (self.services.bandwidth, own) if bucket is not None],
            checksum=self._expected(source, content),
            pool=self.services.segment_pool,
            clock=self.services.clock,
        )

    def _standard_fetch(
        self, source: Source, content: DownloadableContent, part: Path, reporter: ProgressReporter
    ) -> TransferResult:
        job = self._job(source, content, part, reporter)
        fetched = self.services.fetchers.choose(content, source.settings).fetch(job)
        return fetched if fetched is not None else PartFile(job).written()

    def _fetch_verified(
        self,
        source: Source,
        content: DownloadableContent,
        part: Path,
        reporter: ProgressReporter,
        run: _Run,
    ) -> TransferResult:
        fetcher = self._fetcher(source, content)

        def attempt() -> TransferResult:
            if self.services.cancel.is_set():
                raise DownloadCancelledError("download cancelled", source=content.source)
            run.attempts += 1
            job = self._job(source, content, part, reporter)
            fetched = fetcher.fetch(job)
            transfer = fetched if fetched is not None else PartFile(job).written()
            return self._verify(content, part, transfer, job.checksum, reporter, run)

        return call_with_retries(
            attempt,
            source.settings,
            sleep=self._sleep,
            describe=f"{content.source} {content.title!r}",
        )

    def _verify(
        self,
        content: DownloadableContent,
        part: Path,
        transfer: TransferResult,
        expected: Checksum | None,
        reporter: ProgressReporter,
        run: _Run,
    ) -> TransferResult:
        """Size and checksum, or the part is discarded and a typed error raised."""
        shown = redact_url(content.url)
        if content.size is not None and transfer.total != content.size:
            discard_part(part)
            raise IncompleteBodyError(
                f"{content.title!r}: got {transfer.total} bytes, the source said {content.size}",
                url=shown,
                source=content.source,
                expected=content.size,
                received=transfer.total,
            )
        if expected is None:
            return transfer
        actual = transfer.digest or file_digest(part, expected)
        if actual != expected.hexdigest:
            discard_part(part)
            reporter(-transfer.total)
            refetch, run.refetched = not run.refetched, True
            again = "fetching the whole file again" if refetch else "still wrong after a refetch"
            raise ChecksumError(
                f"{content.title!r}: {expected.algorithm} is {actual}, expected "
                f"{expected.hexdigest} ({again})",
                url=shown,
                source=content.source,
                algorithm=expected.algorithm,
                expected=expected.hexdigest,
                actual=actual,
                refetch=refetch,
            )
        return replace(transfer, digest=actual)

    def _sleep(self, seconds: float) -> None:
        if self.services.sleep is not None:
            self.services.sleep(seconds)
        elif self.services.cancel.wait(seconds):
            raise DownloadCancelledError("download cancelled while waiting to retry")
