"""What is downloaded and what came of it: ContentType, DownloadableContent, DownloadResult."""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataclasses_json import DataClassJsonMixin

from ripstream.downloader.exceptions import ConfigError, DownloadError

__all__ = [
    "Checksum",
    "ContentType",
    "DownloadResult",
    "DownloadableContent",
    "ResultStatus",
]

#: Digest algorithms accepted in ``ALGO:HEX`` checksums, with their hex lengths.
CHECKSUM_ALGORITHMS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")


class ContentType(enum.Enum):
    """The kind of thing a source offers."""

    TRACK = "track"
    ALBUM = "album"
    PLAYLIST = "playlist"
    ARTIST = "artist"
    COVER = "cover"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Checksum:
    """An expected digest, parsed from ``ALGO:HEX`` (for example ``sha256:9f86d0...``).

    Example::

        >>> Checksum.parse("md5:d41d8cd98f00b204e9800998ecf8427e").algorithm
        'md5'
    """

    algorithm: str
    hexdigest: str

    def __post_init__(self) -> None:
        length = CHECKSUM_ALGORITHMS.get(self.algorithm)
        if length is None:
            raise ConfigError(
                f"checksum algorithm {self.algorithm!r} is not one of "
                f"{', '.join(CHECKSUM_ALGORITHMS)}",
                field="checksum",
                value=self.algorithm,
            )
        if len(self.hexdigest) != length or not _HEX.fullmatch(self.hexdigest):
            raise ConfigError(
                f"checksum {self.hexdigest!r} is not {length} hex digits as {self.algorithm} needs",
                field="checksum",
                value=self.hexdigest,
            )
        object.__setattr__(self, "hexdigest", self.hexdigest.lower())

    @classmethod
    def parse(cls, text: str) -> Checksum:
        """Parse ``ALGO:HEX``.

        :raises ConfigError: when the text is not of that form or the algorithm is unknown.
        """
        algorithm, sep, digest = text.strip().partition(":")
        if not sep:
            raise ConfigError(
                f"checksum {text!r} must be written ALGO:HEX, e.g. sha256:<64 hex digits>",
                field="checksum",
                value=text,
            )
        return cls(algorithm.lower(), digest)

    def new_hasher(self) -> Any:
        """A fresh hashlib object for this algorithm."""
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


@dataclass(slots=True)
class DownloadableContent(DataClassJsonMixin):
    """One downloadable thing, as a source resolved it.

    Only ``content_id``, ``content_type``, ``source``, ``title`` and ``url`` are required; the
    rest improves naming, verification and tagging when the source knows it.

    :param checksum: expected digest as ``ALGO:HEX``; verified while streaming.
    :param size: expected size in bytes, if the source knows it.
    :param headers: extra request headers for this content's URL (never logged).
    :param filename: a suggested file name; sanitised before use.
    :param metadata: free-form tags used by naming templates (``{album}``, ``{tracknumber}``).

    Example::

        content = DownloadableContent(
            content_id="track_123", content_type=ContentType.TRACK, source="my_service",
            title="My Song", url="https://example.com/track_123.mp3", file_extension="mp3",
        )
    """

    content_id: str
    content_type: ContentType
    source: str
    title: str
    url: str
    artist: str | None = None
    album: str | None = None
    file_extension: str | None = None
    filename: str | None = None
    size: int | None = None
    checksum: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.content_type, ContentType):
            try:
                self.content_type = ContentType(self.content_type)
            except ValueError as exc:
                raise ConfigError(
                    f"content_type {self.content_type!r} is not one of "
                    f"{', '.join(t.value for t in ContentType)}",
                    field="content_type",
                    value=self.content_type,
                ) from exc
        if self.checksum is not None:
            Checksum.parse(self.checksum)
        if self.size is not None and self.size < 0:
            raise ConfigError(f"size must be >= 0, got {self.size}", field="size", value=self.size)

    @property
    def expected_checksum(self) -> Checksum | None:
        """The parsed :attr:`checksum`, or ``None``."""
        return Checksum.parse(self.checksum) if self.checksum else None

    def __repr__(self) -> str:
        # headers may carry tokens: show only their names
        return (
            f"DownloadableContent(content_id={self.content_id!r}, source={self.source!r}, "
            f"title={self.title!r}, content_type={self.content_type.value!r}, "
            f"headers={sorted(self.headers)!r})"
        )


class ResultStatus(enum.Enum):
    """How a download ended."""

    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class DownloadResult:
    """What came of one download. Not thread-safe; each belongs to the thread that made it.

    Example::

        result = downloader.download(content)
        if result.is_success:
            print(result.file_path, result.bytes_downloaded)
        else:
            result.raise_for_error()
    """

    content_id: str
    source: str
    status: ResultStatus
    file_path: Path | None = None
    url: str | None = None
    error: DownloadError | None = None
    bytes_downloaded: int = 0
    total_bytes: int | None = None
    resumed_from: int = 0
    elapsed: float = 0.0
    attempts: int = 0
    checksum: str | None = None
    message: str | None = None

    @property
    def is_success(self) -> bool:
        """True when the file is in place: downloaded now, or already there and kept."""
        return self.status in (ResultStatus.COMPLETED, ResultStatus.SKIPPED)

    @property
    def error_message(self) -> str | None:
        """The typed error's message, for display."""
        return str(self.error) if self.error is not None else None

    def raise_for_error(self) -> None:
        """Re-raise the typed error of a failed download; do nothing on success."""
        if self.error is not None:
            raise self.error

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's ``--json`` line and the batch journal)."""
        return {
            "content_id": self.content_id,
            "source": self.source,
            "status": self.status.value,
            "ok": self.is_success,
            "file_path": str(self.file_path) if self.file_path else None,
            "url": self.url,
            "bytes_downloaded": self.bytes_downloaded,
            "total_bytes": self.total_bytes,
            "resumed_from": self.resumed_from,
            "elapsed": round(self.elapsed, 6),
            "attempts": self.attempts,
            "checksum": self.checksum,
            "message": self.message,
            "error_type": type(self.error).__name__ if self.error else None,
            "error": self.error_message,
        }
