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
   template allows; lets the source name the file from its bytes (``Source.final_name``);
7. runs the post-processors (tags) on the verified ``.part`` file;
8. moves it into place atomically without clobbering
   (:func:`~ripstream.downloader.placement.move_into_place`);
9. builds the :class:`DownloadResult` once, from the decisions of the steps.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ripstream.downloader.content import (
    Checksum,
    DownloadableContent,
    DownloadResult,
)
from ripstream.downloader.exceptions import (
    ChecksumError,
    DownloadCancelledError,
    DownloadError,
    IncompleteBodyError,
)
from ripstream.downloader.fetch import (
    Fetcher,
    FetchJob,
    PartFile,
    SourceFetcher,
)
from ripstream.downloader.files import (
    render_template,
    resolve_inside,
    safe_filename,
)
from ripstream.downloader.outcome import Done, result_of
from ripstream.downloader.placement import (
    Claim,
    FinalName,
    Skip,
    WriteTo,
    decide_existing,
    discard_part,
    file_digest,
    move_into_place,
)
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.retry import call_with_retries, retry_note
from ripstream.downloader.safefs import part_path
from ripstream.downloader.services import (
    EngineServices,
    ProgressReporter,
    Source,
)
from ripstream.downloader.state import TransferResult
from ripstream.downloader.urls import redact_url

__all__ = ["DownloadEngine"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Run:
    """What one :meth:`DownloadEngine.run` has learnt so far (its own, never shared)."""

    path: Path | None = None
    attempts: int = 0
    refetched: bool = False
    values: dict[str, Any] | None = None  # the naming values, once worked out


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
            if file_path is None:
                run.values = source.naming_values(content)
            run.path = self._target(source, file_path, run.values)
            renameable = file_path is None and content.filename is None
            outcome = self._claimed(source, content, run, renameable=renameable)
            source.placed(content, outcome.path)
        except DownloadError as exc:
            outcome = exc
            logger.info("%s %s: %s", content.source, content.content_id, exc)
        except Exception as exc:
            logger.exception("%s %s: unexpected error", content.source, content.content_id)
            outcome = DownloadError(
                f"{content.title!r} failed with an unexpected {type(exc).__name__}: {exc}",
                url=redact_url(content.url),
                source=content.source,
            )
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
        values = None if file_path is not None else source.naming_values(content)
        return self._target(source, file_path, values)

    def _target(
        self, source: Source, file_path: str | Path | None, values: dict[str, Any] | None
    ) -> Path:
        directory = self._real_directory(source.config.download_directory)
        if file_path is not None:
            path = Path(file_path)
            return path if path.is_absolute() else resolve_inside(directory, path, resolved=True)
        assert values is not None
        relative = render_template(source.naming_template, values)
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
        base = self._real_directory(source.config.download_directory)
        with Claim(claims, run.path, content.source, base) as claim:
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
        part = part_path(claim.path, (content.source, content.content_id))
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
                    decision = self._moved(source, content, claim, claim.path.with_name(named.name))
            run.path = claim.path
            if isinstance(decision, Skip):
                discard_part(part)
                success = True
                return decision
            tagged = self._post_process(source, content, part, claim.path, run)
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
        self, source: Source, content: DownloadableContent, part: Path, final: Path, run: _Run
    ) -> str | None:
        if not self.services.post_processors:
            return None
        values = run.values if run.values is not None else source.naming_values(content)
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
            pool=self.services.segment_pool,
            clock=self.services.clock,
            hosts=self.services.hosts,
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
            fetched = self._polite_fetch(fetcher, job)
            transfer = fetched if fetched is not None else PartFile(job).written()
            expected = self._expected(source, content)
            return self._verify(content, part, transfer, expected, reporter, run)

        def on_retry(number: int, error: DownloadError, wait: float) -> None:
            note = retry_note(number, source.settings.max_retries, error, wait)
            self.services.tracker.note(reporter.download_id, note)
            self._retrying(content, number, error, wait)

        return call_with_retries(
            attempt,
            source.settings,
            sleep=self._sleep,
            on_retry=on_retry,
            describe=f"{content.source} {content.title!r}",
        )

    def _polite_fetch(self, fetcher: Fetcher, job: FetchJob) -> TransferResult | None:
        """One attempt, holding one of the host's connection slots (when the run has a
        per-host limit); a 429 or 503 cools the host down for every download."""
        hosts = self.services.hosts
        if hosts is None:
            return fetcher.fetch(job)
        with hosts.slot(job.url, job.settings.max_per_host, cancel=job.cancel):
            try:
                fetched = fetcher.fetch(job)
            except DownloadError as exc:
                hosts.note_error(job.url, exc)
                raise
        hosts.note_success(job.url)
        return fetched

    def _retrying(
        self, content: DownloadableContent, attempt: int, error: DownloadError, wait: float
    ) -> None:
        monitor = self.services.monitor
        if monitor is not None:
            monitor.retry(f"{content.source}:{content.content_id}", attempt, error, wait)

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
        # the digest of the file that will be moved into place, read back from disk: not of
        # the stream, which another writer could have made differ from the file
        actual = file_digest(part, expected)
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
