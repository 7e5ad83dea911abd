"""A batch of URLs, as the CLI runs it: read the list, resolve each URL, run the queue.

Kept apart from :mod:`ripstream.cli` so that the CLI only parses arguments and prints.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from ripstream.downloader.base import BaseDownloader
from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.content import Checksum, ContentType, DownloadResult, ResultStatus
from ripstream.downloader.exceptions import AuthenticationError, ConfigError, SourceError
from ripstream.downloader.manager import DownloadManager
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.queue import DownloadQueue, DownloadTask
from ripstream.downloader.session import redact_url
from ripstream.journal import BatchJournal
from ripstream.library.archive import DownloadArchive
from ripstream.sources import SourceRegistry, load_registry

__all__ = [
    "Batch",
    "BatchItem",
    "credential_variable",
    "credentials_for",
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


def read_input_file(name: str, stdin: TextIO | None = None) -> list[BatchItem]:
    """Read an input file (``-`` for standard input).

    :raises ConfigError: when it cannot be read or holds a malformed line.
    """
    if name == "-":
        return parse_items((stdin or sys.stdin).read().splitlines(), origin="stdin")
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"input file {name!r} does not exist", field="input-file", value=name
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read input file {name!r}: {exc}", field="input-file", value=name
        ) from exc
    return parse_items(text.splitlines(), origin=name)


def unique_items(items: Iterable[BatchItem]) -> list[BatchItem]:
    """``items`` without repeated URLs (the first wins): one URL is one download."""
    first: dict[str, BatchItem] = {}
    for item in items:
        first.setdefault(item.url, item)
    return list(first.values())


def credential_variable(source: str, key: str) -> str:
    """The environment variable that may hold ``key``, e.g. ``RIPSTREAM_SUBSONIC_PASSWORD``."""
    return "RIPSTREAM_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{source}_{key}").upper()


def credentials_for(
    source: type[BaseDownloader],
    config: DownloadConfig,
    *,
    environ: Mapping[str, str],
    prompt: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """Credentials for ``source``: the config's, then environment variables, then a prompt.

    :param prompt: asks the user for a missing secret (``None`` when nobody can answer).
    :raises AuthenticationError: when a required credential is missing and cannot be asked.
    """
    name = _source_name(source)
    found = dict(config.source_credentials.get(name, {}))
    for key in (*source.required_credentials, "username", "api_key"):
        variable = credential_variable(name, key)
        if key not in found and environ.get(variable):
            found[key] = environ[variable]
    for key in source.required_credentials:
        if key in found or (key == "password" and "api_key" in found):
            continue
        if prompt is None:
            raise AuthenticationError(
                f"the {name} source needs a {key}: set {credential_variable(name, key)}, or "
                f"source_credentials.{name}.{key} in the --config file",
                source=name,
            )
        found[key] = prompt(f"{name} {key}: ")
    return found


@dataclass
class _Origin:
    """The tasks one batch item expanded into, for the journal."""

    url: str
    pending: set[str] = field(default_factory=set)
    files: list[Path] = field(default_factory=list)
    failed: bool = False


class Batch:
    """Resolves a list of items into one queue and runs it. Not thread-safe; one run per object.

    :param journal: where finished URLs are recorded (and skipped on the next run).
    :param archive: the download archive: verified content is skipped next time.
    :param environ: where credentials may come from (``os.environ`` by default).
    :param prompt: asks for a missing secret, or ``None``.
    :param cancel_event: setting it stops the run cleanly, as Ctrl-C does.
    """

    def __init__(
        self,
        config: DownloadConfig,
        *,
        registry: SourceRegistry | None = None,
        progress_tracker: ProgressTracker | None = None,
        journal: BatchJournal | None = None,
        archive: DownloadArchive | None = None,
        environ: Mapping[str, str] | None = None,
        prompt: Callable[[str], str] | None = None,
        cancel_event: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.cancel_event = cancel_event
        self.registry = registry or load_registry()
        self.progress_tracker = progress_tracker
        self.journal = journal
        self.archive = archive
        self.environ = os.environ if environ is None else environ
        self.prompt = prompt
        self._authenticated: set[str] = set()
        self._origins: dict[str, _Origin] = {}

    def build_queue(
        self, items: Iterable[BatchItem], manager: DownloadManager
    ) -> tuple[DownloadQueue, list[DownloadResult]]:
        """Resolve every item into tasks (a source may expand one URL into many).

        Items the journal has as done are not resolved again: they come back as skipped
        results. Plain http(s) URLs are validated without network access, so a malformed one
        stops the batch before anything is written.

        :raises DownloadError: the first item that cannot be resolved.
        """
        queue = DownloadQueue()
        skipped: list[DownloadResult] = []
        for item in unique_items(items):  # the same URL twice is one download
            if self.journal is not None and self.journal.is_done(item.url):
                skipped.append(
                    DownloadResult(
                        content_id=redact_url(item.url) or item.url,
                        source="batch",
                        status=ResultStatus.SKIPPED,
                        url=redact_url(item.url),
                        message="done in an earlier run (state file)",
                    )
                )
                continue
            source = _claimant(self.registry, item.url)  # http URLs are validated offline
            name = _source_name(source)
            downloader = manager.get_downloader(name)
            if name not in self._authenticated:
                credentials = credentials_for(
                    source, self.config, environ=self.environ, prompt=self.prompt
                )
                if credentials or source.required_credentials:
                    downloader.authenticate(credentials)
                self._authenticated.add(name)
            tasks = downloader.tasks_for_url(item.url)
            origin = _Origin(item.url)
            for task in tasks:
                if item.checksum is not None and len(tasks) == 1:
                    task.checksum = str(item.checksum)
                    if task.content is not None:
                        task.content = replace(task.content, checksum=str(item.checksum))
                queue.add_task(task)
                origin.pending.add(task.task_id)
                self._origins[task.task_id] = origin
        return queue, skipped

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
        registry = self.registry
        with DownloadManager(
            self.config,
            progress_tracker=self.progress_tracker,
            factory=lambda name, cfg: registry.get(name)(cfg),
            cancel_event=self.cancel_event,
        ) as manager:
            manager.archive = self.archive
            queue, skipped = self.build_queue(items, manager)
            if on_queue is not None:
                on_queue(queue)

            def finished(task: DownloadTask, result: DownloadResult) -> None:
                self._note(task, result)
                if on_result is not None:
                    on_result(task, result)

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
            return skipped + manager.run(queue, on_result=finished)

    def _note(self, task: DownloadTask, result: DownloadResult) -> None:
        origin = self._origins.get(task.task_id)
        if origin is None:
            return
        origin.pending.discard(task.task_id)
        origin.failed |= not result.is_success
        if result.is_success and result.file_path is not None:
            origin.files.append(result.file_path)
        if not origin.pending and self.journal is not None:
            self.journal.record(origin.url, "failed" if origin.failed else "done", origin.files)


def run_batch(
    items: list[BatchItem],
    config: DownloadConfig,
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


def _source_name(source: type[BaseDownloader]) -> str:
    name = getattr(source, "source_name", None)
    if not isinstance(name, str):
        raise ConfigError(f"{source.__name__} has no source_name", field="source")
    return name
