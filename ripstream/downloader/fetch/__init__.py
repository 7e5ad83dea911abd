"""How bytes arrive: one fetcher per way, picked per content (yt-dlp's ``PROTOCOL_MAP``).

:class:`FetcherRegistry` holds fetchers in order; the first whose ``suitable(content,
settings)`` is true moves the bytes. The default order is inline bytes, ranged segments (when
``segments > 1``), then one plain stream. A new protocol is one class with ``name``,
``suitable`` and ``fetch`` (see :class:`~ripstream.downloader.fetch.job.Fetcher`), added with
:meth:`FetcherRegistry.with_fetcher`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.content import DownloadableContent
from ripstream.downloader.fetch.inline import InlineFetcher
from ripstream.downloader.fetch.job import Fetcher, FetchJob, FetchReporter
from ripstream.downloader.fetch.partfile import PartFile
from ripstream.downloader.fetch.segmented import SegmentedFetcher, plan_segments
from ripstream.downloader.fetch.stream import StreamFetcher
from ripstream.downloader.state import TransferResult

__all__ = [
    "FetchJob",
    "FetchReporter",
    "Fetcher",
    "FetcherRegistry",
    "InlineFetcher",
    "PartFile",
    "SegmentedFetcher",
    "SourceFetcher",
    "StreamFetcher",
    "plan_segments",
]

#: ``(content, part_path, reporter)`` -> what was written, or ``None`` to measure the file
CustomFetch = Callable[[DownloadableContent, Path, FetchReporter], TransferResult | None]


class SourceFetcher:
    """A source's own ``_download_content``: the seed's override point, run as a fetcher."""

    name = "source"

    def __init__(self, fetch: CustomFetch) -> None:
        self._fetch = fetch

    def suitable(self, content: DownloadableContent, settings: DownloadBehaviorSettings) -> bool:
        """Chosen by the engine for sources that override ``_download_content``."""
        return True

    def fetch(self, job: FetchJob) -> TransferResult:
        """Let the source fill the file, then measure (and hash) what it wrote."""
        result = self._fetch(job.content, job.part, job.reporter)
        return result if result is not None else PartFile(job).written()


class FetcherRegistry:
    """Fetchers in the order they are asked. Immutable; thread-safe.

    Example::

        registry = FetcherRegistry.default().with_fetcher(HlsFetcher())
        fetcher = registry.choose(content, settings)
    """

    def __init__(self, fetchers: Sequence[Fetcher]) -> None:
        self.fetchers = tuple(fetchers)

    @classmethod
    def default(cls) -> FetcherRegistry:
        """Inline bytes, then segments (when asked for), then one stream."""
        stream = StreamFetcher()
        return cls([InlineFetcher(), SegmentedFetcher(stream), stream])

    def with_fetcher(self, fetcher: Fetcher) -> FetcherRegistry:
        """A registry that asks ``fetcher`` before every other one."""
        return FetcherRegistry([fetcher, *self.fetchers])

    def choose(self, content: DownloadableContent, settings: DownloadBehaviorSettings) -> Fetcher:
        """The first suitable fetcher; the plain stream when none is."""
        for fetcher in self.fetchers:
            if fetcher.suitable(content, settings):
                return fetcher
        return StreamFetcher()
