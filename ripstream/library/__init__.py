"""The music-library side of a download: tags written into files and the download archive."""

from __future__ import annotations

from ripstream.library.archive import DownloadArchive

__all__ = ["DownloadArchive"]
