"""The download archive: a small sqlite file of what was downloaded and verified.

Content is recorded only after its bytes were verified and moved into place, keyed by source and
content id (not URL: streaming services sign their URLs), so the next run skips it without
touching the network. ``--no-archive`` bypasses it.

A plain http source's content id is its URL, which may carry a password or a token: such an id
is stored redacted, with a digest of the whole id to keep different ids apart
(:func:`archive_key`). The archive path must be a regular SQLite file (or missing): a FIFO, a
device, a directory, a symbolic link or a file of other bytes is refused before sqlite opens it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ripstream.downloader.content import DownloadResult, ResultStatus
from ripstream.downloader.exceptions import StorageError
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.resources import Closing
from ripstream.downloader.safeio import open_regular
from ripstream.downloader.urls import redact_text

__all__ = ["ArchiveHook", "DownloadArchive", "archive_key"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_WHAT = "the download archive"

#: Records written in one transaction, at most (group commit).
RECORD_EVERY = 64
#: Seconds between the first unwritten record and its write, at most (checked as records come).
RECORD_SECONDS = 1.0


def archive_key(content_id: str) -> str:
    """The stored form of ``content_id``: itself, or when it carries a secret its redacted
    form plus a digest of the whole id (``https://host/a?token=***#sha256:...``)."""
    shown = redact_text(content_id)
    if shown == content_id:
        return content_id
    return f"{shown}#sha256:{hashlib.sha256(content_id.encode('utf-8')).hexdigest()}"


def _check_archive_file(path: Path) -> None:
    """Refuse ``path`` unless it is missing, empty, or a regular file that starts as SQLite."""
    fd = open_regular(path, _WHAT)
    if fd is None:
        return
    with open(fd, "rb") as handle:
        head = handle.read(len(_SQLITE_MAGIC))
    if head and head != _SQLITE_MAGIC:
        raise StorageError(
            f"{_WHAT} {str(path)!r} is not a download archive (not an SQLite database); "
            "move it away, or pass --no-archive",
            path=str(path),
        )


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


class DownloadArchive(Closing):
    """What has been downloaded and verified. Thread-safe.

    Records are written in groups, one transaction for up to :data:`RECORD_EVERY` of them or
    :data:`RECORD_SECONDS`, and at :meth:`close` (the first one at once, so that an archive
    that cannot be written says so before the run goes on); this object's own look-ups see
    them at once. A crash loses at most the last group: those files are on disk but not recorded,
    so a later run looks at them again (the overwrite policy decides). Nothing is ever
    recorded before its file is in place.

    Example::

        with DownloadArchive(Path("music/.ripstream-archive.sqlite3")) as archive:
            if not archive.contains("subsonic", "song-42"):
                ...
                archive.record("subsonic", "song-42", path, checksum="sha256:...")

    :raises StorageError: when the file cannot be opened or is not an archive.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None  # opened on first use: bad input writes nothing
        self._clock = clock
        self._pending: list[tuple[object, ...]] = []
        self._pending_since: float  # set with the first waiting record
        _check_archive_file(path)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            _check_archive_file(self.path)  # again: it may have been replaced since
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self.path,
                    timeout=30,  # pragma: no mutate - how long to wait for another's write
                    check_same_thread=False,
                    isolation_level=None,
                )
                # WAL with synchronous=NORMAL: a commit survives a crash of this process
                # without an fsync per file. The first opener switches the file to WAL (the
                # mode sticks to it); asking for WAL again is a no-op that takes no lock, so
                # several worker processes may open one archive at once, even mid-write.
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(_SCHEMA)
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(
                    f"cannot open the download archive {str(self.path)!r}: {exc}",
                    path=str(self.path),
                ) from exc
            self._db = db
        return self._db

    @contextlib.contextmanager
    def _using(self) -> Iterator[None]:
        """Hold the lock; a broken database is a :class:`StorageError`."""
        try:
            with self._lock:
                yield
        except sqlite3.Error as exc:
            raise StorageError(
                f"{_WHAT} {str(self.path)!r} cannot be used: {exc}", path=str(self.path)
            ) from exc

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run one statement, after the records not yet written."""
        with self._using():
            self._write_pending()
            return self._connect().execute(sql, params).fetchall()

    def _write_pending(self) -> None:
        """Write the waiting records in one transaction (the caller holds the lock)."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        db = self._connect()
        with db:  # a transaction: all of the group or none of it
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO downloads VALUES (?, ?, ?, ?, ?, ?)", rows)

    def flush(self) -> None:
        """Write the records that wait for their group now."""
        with self._using():
            self._write_pending()

    def _unopened(self) -> bool:
        """Nothing to look up: no file, and nothing recorded by this object yet."""
        return self._db is None and not self._pending and not self.path.exists()

    def _add(self, row: tuple[object, ...]) -> None:
        with self._using():
            now = self._clock()
            if not self._pending:
                self._pending_since = now
            self._pending.append(row)
            if (
                self._db is None  # the first record: a bad archive is told at once
                or len(self._pending) >= RECORD_EVERY
                or now - self._pending_since >= RECORD_SECONDS
            ):
                self._write_pending()

    def contains(self, source: str, content_id: str) -> bool:
        """Whether ``(source, content_id)`` was downloaded and verified before."""
        if self._unopened():
            return False
        rows = self._query(
            "SELECT 1 FROM downloads WHERE source = ? AND content_id = ?",
            (source, archive_key(content_id)),
        )
        return bool(rows)

    def recorded_at(self, source: str, content_id: str) -> float | None:
        """When ``(source, content_id)`` was recorded (a Unix time), or ``None``."""
        if self._unopened():
            return None
        rows = self._query(
            "SELECT recorded_at FROM downloads WHERE source = ? AND content_id = ?",
            (source, archive_key(content_id)),
        )
        when = rows[0][0] if rows else None
        return float(when) if isinstance(when, int | float) else None

    def record(
        self,
        source: str,
        content_id: str,
        path: Path,
        *,
        checksum: str | None = None,
        size: int | None = None,
    ) -> None:
        """Remember a verified download (written with its group: see the class)."""
        self._add((source, archive_key(content_id), str(path), checksum, size, time.time()))

    def forget(self, source: str, content_id: str) -> None:
        """Drop an entry (the next run downloads it again)."""
        self._query(
            "DELETE FROM downloads WHERE source = ? AND content_id = ?",
            (source, archive_key(content_id)),
        )

    def __len__(self) -> int:
        count = self._query("SELECT COUNT(*) FROM downloads")[0][0]
        assert isinstance(count, int)  # COUNT(*) is an integer
        return count

    def close(self) -> None:
        """Write the records that wait, and close the database.

        :raises StorageError: when they cannot be written (the database is closed still).
        """
        try:
            with self._using():
                self._write_pending()
        finally:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None


class ArchiveHook:
    """The archive as a run hook of the manager: a task it holds is skipped without being
    dispatched, and content is recorded once its result says it completed (verified and
    moved into place). Only the manager's process writes, whatever runs the downloads.

    Example::

        with DownloadArchive(path) as archive:
            manager = DownloadManager(config, hooks=[ArchiveHook(archive)])

    :param skips: which sources' tasks may be skipped (by source name); by default all. The
        application passes the sources whose content ids are stable
        (:attr:`~ripstream.downloader.base.BaseDownloader.stable_ids`).
    :param force: skip nothing (everything is fetched again), but still record.
    :param hint: how to fetch held content again, appended to the skip message.
    """

    def __init__(
        self,
        archive: DownloadArchive,
        *,
        skips: Callable[[str], bool] | None = None,
        force: bool = False,
        hint: str = "forget it in the archive to fetch it again",
    ) -> None:
        self.archive = archive
        self.skips = skips
        self.force = force
        self.hint = hint

    def before(self, task: DownloadTask) -> DownloadResult | None:
        """A skipped result when the archive holds ``task``'s content."""
        if self.force or (self.skips is not None and not self.skips(task.source)):
            return None
        when = self.archive.recorded_at(task.source, task.content_id)
        if when is None:
            return None
        day = datetime.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")
        return DownloadResult(
            content_id=task.content_id,
            source=task.source,
            status=ResultStatus.SKIPPED,
            url=task.url,
            message=f"in the download archive since {day}; {self.hint}",
        )

    def after(self, task: DownloadTask, result: DownloadResult) -> None:
        """Record completed content."""
        if result.status is ResultStatus.COMPLETED and result.file_path is not None:
            self.archive.record(
                result.source,
                result.content_id,
                result.file_path,
                checksum=result.checksum,
                size=result.total_bytes,
            )
