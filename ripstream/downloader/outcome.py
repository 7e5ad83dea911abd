"""How one download ended, and the one place its :class:`DownloadResult` is made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ripstream.downloader.content import DownloadableContent, DownloadResult, ResultStatus
from ripstream.downloader.exceptions import DownloadCancelledError, DownloadError
from ripstream.downloader.placement import Skip
from ripstream.downloader.state import TransferResult
from ripstream.downloader.urls import redact_url

__all__ = ["Done", "result_of"]


@dataclass(slots=True)
class Done:
    """A file written to ``path``; ``message`` gathers the notes of the steps."""

    path: Path
    transfer: TransferResult
    message: str | None


def result_of(
    content: DownloadableContent,
    outcome: Skip | Done | DownloadError,
    *,
    path: Path | None,
    attempts: int,
    elapsed: float,
) -> DownloadResult:
    """The result of ``outcome``; ``path`` is where a failed download was going."""
    common: dict[str, Any] = {
        "content_id": content.content_id,
        "source": content.source,
        "url": redact_url(content.url),
        "attempts": attempts,
        "elapsed": elapsed,
    }
    if isinstance(outcome, Skip):
        return DownloadResult(
            status=ResultStatus.SKIPPED,
            file_path=outcome.path,
            message=outcome.reason,
            total_bytes=outcome.size,
            **common,
        )
    if isinstance(outcome, Done):
        transfer = outcome.transfer
        return DownloadResult(
            status=ResultStatus.COMPLETED,
            file_path=outcome.path,
            bytes_downloaded=transfer.fetched,
            total_bytes=transfer.total,
            resumed_from=transfer.resumed_from,
            checksum=transfer.digest,
            message=outcome.message,
            **common,
        )
    cancelled = isinstance(outcome, DownloadCancelledError)
    return DownloadResult(
        status=ResultStatus.CANCELLED if cancelled else ResultStatus.FAILED,
        file_path=path,
        error=outcome,
        **common,
    )
