"""The ``.part`` file of one attempt and what proves its bytes (pip's ``_FileDownload``).

:class:`PartFile` holds the state a fetcher needs between the response and the disk: the
resume sidecar it found, how many bytes the file holds, and the
checkpoint that is written lazily (a file done within a second never needs one). Single
streams and segments share it; neither reaches into the other.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import BinaryIO

from ripstream.downloader.exceptions import StorageError, TooLargeError
from ripstream.downloader.fetch.job import FetchJob
from ripstream.downloader.files import atomic_write_text, storage_error
from ripstream.downloader.safefs import check_free_space, open_binary, open_regular, read_regular
from ripstream.downloader.state import ResumeState, TransferResult, sidecar_path

__all__ = ["CHECKPOINT_BYTES", "CHECKPOINT_SECONDS", "Checkpoint", "PartFile", "part_size"]

logger = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 1.0
# the first checkpoint comes after a MiB (a kill soon after loses little); later ones every
# second, or every 64 MiB on a fast link (each one syncs the file, which costs)
FIRST_CHECKPOINT_BYTES = 1024 * 1024
CHECKPOINT_BYTES = 64 * 1024 * 1024
_HASH_BLOCK = 4 * 1024 * 1024
_MAX_SIDECAR = 1024 * 1024  # a real one is a few hundred bytes; a planted huge one is refused


def part_size(path: os.PathLike[str] | str) -> int:
    """Size of ``path`` in bytes, 0 when it does not exist."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


@dataclass(slots=True)
class PartFile:
    """The ``.part`` file of ``job`` and its resume state. Not thread-safe (segments lock).

    Build it with :meth:`open`, which reads the sidecar when resuming is allowed.
    """

    job: FetchJob
    state: ResumeState | None = None

    @classmethod
    def open(cls, job: FetchJob) -> PartFile:
        """The part file with the resume state its sidecar proves (if any)."""
        return cls(job, cls._load(job))

    @staticmethod
    def _load(job: FetchJob) -> ResumeState | None:
        if not job.settings.resume:
            return None
        try:
            text = read_regular(sidecar_path(job.part), _MAX_SIDECAR).decode("utf-8")
            state = ResumeState.from_json(text)
        except (OSError, ValueError, KeyError, TypeError, StorageError):
            return None
        return state if state.matches(*job.key) and job.part.exists() else None

    @property
    def size(self) -> int:
        """Bytes in the file now."""
        return part_size(self.job.part)

    @property
    def resumable_bytes(self) -> int:
        """Bytes a single stream may resume from: proven by a validator, else 0."""
        state = self.state
        if state is None or state.segments or not (self.job.settings.resume and state.validator):
            return 0
        size = self.size
        return size if state.length is None else min(size, state.length)

    def save(self, state: ResumeState) -> None:
        """Write ``state`` to the sidecar atomically (when resuming is on)."""
        if not self.job.settings.resume:
            return
        path = sidecar_path(self.job.part)
        try:
            atomic_write_text(path, state.to_json(), fsync=self.job.settings.fsync)
        except OSError as exc:
            raise storage_error(exc, path) from exc
        self.state = state

    def forget(self) -> None:
        """Remove the sidecar: these bytes can no longer be resumed from."""
        with contextlib.suppress(FileNotFoundError):
            sidecar_path(self.job.part).unlink()
        self.state = None

    def reset(self) -> None:
        """Start over: no sidecar, an empty file."""
        self.forget()
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.job.part, 0)

    def open_at(self, offset: int) -> BinaryIO:
        """The file opened for writing at ``offset`` (truncated there), unbuffered; never
        through a symlink, never a FIFO."""
        try:
            return open_binary(self.job.part, write=True, truncate_at=offset)
        except OSError as exc:
            raise storage_error(exc, self.job.part, url=self.job.shown_url) from exc

    def admit(self, total: int | None, have: int = 0) -> None:
        """Refuse a declared size the settings or the disk cannot take, before a byte is
        written (a lying total would otherwise fill the disk, or leave a huge sparse file).

        :raises TooLargeError: over ``max_filesize``.
        :raises StorageError: more than the free space of the folder.
        """
        if total is None:
            return
        limit = self.job.settings.max_filesize
        if limit is not None and total > limit:
            raise TooLargeError(
                f"{self.job.shown_url} is {total} bytes, more than the {limit} bytes "
                "--max-filesize allows",
                url=self.job.shown_url,
                source=self.job.source,
                limit=limit,
            )
        check_free_space(self.job.part.parent, total - have)

    def preallocate(self, total: int) -> None:
        """An empty file of ``total`` bytes, for segments written at their offsets.

        :raises StorageError: when the folder lacks the free space (checked first: a sparse
            file of a lying total would otherwise look fine until the disk fills).
        """
        self.admit(total)
        try:
            fd = open_regular(self.job.part, os.O_WRONLY | os.O_CREAT)
            try:
                os.ftruncate(fd, 0)
                os.ftruncate(fd, total)
            finally:
                os.close(fd)
        except OSError as exc:
            raise storage_error(exc, self.job.part, url=self.job.shown_url) from exc

    def result(self, total: int, resumed_from: int) -> TransferResult:
        """What this attempt produced: the whole file of ``total`` bytes."""
        return TransferResult(
            total=total,
            resumed_from=resumed_from,
            fetched=total - resumed_from,
        )

    def written(self) -> TransferResult:
        """For a fetch that wrote the file its own way: measure and hash what is there."""
        try:
            size = self.job.part.stat().st_size
        except FileNotFoundError as exc:
            raise StorageError(
                f"the download wrote no file at {str(self.job.part)!r}", path=str(self.job.part)
            ) from exc
        return self.result(size, 0)


class Checkpoint:
    """Keeps a single stream's resume state in step with what is durable on disk.

    After the first MiB, then every second (or every ``CHECKPOINT_BYTES``), and on the way
    out of an interrupted attempt, the file's data is synced first and only then the sidecar
    written, recording that length: after a crash at any point, the sidecar never claims a
    byte the disk may not hold. A small file done at once never needs one.
    """

    __slots__ = ("deadline", "fd", "have", "next_bytes", "part", "received", "state")

    def __init__(self, part: PartFile, state: ResumeState | None, have: int, fd: int) -> None:
        self.part, self.state, self.have, self.fd = part, state, have, fd
        self.deadline = part.job.clock() + CHECKPOINT_SECONDS
        self.next_bytes = FIRST_CHECKPOINT_BYTES
        self.received = 0

    def tick(self, now: float, received: int) -> None:
        """Called per chunk: write the state when it is due."""
        self.received = received
        if self.state is not None and (now >= self.deadline or received >= self.next_bytes):
            self._save()
            self.deadline = now + CHECKPOINT_SECONDS
            self.next_bytes = received + CHECKPOINT_BYTES

    def flush(self) -> None:
        """On an interrupted attempt: keep what the bytes on disk prove."""
        if self.state is not None and self.have + self.received > 0:
            self._save()

    def _save(self) -> None:
        assert self.state is not None
        try:
            os.fdatasync(self.fd)  # the bytes first, then the claim on them
        except OSError as exc:
            raise storage_error(exc, self.part.job.part) from exc
        self.state.length = self.have + self.received
        self.part.save(self.state)
