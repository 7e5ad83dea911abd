"""A batch of URLs, as the CLI runs it: read the list, resolve each URL, run the queue.

Kept apart from :mod:`ripstream.cli` so that the CLI only parses arguments and prints.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.content import Checksum, DownloadResult
from ripstream.downloader.exceptions import ConfigError, SourceError
from ripstream.downloader.manager import DownloadManager
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.queue import DownloadQueue, DownloadTask
from ripstream.sources import SourceRegistry, load_registry
from ripstream.sources.http import HttpDownloader, validate_http_url

__all__ = ["BatchItem", "build_queue", "parse_items", "read_input_file", "run_batch"]

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


def build_queue(
    items: Iterable[BatchItem], manager: DownloadManager, registry: SourceRegistry
) -> DownloadQueue:
    """Resolve every item into tasks (a source may expand one URL into many).

    Plain http(s) URLs are validated without any network access, so a malformed one stops
    the batch before anything is written.

    :raises DownloadError: the first item that cannot be resolved.
    """
    queue = DownloadQueue()
    for item in items:
        source = _claimant(registry, item.url)
        if source is HttpDownloader:
            validate_http_url(item.url)
        downloader = manager.get_downloader(_source_name(source))
        tasks = downloader.tasks_for_url(item.url)
        for task in tasks:
            if item.checksum is not None and len(tasks) == 1:
                task.checksum = str(item.checksum)
                if task.content is not None:
                    task.content = replace(task.content, checksum=str(item.checksum))
            queue.add_task(task)
    return queue


def run_batch(
    items: list[BatchItem],
    config: DownloadConfig,
    *,
    progress_tracker: ProgressTracker | None = None,
    on_result: Callable[[DownloadTask, DownloadResult], None] | None = None,
    registry: SourceRegistry | None = None,
    on_queue: Callable[[DownloadQueue], None] | None = None,
) -> list[DownloadResult]:
    """Resolve and download ``items`` with ``config``; returns one result per task.

    :raises DownloadError: when an item cannot be resolved (nothing is downloaded then).
    :raises KeyboardInterrupt: after a clean stop.
    """
    registry = registry or load_registry()
    with DownloadManager(
        config, progress_tracker=progress_tracker, factory=lambda name, cfg: registry.get(name)(cfg)
    ) as manager:
        queue = build_queue(items, manager, registry)
        if on_queue is not None:
            on_queue(queue)
        return manager.run(queue, on_result=on_result)


def _claimant(registry: SourceRegistry, url: str) -> type:
    """The source for ``url``; an unclaimed URL is bad input (a ConfigError naming it)."""
    try:
        return registry.for_url(url)
    except SourceError as exc:
        scheme = urlsplit(url).scheme
        if scheme and "://" in url:
            raise ConfigError(f"unsupported URL scheme {scheme!r} in {url!r}; installed sources "
                              f"handle: {', '.join(_patterns(registry))}", field="url",
                              value=url) from exc
        raise ConfigError(f"no installed source handles {url!r}", field="url",
                          value=url) from exc


def _patterns(registry: SourceRegistry) -> list[str]:
    return [pattern for _, source in registry
            for pattern in getattr(source, "url_patterns", ())]


def _source_name(source: type) -> str:
    name = getattr(source, "source_name", None)
    if not isinstance(name, str):
        raise ConfigError(f"{source.__name__} has no source_name", field="source")
    return name
