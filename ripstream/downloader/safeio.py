"""Files a user names for RipStream to keep (the state journal, the download archive, the
config): opened so that anything but a regular file is refused at once.

A FIFO given as ``--state`` would block a plain ``open`` forever, ``/dev/zero`` would be read
until memory runs out, ``/dev/full`` fails only at the first write, and a symbolic link may
point anywhere. Each is opened with ``O_NOFOLLOW | O_NONBLOCK`` (which never blocks, not even
on a FIFO) and checked with ``fstat`` to be a regular file before a byte is read or written;
otherwise a :class:`~ripstream.downloader.exceptions.StorageError` names the file and what it
is.

Example::

    data = read_regular(Path("out/.ripstream-state.jsonl"), "the state file", limit=1 << 20)
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ripstream.downloader.exceptions import StorageError
from ripstream.downloader.files import atomic_write_bytes

__all__ = ["check_regular", "describe_mode", "open_append", "open_regular", "read_regular"]

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)
_OPEN_ERRORS = {
    errno.ELOOP: "a symbolic link",
    errno.EISDIR: "a directory",
    errno.ENXIO: "a FIFO (named pipe) or a device",
}
_NOT_REGULAR = "{what} {path!r} is {kind}, not a regular file"


def describe_mode(mode: int) -> str:
    """What a file of ``mode`` is, in words (``a FIFO (named pipe)``)."""
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _open(path: Path, what: str, flags: int) -> int:
    """``os.open`` that never blocks and never follows a final symlink, regular files only."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        raise  # the callers decide what a missing file means
    except OSError as exc:
        kind = _OPEN_ERRORS.get(exc.errno or 0)
        text = (
            _NOT_REGULAR.format(what=what, path=str(path), kind=kind)
            if kind
            else f"cannot open {what} {str(path)!r}: {exc.strerror}"
        )
        raise StorageError(text, path=str(path)) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise StorageError(
            _NOT_REGULAR.format(what=what, path=str(path), kind=describe_mode(info.st_mode)),
            path=str(path),
        )
    os.set_blocking(fd, True)
    return fd


def open_regular(path: Path, what: str) -> int | None:
    """Open ``path`` for reading, refusing anything that is not a regular file, without ever
    blocking.

    :param what: how messages name the file (``the state file``).
    :returns: a file descriptor (blocking again), or ``None`` when the file is missing.
    :raises StorageError: naming ``path`` and what it is, or why it cannot be opened.
    """
    try:
        return _open(path, what, os.O_RDONLY)
    except FileNotFoundError:
        return None


def open_append(path: Path, what: str) -> int:
    """Open ``path`` for appending, creating it, refusing anything but a regular file.

    :raises StorageError: naming ``path`` and what it is, or why it cannot be opened.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        fd = _open(path, what, flags)
        if os.fstat(fd).st_nlink > 1:
            # another name shares the file (a backup's hard link, or a planted one): what is
            # appended must not change it, so this name gets a copy of its own first
            os.close(fd)
            _own_copy(path, what)
            fd = _open(path, what, flags)
    except FileNotFoundError as exc:
        raise StorageError(
            f"cannot create {what} {str(path)!r}: its folder does not exist", path=str(path)
        ) from exc
    return fd


def _own_copy(path: Path, what: str) -> None:
    """Give ``path`` a file of its own: its bytes and mode written anew and renamed over it
    (:func:`~ripstream.downloader.files.atomic_write_bytes`, synced first); the other names
    keep the original, unchanged."""
    source = _open(path, what, os.O_RDONLY)
    try:
        with os.fdopen(source, "rb") as original:
            data = original.read()
            mode = stat.S_IMODE(os.fstat(original.fileno()).st_mode)
        atomic_write_bytes(path, data, mode=mode)
    except OSError as exc:
        raise StorageError(
            f"cannot give {what} {str(path)!r} a copy of its own (it is a hard link): "
            f"{exc.strerror}",
            path=str(path),
        ) from exc


def check_regular(path: Path, what: str) -> None:
    """Refuse ``path`` unless it is missing or a regular file (see :func:`open_regular`).

    :raises StorageError: naming ``path`` and what it is.
    """
    fd = open_regular(path, what)
    if fd is not None:
        os.close(fd)


def read_regular(path: Path, what: str, limit: int) -> bytes | None:
    """The bytes of the regular file ``path`` (``None`` when it is missing), at most ``limit``.

    :raises StorageError: when it is not a regular file, is larger than ``limit`` bytes, or
        cannot be read.
    """
    fd = open_regular(path, what)
    if fd is None:
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise StorageError(
            f"cannot read {what} {str(path)!r}: {exc.strerror}", path=str(path)
        ) from exc
    if len(data) > limit:
        raise StorageError(
            f"{what} {str(path)!r} is larger than {limit} bytes: refused", path=str(path)
        )
    return data
