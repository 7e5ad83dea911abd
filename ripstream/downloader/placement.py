"""Where a download lands: the final path, the claim on it, the overwrite policy, the move.

Each step returns a decision instead of changing a shared result: :func:`decide_existing`
says :class:`Skip` or :class:`WriteTo`; the engine builds the result from the decisions once.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ripstream.downloader.config import DownloadBehaviorSettings, OverwritePolicy
from ripstream.downloader.content import Checksum
from ripstream.downloader.exceptions import StorageError, TargetExistsError
from ripstream.downloader.files import rename_no_clobber, storage_error, unique_path
from ripstream.downloader.safefs import PathLock, make_dirs_inside, open_binary, open_regular
from ripstream.downloader.state import sidecar_path

__all__ = [
    "Claim",
    "FinalName",
    "PathClaims",
    "Skip",
    "WriteTo",
    "decide_existing",
    "discard_part",
    "file_digest",
    "move_into_place",
]

_HASH_BLOCK = 4 * 1024 * 1024

#: Seconds a folder that a claim made and checked is taken as still there: the files of one
#: album do not each make and check their folder again.
FOLDER_FRESH = 1.0


class PathClaims:
    """Final paths being written in this run, so two tasks never write one file, and the
    folders made for them lately. Thread-safe.

    :param clock: monotonic seconds, for :data:`FOLDER_FRESH`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._paths: set[Path] = set()
        self._folders: dict[Path, float] = {}
        self._clock = clock

    def folder_ready(self, folder: Path) -> bool:
        """Whether a claim made and checked ``folder`` less than :data:`FOLDER_FRESH` ago."""
        with self._lock:
            made = self._folders.get(folder)
        return made is not None and self._clock() - made < FOLDER_FRESH

    def folder_made(self, folder: Path) -> None:
        """``folder`` was just made and checked."""
        with self._lock:
            self._folders[folder] = self._clock()

    def claim(self, path: Path, *, source: str | None = None) -> None:
        """Claim ``path``.

        :raises TargetExistsError: when another download of this run holds it.
        """
        with self._lock:
            if path in self._paths:
                raise TargetExistsError(
                    f"another download in this run also writes {str(path)!r}",
                    path=str(path),
                    source=source,
                )
            self._paths.add(path)

    def release(self, path: Path) -> None:
        """Give ``path`` back."""
        with self._lock:
            self._paths.discard(path)

    def move(self, old: Path, new: Path, *, source: str | None = None) -> None:
        """Claim ``new`` and release ``old`` (a name that changed)."""
        if new != old:
            self.claim(new, source=source)
            self.release(old)

    def snapshot(self) -> set[Path]:
        """The paths claimed now."""
        with self._lock:
            return set(self._paths)


class Claim:
    """The claim on one final path: in this run (:class:`PathClaims`) and across processes
    (:class:`PathLock`, whose file needs the folder, so the folder is made here, safely).
    It follows the path when the name changes, and is released on every way out."""

    def __init__(self, claims: PathClaims, path: Path, source: str, base: Path) -> None:
        self.claims, self.source, self.base = claims, source, base
        claims.claim(path, source=source)
        try:
            self.lock = self._locked(path)
        except BaseException:
            claims.release(path)
            raise
        self.path = path

    def _locked(self, path: Path) -> PathLock:
        folder = path.parent
        if self.claims.folder_ready(folder):
            lock = PathLock(path)
            try:
                lock.acquire()
            except StorageError as exc:
                if not isinstance(exc.__cause__, FileNotFoundError):
                    raise
                # the folder went away since: make it again
            else:
                return lock
        self._make_folder(folder)
        lock = PathLock(path)
        lock.acquire()
        return lock

    def _make_folder(self, folder: Path) -> None:
        inside = folder == self.base or self.base in folder.parents
        try:
            # the output folder itself is the user's (a symlink to it is fine); below it,
            # every level is checked; an absolute path the caller chose is theirs
            (self.base if inside else folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, self.base if inside else folder) from exc
        if inside:
            make_dirs_inside(self.base, folder)
        self.claims.folder_made(folder)

    def move(self, path: Path) -> None:
        if path == self.path:
            return
        self.claims.claim(path, source=self.source)
        try:
            lock = self._locked(path)
        except BaseException:
            self.claims.release(path)
            raise
        self.lock.release()
        self.claims.release(self.path)
        self.path, self.lock = path, lock

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
        self.claims.release(self.path)


@dataclass(frozen=True, slots=True)
class FinalName:
    """A source's word on a verified file (``BaseDownloader.final_name``): the file name it
    should have in its folder (a sniffed extension), and a note for the result.

    Example::

        FinalName("01 Song.mp3", "the server sent MP3, not FLAC: saved as .mp3")
    """

    name: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """Keep what is at ``path``: nothing is downloaded."""

    path: Path
    reason: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class WriteTo:
    """Download into ``path`` (a new name when the policy renamed)."""

    path: Path


def decide_existing(
    final: Path,
    settings: DownloadBehaviorSettings,
    expected: Checksum | None,
    taken: set[Path],
    *,
    source: str | None = None,
) -> Skip | WriteTo:
    """What to do about ``final`` by the overwrite policy (the claim on it is held).

    :param taken: paths other downloads of this run hold (a renamed file avoids them; the
        caller moves its claim to the new name).

    :raises TargetExistsError: for ``error``, or ``skip`` over a file whose checksum differs.
    """
    try:
        info = os.lstat(final)
    except FileNotFoundError:
        return WriteTo(final)
    policy = settings.overwrite
    if policy is OverwritePolicy.RENAME:
        return WriteTo(unique_path(final, taken))
    if stat.S_ISDIR(info.st_mode):
        raise TargetExistsError(
            f"{str(final)!r} is a folder; choose another name or rename", path=str(final)
        )
    if policy is OverwritePolicy.OVERWRITE:
        return WriteTo(final)  # the move replaces whatever is there, never through it
    if policy is OverwritePolicy.SKIP and not stat.S_ISREG(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise TargetExistsError(
            f"{str(final)!r} is {kind}; it is left alone (choose rename or overwrite)",
            path=str(final),
            source=source,
        )
    if policy is OverwritePolicy.SKIP:
        if expected is None or file_digest(final, expected) == expected.hexdigest:
            return Skip(final, "already exists", info.st_size)
        raise TargetExistsError(
            f"{str(final)!r} exists with different content; keep it, or choose overwrite or rename",
            path=str(final),
            source=source,
        )
    raise TargetExistsError(f"{str(final)!r} already exists", path=str(final), source=source)


def file_digest(path: Path, checksum: Checksum) -> str:
    """The hex digest of the file at ``path`` in ``checksum``'s algorithm."""
    hasher = checksum.new_hasher()
    with open_binary(path, write=False) as handle:
        while block := handle.read(_HASH_BLOCK):
            hasher.update(block)
    return str(hasher.hexdigest())


def discard_part(part: Path) -> None:
    """Remove ``part`` and its resume sidecar (bytes that can never be used)."""
    for path in (part, sidecar_path(part)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def move_into_place(part: Path, final: Path, settings: DownloadBehaviorSettings) -> None:
    """Move the verified ``part`` to ``final``: atomically, and never over a file that
    appeared meanwhile unless the policy is ``overwrite``. With ``fsync`` the bytes and the
    directory entry are durable before this returns.

    :raises TargetExistsError: when a file appeared at ``final`` (``part`` is kept).
    :raises StorageError: when the move fails.
    """
    try:
        if settings.fsync:
            fd = open_regular(part, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if settings.overwrite is OverwritePolicy.OVERWRITE:
            os.replace(part, final)
        else:
            rename_no_clobber(part, final)
        with contextlib.suppress(FileNotFoundError):
            sidecar_path(part).unlink()
        if settings.fsync:
            _fsync_directory(final.parent)
    except FileExistsError as exc:
        raise TargetExistsError(
            f"{str(final)!r} appeared while downloading; the new file is kept as {str(part)!r}",
            path=str(final),
        ) from exc
    except OSError as exc:
        raise storage_error(exc, final) from exc


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
