"""A batch of URLs, as the CLI runs it: read the list, resolve each URL, run the queue.

Kept apart from :mod:`ripstream.cli` so that the CLI only parses arguments and prints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, TextIO
from urllib.parse import urlsplit

from ripstream.app.config import AppConfig
from ripstream.app.credentials import credentials_for, source_name_of
from ripstream.app.journal import BatchJournal
from ripstream.app.wiring import post_processors, source_factory
from ripstream.downloader.base import BaseDownloader
from ripstream.downloader.config import DownloadConfig, OverwritePolicy
from ripstream.downloader.content import Checksum, ContentType, DownloadResult, ResultStatus
from ripstream.downloader.events import EventSink
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    DownloadError,
    SourceError,
)
from ripstream.downloader.executors import ExecutorStrategy
from ripstream.downloader.manager import DownloadManager
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.queue import DownloadQueue, DownloadTask
from ripstream.downloader.urls import redact_url
from ripstream.library.archive import ArchiveHook, DownloadArchive
from ripstream.sources import SourceRegistry, load_registry

__all__ = [
    "MAX_INPUT_BYTES",
    "Batch",
    "BatchItem",
    "parse_items",
    "read_input_file",
    "run_batch",
    "unique_items",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One line of work: a URL and, optionally, the checksum its bytes must have."""

    url: str
    checksum: Checksum | None = None


def parse_items(lines: Iterable[str], *, origin: str = "input") -> list[BatchItem]:
    """Parse ``URL [ALGO:HEX]`` lines; blank lines and ``#`` comments are skipped.

    :raises ConfigError: naming the line of a malformed entry.
    """
    items = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        fields = text.split()
        if len(fields) > 2:
            raise ConfigError(
                f"{origin} line {number}: expected 'URL [ALGO:HEX]', got {text!r}",
                field="input",
                value=text,
            )
        try:
            checksum = Checksum.parse(fields[1]) if len(fields) == 2 else None
        except ConfigError as exc:
            raise ConfigError(
                f"{origin} line {number}: {exc}", field="checksum", value=fields[1]
            ) from exc
        items.append(BatchItem(fields[0], checksum))
    return items


#: An input list larger than this is refused (``-i /dev/zero`` must not eat the memory).
MAX_INPUT_BYTES = 64 * 1024 * 1024
_BOM = "\ufeff"


def _read_at_most(handle: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``handle``, read in pieces: one ``read(limit)`` would set
    aside the whole limit (64 MiB) for a file of a few lines."""
    pieces, left = [], limit
    while left > 0:
        piece = handle.read(min(left, 1 << 20))
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def read_input_file(name: str, stdin: TextIO | None = None) -> list[BatchItem]:
    """Read an input file (``-`` for standard input), at most :data:`MAX_INPUT_BYTES`; a
    UTF-8 byte order mark at its start is ignored.

    :raises ConfigError: when it cannot be read, is too large, or holds a malformed line.
    """
    cap = f"larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB: refused"
    if name == "-":
        text = (stdin or sys.stdin).read(MAX_INPUT_BYTES + 1)
        if len(text) > MAX_INPUT_BYTES:
            raise ConfigError(f"the input on stdin is {cap}", field="input-file", value=name)
        return parse_items(text.removeprefix(_BOM).splitlines(), origin="stdin")
    try:
        # a FIFO is fine here (``-i <(cmd)``): it is read like any file, with a bound
        with open(name, "rb") as handle:
            data = _read_at_most(handle, MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise ConfigError(f"input file {name!r} is {cap}", field="input-file", value=name)
        text = data.decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"input file {name!r} does not exist", field="input-file", value=name
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read input file {name!r}: {exc.strerror}", field="input-file", value=name
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"input file {name!r} is not UTF-8 text (byte {exc.start})",
            field="input-file",
            value=name,
        ) from exc
    return parse_items(text.splitlines(), origin=name)


def unique_items(items: Iterable[BatchItem]) -> list[BatchItem]:
    """``items`` without repeated URLs (the first wins): one URL is one download."""
    first: dict[str, BatchItem] = {}
    for item in items:
        first.setdefault(item.url, item)
    return list(first.values())


@dataclass(slots=True)
class _Origin:
    """The tasks one batch item expanded into, for the journal: how many have not finished
    (each finishes once: :meth:`Batch._note` forgets a task as it notes it)."""

    url: str
    pending: int = 0
    files: list[Path] = field(default_factory=list)
    failed: bool = False


class Batch:
    """Resolves a list of items into one queue and runs it through a :class:`DownloadManager`.
    Not thread-safe; one run per object.

    :param config: the application config (a bare :class:`DownloadConfig` is wrapped).
    :param journal: where finished URLs are recorded (and skipped on the next run).
    :param archive: the download archive: verified content is skipped next time.
    :param environ: where credentials may come from (``os.environ`` by default).
    :param prompt: asks for a missing secret, or ``None``.
    :param cancel_event: setting it stops the run cleanly, as Ctrl-C does.
    :param executor: what runs the downloads (threads by default; ``Processes(n)``).
    :param force: fetch everything again, whatever the journal and the archive say (also
        implied by the ``overwrite`` policy: the user asked for the server's bytes).
    :param events: event sinks of the run (``--events``, metrics).
    """

    def __init__(
        self,
        config: AppConfig | DownloadConfig,
        *,
        registry: SourceRegistry | None = None,
        progress_tracker: ProgressTracker | None = None,
        journal: BatchJournal | None = None,
        archive: DownloadArchive | None = None,
        environ: Mapping[str, str] | None = None,
        prompt: Callable[[str], str] | None = None,
        cancel_event: threading.Event | None = None,
        executor: ExecutorStrategy | None = None,
        force: bool = False,
        events: Sequence[EventSink] = (),
    ) -> None:
        self.events = tuple(events)
        self.app = config if isinstance(config, AppConfig) else AppConfig(download=config)
        self.config = self.app.download
        self.cancel_event = cancel_event
        self.registry = registry
        self.progress_tracker = progress_tracker
        self.journal = journal
        self.archive = archive
        self.environ = os.environ if environ is None else environ
        self.prompt = prompt
        self.executor = executor
        self.force = force or self.config.default_settings.overwrite is OverwritePolicy.OVERWRITE
        self._origins: dict[str, _Origin] = {}
        self._sources: dict[str, BaseDownloader] = {}

    def manager(self) -> DownloadManager:
        """The manager this batch runs on: the app's sources, tags and archive plugged in."""
        return DownloadManager(
            self.config,
            factory=source_factory(self.app, self.registry),
            progress_tracker=self.progress_tracker,
            cancel_event=self.cancel_event,
            executor=self.executor,
            post_processors=post_processors(self.app),
            hooks=[self._archive_hook(self.archive)] if self.archive is not None else [],
            events=self.events,
        )

    def _archive_hook(self, archive: DownloadArchive) -> ArchiveHook:
        """The archive skips only content of sources with stable ids (a plain URL's bytes may
        change, and a deleted file must come back)."""
        registry = self.registry or load_registry()

        def stable(source_name: str) -> bool:
            try:
                return bool(registry.get(source_name).stable_ids)
            except SourceError:
                return False

        return ArchiveHook(archive, skips=stable, force=self.force, hint="--force fetches it again")

    def build_queue(
        self, items: Iterable[BatchItem], manager: DownloadManager
    ) -> tuple[DownloadQueue, list[DownloadResult]]:
        """Resolve every item into tasks (a source may expand one URL into many).

        Items the journal has as done are not resolved again: they come back as skipped
        results. Plain http(s) URLs are validated without network access, so a malformed one
        stops the batch before anything is written. Each source is built and logged in once
        (asking for a missing secret if it can) and registered with ``manager``.

        An item whose source cannot resolve it (the server is down, the album is gone, a
        plugin's bug) becomes that item's failed result, and the others go on; bad input (a
        malformed URL, missing credentials) stops the batch before anything is written.

        :raises ConfigError: for an item that is bad input.
        :raises AuthenticationError: when a source needs credentials nobody gave.
        """
        queue = DownloadQueue()
        skipped: list[DownloadResult] = []
        registry = self.registry or load_registry()
        for item in unique_items(items):  # the same URL twice is one download
            if not self.force and self.journal is not None and self.journal.is_done(item.url):
                skipped.append(_journal_skip(item))
                continue
            kind = _claimant(registry, item.url)
            try:
                tasks = self._source(kind, manager).tasks_for_url(item.url)
            except (ConfigError, AuthenticationError):
                raise
            except Exception as exc:  # noqa: BLE001 - one item's failure is that item's result
                skipped.append(self._unresolved(item, source_name_of(kind), exc))
                continue
            origin = _Origin(item.url)
            for task in tasks:
                if item.checksum is not None and len(tasks) == 1:
                    task.checksum = str(item.checksum)
                    if task.content is not None:
                        task.content = replace(task.content, checksum=str(item.checksum))
                queue.add_task(task)
                origin.pending += 1
                self._origins[task.task_id] = origin
        return queue, skipped

    def _unresolved(self, item: BatchItem, source: str, exc: Exception) -> DownloadResult:
        """The failed result of an item its source could not resolve (and its journal line)."""
        error = (
            exc
            if isinstance(exc, DownloadError)
            else DownloadError(f"{type(exc).__name__}: {exc}", url=redact_url(item.url))
        )
        logger.info("cannot resolve %s: %s", redact_url(item.url), error)
        if self.journal is not None:
            self.journal.record(item.url, "failed", [])
        return DownloadResult(
            content_id=redact_url(item.url) or item.url,
            source=source,
            status=ResultStatus.FAILED,
            url=redact_url(item.url),
            error=error,
        )

    def _source(self, kind: type[BaseDownloader], manager: DownloadManager) -> BaseDownloader:
        """The source of ``kind``, built and logged in once per batch."""
        name = source_name_of(kind)
        source = self._sources.get(name)
        if source is None:
            source = kind(self.config)
            self._sources[name] = source
            credentials = credentials_for(kind, self.app, environ=self.environ, prompt=self.prompt)
            if credentials or kind.required_credentials:
                source.authenticate(credentials)
            manager.register(source)
        return source

    def run(
        self,
        items: list[BatchItem],
        *,
        on_result: Callable[[DownloadTask, DownloadResult], None] | None = None,
        on_queue: Callable[[DownloadQueue], None] | None = None,
    ) -> list[DownloadResult]:
        """Resolve and download ``items``; returns one result per task (and per skipped item).

        :raises DownloadError: when an item cannot be resolved (nothing is downloaded then).
        :raises KeyboardInterrupt: after a clean stop.
        """
        with contextlib.ExitStack() as stack:
            manager = stack.enter_context(self.manager())
            stack.callback(self._close_sources)
            queue, skipped = self.build_queue(items, manager)
            if on_result is not None:
                for result in skipped:  # reported like every other result (--json, summary)
                    shown = result.url or result.content_id
                    on_result(
                        DownloadTask(
                            content_id=result.content_id,
                            content_type=ContentType.FILE,
                            source="batch",
                            title=shown,
                            url=shown,
                        ),
                        result,
                    )
            if on_queue is not None:
                on_queue(queue)

            def finished(task: DownloadTask, result: DownloadResult) -> None:
                self._note(task, result)
                if on_result is not None:
                    on_result(task, result)

            return skipped + manager.run(queue, on_result=finished)

    def _close_sources(self) -> None:
        sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            source.close()

    def _note(self, task: DownloadTask, result: DownloadResult) -> None:
        origin = self._origins.pop(task.task_id, None)  # a finished task is not held
        if origin is None:
            return
        origin.pending -= 1
        origin.failed |= not result.is_success
        if result.is_success and result.file_path is not None:
            origin.files.append(result.file_path)
        if origin.pending == 0 and self.journal is not None:
            self.journal.record(origin.url, "failed" if origin.failed else "done", origin.files)


def run_batch(
    items: list[BatchItem],
    config: AppConfig | DownloadConfig,
    *,
    progress_tracker: ProgressTracker | None = None,
    on_result: Callable[[DownloadTask, DownloadResult], None] | None = None,
    registry: SourceRegistry | None = None,
    on_queue: Callable[[DownloadQueue], None] | None = None,
) -> list[DownloadResult]:
    """Resolve and download ``items`` with ``config`` (no journal, no archive, no prompts).

    :raises DownloadError: when an item cannot be resolved (nothing is downloaded then).
    :raises KeyboardInterrupt: after a clean stop.
    """
    batch = Batch(config, registry=registry, progress_tracker=progress_tracker)
    return batch.run(items, on_result=on_result, on_queue=on_queue)


def _journal_skip(item: BatchItem) -> DownloadResult:
    return DownloadResult(
        content_id=redact_url(item.url) or item.url,
        source="batch",
        status=ResultStatus.SKIPPED,
        url=redact_url(item.url),
        message="done in an earlier run and still on disk (state file; --force fetches it again)",
    )


def _claimant(registry: SourceRegistry, url: str) -> type[BaseDownloader]:
    """The source for ``url``; an unclaimed URL is bad input (a ConfigError naming it)."""
    try:
        return registry.for_url(url)
    except SourceError as exc:
        scheme = urlsplit(url).scheme
        if scheme and "://" in url:
            raise ConfigError(
                f"unsupported URL scheme {scheme!r} in {url!r}; installed sources "
                f"handle: {', '.join(_patterns(registry))}",
                field="url",
                value=url,
            ) from exc
        raise ConfigError(f"no installed source handles {url!r}", field="url", value=url) from exc


def _patterns(registry: SourceRegistry) -> list[str]:
    return [pattern for _, source in registry for pattern in getattr(source, "url_patterns", ())]
