"""What an attempt leaves behind: the resume sidecar of a ``.part`` file, and the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ripstream.downloader.jsonmixin import JsonMixin

__all__ = ["ResumeState", "TransferResult", "sidecar_path"]


def sidecar_path(part: Path) -> Path:
    """Where the resume state of ``part`` is kept."""
    return part.with_name(part.name + ".json")


@dataclass(slots=True)
class ResumeState(JsonMixin):
    """What proves the bytes of a ``.part`` file: written atomically beside it.

    Keyed by source and content id rather than URL, because streaming services hand out signed
    URLs that change between runs. ``segments`` holds ``[start, end, done]`` (end exclusive)
    for a segmented download and is empty for a single stream (``length`` is then the resume
    offset). Written only after the bytes it describes were synced to disk.
    """

    source: str
    content_id: str
    etag: str | None = None
    last_modified: str | None = None
    total: int | None = None
    segments: list[list[int]] = field(default_factory=list)
    version: int = 1
    #: bytes of a single stream made durable (synced) before this state was written; a
    #: resume never trusts more of the file than that, whatever its size after a crash
    length: int | None = None

    @classmethod
    def from_response(
        cls,
        key: tuple[str, str],
        response: Any,
        total: int | None,
        segments: list[list[int]] | None = None,
    ) -> ResumeState:
        """The state proving bytes that came from ``response`` (its validators, the total)."""
        return cls(
            key[0],
            key[1],
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
            total=total,
            segments=segments or [],
        )

    @property
    def validator(self) -> str | None:
        """The ``If-Range`` value: a strong ETag, else Last-Modified, else ``None``."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def same_representation(self, headers: Any) -> bool:
        """Whether a response's validators prove it serves the bytes this state recorded.

        A strong ETag must be equal (strong comparison); without one, Last-Modified must be.
        A state with neither proves nothing, so nothing is resumed from it anyway.
        """
        if self.etag and not self.etag.startswith("W/"):
            return bool(headers.get("ETag") == self.etag)
        if self.last_modified:
            return bool(headers.get("Last-Modified") == self.last_modified)
        return False

    def matches(self, source: str, content_id: str) -> bool:
        """Whether this state belongs to ``(source, content_id)``."""
        return (self.source, self.content_id, self.version) == (source, content_id, 1)


@dataclass(slots=True)
class TransferResult:
    """What one successful attempt produced."""

    total: int
    resumed_from: int
    fetched: int
    digest: str | None = None
