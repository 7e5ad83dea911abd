"""How a batch runs: on threads, or over worker processes when that is worth it."""

from __future__ import annotations

import os
from typing import TextIO

from ripstream.app.batch import BatchItem
from ripstream.app.cluster import cluster_strategy
from ripstream.app.config import AppConfig
from ripstream.downloader.exceptions import SourceError
from ripstream.downloader.executors import ExecutorStrategy, Processes
from ripstream.downloader.urls import validate_http_url
from ripstream.sources import load_registry
from ripstream.sources.http import HttpDownloader

__all__ = ["MIN_ITEMS_PER_PROCESS", "auto_processes", "choose_strategy"]


#: Below this many URLs per process, starting processes costs more than it saves.
MIN_ITEMS_PER_PROCESS = 50


def auto_processes(items: int, jobs: int, cpus: int | None = None) -> int:
    """How many processes ``--processes 0`` (auto) uses for ``items`` URLs and ``jobs``: one
    per CPU but the parent's (the parent encodes every task, decodes every result and keeps
    the per-host count: on two CPUs, two workers took 2.6x the CPU of threads for 2,000 small
    files and twice the time, so there it stays on threads)."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus - 1, jobs, items // MIN_ITEMS_PER_PROCESS, 8))


def choose_strategy(
    items: list[BatchItem],
    app: AppConfig,
    wanted: int,
    say: TextIO | None,
    *,
    dask: str | None = None,
    max_per_host: int | None = None,
) -> ExecutorStrategy | None:
    """A dask cluster when ``dask`` names one; else worker processes, when asked for or worth
    it; ``None`` for threads. Says why, so the mode never changes silently."""
    if dask is not None:
        return cluster_strategy(items, dask, say, max_per_host=max_per_host)
    jobs = app.download.max_concurrent_downloads
    count = wanted or auto_processes(len(items), jobs)
    if count <= 1:
        return None
    registry = load_registry()
    for item in items:
        try:
            other = registry.for_url(item.url) is not HttpDownloader
        except SourceError:
            return None  # the threaded path reports it as the usual bad input
        if other:
            if wanted and say is not None:
                print(
                    "ripstream: --processes applies to plain http(s) URLs only; "
                    "this list has other sources, so it runs on threads",
                    file=say,
                )
            return None
        validate_http_url(item.url)
    count = min(count, len(items))
    if say is not None:
        why = "as asked" if wanted else f"{len(items)} URLs, -j {jobs}, {os.cpu_count()} CPUs"
        print(f"ripstream: downloading with {count} worker processes ({why})", file=say)
    return Processes(count)
