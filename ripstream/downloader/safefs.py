"""Files RipStream opens in a folder it does not fully trust.

Everything here refuses to follow a symlink planted in the output folder and refuses what is
not a regular file (a FIFO would hang a read or a write, a device would never end). Temporary
files have names only RipStream makes: ``.<name>.<key>.ripstream-part`` beside the final file
(a leading dot, which :func:`~ripstream.downloader.files.safe_filename` never produces, and a
hash of the content's key), so they never collide with a user's ``name.part`` or a name a
server chose. :class:`PathLock` holds a final path across processes and runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from ripstream.downloader.exceptions import StorageError, TargetExistsError
from ripstream.downloader.files import storage_error

__all__ = [
    "LOCK_SUFFIX",
    "PART_SUFFIX",
    "PathLock",
    "check_free_space",
    "lock_path",
    "make_dirs_inside",
    "open_binary",
    "open_regular",
    "part_path",
    "probe_writable",
    "read_regular",
]

PART_SUFFIX = ".ripstream-part"
LOCK_SUFFIX = ".ripstream-lock"
_MAX_NAME = 255
# room for ".", ".<12 hex>", the suffix and the sidecar's ".json"
_TEMP_OVERHEAD = 1 + 13 + len(PART_SUFFIX) + len(".json")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | os.O_CLOEXEC
_FILE_MODE = 0o666  # of a file we create: readable and writable, less the umask; never executable


def _stem(final: Path, overhead: int) -> str:
    """``final``'s name cut (on a UTF-8 boundary) so that ``overhead`` more bytes fit."""
    raw = final.name.encode("utf-8")[: _MAX_NAME - overhead]
    return raw.decode("utf-8", errors="ignore")


def part_path(final: Path, key: tuple[str, str]) -> Path:
    """The temporary file the content ``key`` (source, content id) is written to before it is
    moved to ``final``: stable across runs (resume finds it), owned by RipStream."""
    digest = hashlib.sha256("\0".join(key).encode("utf-8")).hexdigest()[:12]
    return final.with_name(f".{_stem(final, _TEMP_OVERHEAD)}.{digest}{PART_SUFFIX}")


def lock_path(final: Path) -> Path:
    """The lock file that claims ``final`` across processes."""
    return final.with_name(f".{_stem(final, 1 + len(LOCK_SUFFIX))}{LOCK_SUFFIX}")


def _check_regular(fd: int, path: Path) -> os.stat_result:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise StorageError(
            f"refusing {str(path)!r}: it is not a regular file (a FIFO, device or folder)",
            path=str(path),
        )
    return info


def open_regular(path: Path, flags: int) -> int:
    """``os.open`` that never follows a symlink at ``path`` and refuses non-regular files (a
    file it creates is readable and writable, less the umask, and never executable), and,
    for writing, a file with other names (a hard link).

    :raises StorageError: for a symlink, FIFO, device, folder or hard link, or an OS error.
    """
    fd, info = _open_checked(path, flags)
    if flags & (os.O_WRONLY | os.O_RDWR):
        _refuse_hard_link(fd, info, path)
    return fd


def _refuse_hard_link(fd: int, info: os.stat_result, path: Path) -> None:
    """A file we write must have no other name: writing it would change another file."""
    if info.st_nlink > 1:
        os.close(fd)
        raise StorageError(
            f"refusing {str(path)!r}: it is a hard link, another name of a file "
            "that writing it would change",
            path=str(path),
        )


def _open_checked(path: Path, flags: int, mode: int = _FILE_MODE) -> tuple[int, os.stat_result]:
    """:func:`open_regular`, with what ``fstat`` said of the file."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StorageError(f"refusing {str(path)!r}: it is a symlink", path=str(path)) from exc
        if exc.errno == errno.ENXIO:  # a FIFO with no reader, opened for writing
            raise StorageError(
                f"refusing {str(path)!r}: it is not a regular file (a FIFO)", path=str(path)
            ) from exc
        raise storage_error(exc, path) from exc
    info = _check_regular(fd, path)
    if _NONBLOCK:  # it was there only so that a FIFO planted at ``path`` cannot hang the open
        os.set_blocking(fd, True)
    return fd, info


def read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file at ``path`` (no symlink, no FIFO).

    :raises StorageError: when it is not a regular file, or longer than ``limit``.
    :raises FileNotFoundError: when it does not exist.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise
        raise StorageError(f"cannot read {str(path)!r}: {exc.strerror}", path=str(path)) from exc
    _check_regular(fd, path)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise StorageError(f"{str(path)!r} is larger than {limit} bytes", path=str(path))
    return data


def open_binary(path: Path, *, write: bool, truncate_at: int | None = None) -> BinaryIO:
    """A regular file opened unbuffered: for reading, or for writing at ``truncate_at``."""
    if not write:
        return os.fdopen(open_regular(path, os.O_RDONLY), "rb", buffering=0)
    if not truncate_at:
        new = _create_new(path)
        if new is not None:
            return os.fdopen(new, "wb", buffering=0)
    fd, info = _open_checked(path, os.O_WRONLY | os.O_CREAT)
    _refuse_hard_link(fd, info, path)
    handle = os.fdopen(fd, "wb", buffering=0)
    at = truncate_at or 0
    try:
        if info.st_size != at:  # a new file (the common case) is already the right length
            handle.truncate(at)
        if at:
            handle.seek(at)
    except OSError:
        handle.close()
        raise
    return handle


def _create_new(path: Path) -> int | None:
    """The common case, a new file: ``O_EXCL`` creates a regular, empty file or fails (even on
    a dangling symlink), so there is nothing to check and nothing to truncate. ``None`` when
    something is at ``path`` already (the careful way then checks what it is).

    :raises StorageError: when the file cannot be created (no space, no permission...).
    """
    try:
        return os.open(path, _NEW_FILE, _FILE_MODE)
    except FileExistsError:
        return None
    except OSError as exc:
        raise storage_error(exc, path) from exc


def probe_writable(folder: Path) -> None:
    """Make ``folder`` and write (and remove) a small file in it: only an actual write proves
    a folder writable (``os.access`` is not enough on network and read-only mounts).

    :raises OSError: what the system said.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder, prefix=".ripstream-probe-"):
        pass


def check_free_space(folder: Path, needed: int) -> None:
    """:raises StorageError: when ``folder``'s file system has less than ``needed`` bytes free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: the write itself will say
    if needed > free:
        raise StorageError(
            f"not enough free space in {str(folder)!r}: the file needs {needed} bytes, "
            f"{free} are free",
            path=str(folder),
        )


def make_dirs_inside(base: Path, folder: Path) -> None:
    """Create ``folder`` (below the real folder ``base``) one level at a time, refusing any
    existing level that is a symlink leading outside ``base`` or not a folder.

    :raises StorageError: naming the level that is wrong.
    """
    current = base
    for part in folder.relative_to(base).parts:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            try:
                os.mkdir(current)
            except FileExistsError:
                info = os.lstat(current)  # made meanwhile: check what it is
            except OSError as exc:
                raise storage_error(exc, current) from exc
            else:
                continue
        if stat.S_ISLNK(info.st_mode):
            real = Path(os.path.realpath(current))
            if real != base and base not in real.parents:
                raise StorageError(
                    f"refusing {str(current)!r}: it is a symlink leading outside {str(base)!r}",
                    path=str(current),
                )
            if not real.is_dir():
                raise StorageError(f"{str(current)!r} is not a folder", path=str(current))
        elif not stat.S_ISDIR(info.st_mode):
            raise StorageError(f"{str(current)!r} is not a folder", path=str(current))


class PathLock:
    """An exclusive claim on a final path across processes and runs, for a whole download.

    A lock file beside the path, locked with ``flock``: released on every way out, including
    ``kill -9`` (the kernel drops the lock), so a stale file never blocks a later run. Not
    thread-safe; one object per download.

    :raises TargetExistsError: on :meth:`acquire`, when another process holds the path.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = lock_path(final)
        self._fd: int | None = None
        self._held: os.stat_result | None = None

    def acquire(self) -> None:
        """Take the lock, or raise at once (another process is writing ``final``)."""
        for _ in range(5):
            fd, held = _open_checked(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise TargetExistsError(
                    f"another RipStream process is writing {str(self.final)!r}; "
                    "run again once it has finished",
                    path=str(self.final),
                ) from None
            # the holder before us may have unlinked the file after we opened it: then we
            # hold a lock on a name nobody else sees; take the one that is there now
            if _same_file(held, self.path):
                self._fd, self._held = fd, held
                return
            os.close(fd)
        raise TargetExistsError(f"cannot lock {str(self.final)!r}", path=str(self.final))

    def release(self) -> None:
        """Drop the lock and its file."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        assert self._held is not None
        with contextlib.suppress(FileNotFoundError):
            if _same_file(self._held, self.path):
                os.unlink(self.path)
        os.close(fd)


def _same_file(held: os.stat_result, path: Path) -> bool:
    """Whether ``path`` is still the file ``held`` describes (by device and inode)."""
    try:
        on_disk = os.lstat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
