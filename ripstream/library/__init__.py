"""The music-library side of a download: tags written into files and the download archive."""

from __future__ import annotations

from ripstream.library.archive import ArchiveHook, DownloadArchive
from ripstream.library.tags import TagWriter

__all__ = ["ArchiveHook", "DownloadArchive", "TagWriter"]
