"""The download archive: a small sqlite file of what was downloaded and verified.

Content is recorded only after its bytes were verified and moved into place, keyed by source and
content id (not URL: streaming services sign their URLs), so the next run skips it without
touching the network. ``--no-archive`` bypasses it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from ripstream.downloader.exceptions import StorageError

__all__ = ["DownloadArchive"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS downloads (
    source TEXT NOT NULL,
    content_id TEXT NOT NULL,
    path TEXT NOT NULL,
    checksum TEXT,
    size INTEGER,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (source, content_id)
)
"""


class DownloadArchive:
    """What has been downloaded and verified. Thread-safe.

    Example::

        with DownloadArchive(Path("music/.ripstream-archive.sqlite3")) as archive:
            if not archive.contains("subsonic", "song-42"):
                ...
                archive.record("subsonic", "song-42", path, checksum="sha256:...")

    :raises StorageError: when the file cannot be opened or is not an archive.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            # WAL with synchronous=NORMAL: a commit is durable against a crash of this process
            # without an fsync per file
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(
                f"cannot open the download archive {str(path)!r}: {exc}", path=str(path)
            ) from exc

    def contains(self, source: str, content_id: str) -> bool:
        """Whether ``(source, content_id)`` was downloaded and verified before."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM downloads WHERE source = ? AND content_id = ?",
                (source, content_id),
            ).fetchone()
        return row is not None

    def record(
        self,
        source: str,
        content_id: str,
        path: Path,
        *,
        checksum: str | None = None,
        size: int | None = None,
    ) -> None:
        """Remember a verified download."""
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO downloads VALUES (?, ?, ?, ?, ?, ?)",
                    (source, content_id, str(path), checksum, size, time.time()),
                )
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot write the download archive {str(self.path)!r}: {exc}", path=str(self.path)
            ) from exc

    def forget(self, source: str, content_id: str) -> None:
        """Drop an entry (the next run downloads it again)."""
        with self._lock:
            self._db.execute(
                "DELETE FROM downloads WHERE source = ? AND content_id = ?", (source, content_id)
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM downloads").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
