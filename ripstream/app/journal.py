"""The batch journal behind ``--state``: which URLs of a batch are done, so a rerun of the same
command after a kill finishes only what is missing.

One JSON object per line, appended and flushed as each URL finishes; a torn last line (the
process was killed mid-write) is ignored. URLs are stored as a sha256 key plus a redacted form,
so signed URLs and tokens never land on disk.

Every line is written to the file as its URL finishes, so a killed process loses nothing it
had recorded. With ``sync=True`` (the CLI's ``--fsync``) the journal is also made durable
against a power cut, by group commit: one sync to the disk for many lines, after
:data:`SYNC_EVERY` lines or :data:`SYNC_SECONDS`, whichever comes first, and on close. A power
cut can then lose at most that many lines; a lost line only means the URL is looked at again by
the next run, which finds its files in place. Nothing is ever recorded ``done`` before its
files are in place (the manager records after the move).

Without ``sync`` there is no sync at all, as before: on ext4 (``data=ordered``) syncing one
file writes out every file written since, so a sync of the journal cost a 1 GiB download up to
two seconds, and 2,000 small files a sync every 64 of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ripstream.downloader.exceptions import StorageError
from ripstream.downloader.resources import Closing
from ripstream.downloader.safeio import open_append, open_regular
from ripstream.downloader.urls import redact_url

__all__ = ["BatchJournal", "url_key"]

logger = logging.getLogger(__name__)

#: Lines written between two syncs of the journal to the disk, at most.
SYNC_EVERY = 64
#: Seconds between the first unsynced line and the sync, at most (checked as lines come).
SYNC_SECONDS = 1.0


def url_key(url: str) -> str:
    """The journal's key for ``url`` (a digest: the URL itself may carry secrets)."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()


class BatchJournal(Closing):
    """Done and failed URLs of a batch. Thread-safe.

    Example::

        with BatchJournal(Path("out/.ripstream-state.jsonl")) as journal:
            if not journal.is_done(url):
                ...
                journal.record(url, "done", [path])

    :param sync: make the journal durable against a power cut (group commit, see the module).
    :raises StorageError: when the journal cannot be read or written.
    """

    def __init__(
        self, path: Path, *, sync: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.sync = sync
        self._lock = threading.Lock()
        self._done: dict[str, list[str]] = {}
        self._failed: set[str] = set()
        self._handle: IO[str] | None = None  # opened on the first record: bad input writes nothing
        self._torn = False
        self._unsynced = 0
        self._unsynced_since = 0.0
        self._clock = clock
        self._load()

    def _load(self) -> None:
        fd = open_regular(self.path, "the state file")  # refuses FIFOs, devices, symlinks
        if fd is None:
            return
        try:
            with os.fdopen(fd, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise StorageError(
                f"cannot read the state file {str(self.path)!r}: {exc.strerror}",
                path=str(self.path),
            ) from exc
        # a run killed mid-write leaves a torn last line: the next entry must start afresh
        self._torn = bool(data) and not data.endswith(b"\n")
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, 1):
            self._load_line(raw, number, last=number == len(lines))

    def _load_line(self, raw: bytes, number: int, *, last: bool) -> None:
        """Take one line of the journal; a torn last line (even half a character) is ignored,
        binary data elsewhere means the file is not a journal."""
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            if last:
                return
            raise StorageError(
                f"the state file {str(self.path)!r} is not a RipStream state file "
                f"(binary data on line {number}); pass another --state, or --no-state",
                path=str(self.path),
            ) from None
        if not line.strip("\x00 \t\r"):
            return
        try:
            entry = json.loads(line)
            key, status, files = entry["key"], entry["status"], entry.get("files", [])
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            logger.info("state file %s: skipping a torn or foreign line", self.path)
            return
        if status == "done" and isinstance(files, list):
            self._done[str(key)] = [str(f) for f in files]
        else:
            self._done.pop(str(key), None)
        if status == "failed":
            self._failed.add(str(key))
        else:
            self._failed.discard(str(key))

    def is_done(self, url: str) -> bool:
        """True when ``url`` finished in an earlier run and its files are all still there."""
        with self._lock:
            files = self._done.get(url_key(url))
        return files is not None and all(Path(f).exists() for f in files)

    def is_failed(self, url: str) -> bool:
        """True when ``url``'s last recorded outcome is ``failed`` (``--retry-failed``)."""
        with self._lock:
            return url_key(url) in self._failed

    def record(self, url: str, status: str, files: list[Path]) -> None:
        """Append ``url``'s outcome (``done`` or ``failed``) with the files it produced."""
        key = url_key(url)
        names = [str(f) for f in files]
        entry = {
            "key": key,
            "url": redact_url(url),
            "status": status,
            "files": names,
            "time": round(time.time(), 3),
        }
        with self._lock:
            if status == "done":
                self._done[key] = names
            if status == "failed":
                self._failed.add(key)
            else:
                self._failed.discard(key)
            try:
                if self._handle is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    fd = open_append(self.path, "the state file")
                    self._handle = os.fdopen(fd, "a", encoding="utf-8")
                    if self._torn:
                        self._handle.write("\n")
                        self._torn = False
                self._handle.write(json.dumps(entry) + "\n")
                self._handle.flush()
                self._group_commit()
            except OSError as exc:
                raise StorageError(
                    f"cannot write the state file {str(self.path)!r}: {exc.strerror}",
                    path=str(self.path),
                ) from exc

    def _group_commit(self) -> None:
        """Sync the written lines to the disk once enough of them, or old enough, wait."""
        assert self._handle is not None
        if not self.sync:
            return
        now = self._clock()
        if not self._unsynced:
            self._unsynced_since = now
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY or now - self._unsynced_since >= SYNC_SECONDS:
            self._sync()

    def _sync(self) -> None:
        if self._handle is not None and self._unsynced:
            os.fsync(self._handle.fileno())
            self._unsynced = 0

    @property
    def unsynced(self) -> int:
        """Lines written since the last sync to the disk."""
        with self._lock:
            return self._unsynced

    def close(self) -> None:
        """Close the file (synced first, with ``sync``)."""
        with self._lock:
            if self._handle is not None:
                try:
                    self._sync()
                except OSError as exc:
                    logger.warning("cannot sync the state file %s: %s", self.path, exc)
                self._handle.close()
                self._handle = None
