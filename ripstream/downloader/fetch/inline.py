"""Bytes the source already holds (a generated playlist, a lyrics file): written, not fetched."""

from __future__ import annotations

from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.content import DownloadableContent
from ripstream.downloader.fetch.job import FetchJob
from ripstream.downloader.files import storage_error
from ripstream.downloader.state import TransferResult

__all__ = ["InlineFetcher"]


class InlineFetcher:
    """Writes ``content.data`` into the ``.part`` file. Thread-safe (stateless)."""

    name = "inline"

    def suitable(self, content: DownloadableContent, settings: DownloadBehaviorSettings) -> bool:
        """When the source put the bytes in the content itself."""
        return content.data is not None

    def fetch(self, job: FetchJob) -> TransferResult:
        """Write the bytes (the engine then checks the file, as for every fetch)."""
        data = job.content.data or b""
        try:
            with open(job.part, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise storage_error(exc, job.part) from exc
        job.reporter.set_total(len(data), 0)
        job.reporter(len(data))
        return TransferResult(total=len(data), resumed_from=0, fetched=len(data))
