"""Files on disk: safe names, templates, ``.part`` files, atomic rename, digests.

Nothing here trusts a name that came from a server or from metadata: every component goes
through :func:`safe_filename`, and :func:`resolve_inside` refuses any path that would land
outside the output folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import email.utils
import errno
import functools
import os
import re
import string
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ripstream.downloader.exceptions import ConfigError, StorageError

__all__ = [
    "NAMING_FIELDS",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_template",
    "filename_from_content_disposition",
    "filename_from_url",
    "rename_no_clobber",
    "render_template",
    "resolve_inside",
    "safe_filename",
    "storage_error",
    "template_fields",
    "unique_path",
]

MAX_NAME_BYTES = 255
# a little room under the file system's 255 bytes (temporary names shorten the name instead)
_RESERVED_SUFFIX_BYTES = len(".resume.json")
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    "CONIN$",
    "CONOUT$",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
    "COM¹",
    "COM²",
    "COM³",
    "LPT¹",
    "LPT²",
    "LPT³",
}
# C0 and C1 controls, lone surrogates (unencodable), and what Windows forbids
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f-\x9f\ud800-\udfff<>:"/\\|?*]')
_EDGES = re.compile(r"^[\s._]+|[\s._]+$")


def safe_filename(name: str, *, fallback: str = "download", max_bytes: int = MAX_NAME_BYTES) -> str:
    """Make one path component safe on every operating system.

    Removes path separators, control and Windows-forbidden characters, leading dots and
    trailing dots/spaces, renames Windows reserved device names (``CON``, ``com1.txt``), and
    trims to ``max_bytes`` of UTF-8 (less room for the ``.part`` suffix) keeping the extension.

    Example::

        >>> safe_filename("../../etc/passwd")
        'etc_passwd'
        >>> safe_filename("CON.mp3")
        '_CON.mp3'
    """
    text = unicodedata.normalize("NFC", name)
    text = _FORBIDDEN.sub("_", text)
    text = re.sub(r"_*(?:\.\._*)+", "_", text) if ".." in text else text
    text = text.strip().lstrip(".").rstrip(". ")
    # one pass over "_", dots and all whitespace: trimming only "_" could expose a new
    # leading dot or space ("_._" would become ".")
    text = _EDGES.sub("", re.sub(r"__+", "_", text))
    if not text:
        text = fallback
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    if (
        stem.split(".")[0].upper().rstrip(" ") in _WINDOWS_RESERVED
        or text.upper() in _WINDOWS_RESERVED
    ):
        text = "_" + text
        stem = "_" + stem if dot else text
    limit = max_bytes - _RESERVED_SUFFIX_BYTES
    if len(text.encode("utf-8")) > limit:
        suffix = f".{ext}" if dot and len(ext.encode("utf-8")) <= 16 else ""
        base = stem if suffix else text
        room = limit - len(suffix.encode("utf-8"))
        base = base.encode("utf-8")[:room].decode("utf-8", errors="ignore")
        base = re.sub(r"[\s._]+$", "", base)  # the start is already clean (and may be "_CON")
        text = (base or fallback) + suffix
    return text


def filename_from_content_disposition(value: str | None) -> str | None:
    """The file name a ``Content-Disposition`` header suggests, or ``None``.

    ``filename*`` (RFC 5987/6266, with its charset) wins over ``filename``. Only the last path
    component is kept; the result still needs :func:`safe_filename`.
    """
    if not value:
        return None
    message = Message()
    try:
        message["content-disposition"] = value
        names = [
            v
            for k, v in message.get_params([], header="content-disposition")
            if k.lower() == "filename"
        ]
    except (ValueError, LookupError, TypeError, IndexError):
        return None
    # RFC 6266: the extended filename* (decoded to a tuple) wins over the plain filename
    name: Any = next((v for v in names if isinstance(v, tuple)), names[0] if names else None)
    if not name:
        return None
    try:
        name = email.utils.collapse_rfc2231_value(name, errors="strict")
    except (LookupError, UnicodeError, ValueError):  # ValueError: e.g. an embedded NUL
        return None
    name = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    return name or None


def filename_from_url(url: str) -> str | None:
    """The last non-empty path component of ``url``, percent-decoded, or ``None``."""
    path = urlsplit(url).path
    last = unquote(path.rstrip("/").rsplit("/", 1)[-1]) if path else ""
    return last or None


class _Template(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str):
            value = kwargs.get(key)
            return "" if value is None else value
        return super().get_value(key, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> str:
        if value == "" and format_spec:
            return ""
        try:
            return str(super().format_field(value, format_spec))
        except (ValueError, TypeError):
            return str(value)


#: The fields a naming template may use: a source's naming values and the track metadata.
NAMING_FIELDS = (
    "filename",
    "title",
    "ext",
    "artist",
    "album",
    "albumartist",
    "source",
    "id",
    "type",
    "tracknumber",
    "tracktotal",
    "discnumber",
    "disctotal",
    "year",
    "date",
    "genre",
)


def template_fields(template: str) -> list[str]:
    """The field names ``template`` uses (``{tracknumber:02d}`` -> ``tracknumber``).

    :raises ConfigError: when the template is malformed.
    """
    names = []
    try:
        for _, name, _, _ in string.Formatter().parse(template):
            if name is not None:
                names.append(re.split(r"[.\[]", name, maxsplit=1)[0])
    except ValueError as exc:
        raise ConfigError(
            f"filename template {template!r} is malformed: {exc}",
            field="filename_template",
            value=template,
        ) from exc
    return names


def check_template(template: str, known: Iterable[str] = NAMING_FIELDS) -> None:
    """Refuse a template that is malformed or names a field no source fills.

    :raises ConfigError: naming the unknown field and listing the valid ones.
    """
    valid = set(known)
    for name in template_fields(template):
        if name not in valid:
            shown = "{" + name + "}" if name else "{} (an empty field)"
            raise ConfigError(
                f"unknown field {shown} in the naming template {template!r}; valid fields: "
                + ", ".join("{" + f + "}" for f in sorted(valid)),
                field="filename_template",
                value=template,
            )
    render_template(template, {})


_Run = tuple[str, str | None, str, str | None]  # literal, field, format spec, conversion


@functools.lru_cache(maxsize=64)
def _parsed(piece: str) -> tuple[_Run, ...] | None:
    """``piece`` of a template parsed once: its runs, when every field is a plain name with
    a plain spec; ``None`` when it needs the whole formatter (an index, an attribute, a
    nested field).

    :raises ValueError: when it is malformed.
    """
    runs = tuple(string.Formatter().parse(piece))
    for _literal, field, spec, _conversion in runs:
        if field is not None and (not field.isidentifier() or "{" in (spec or "")):
            return None
    return tuple(
        (literal, field, spec or "", conversion) for literal, field, spec, conversion in runs
    )


def _render(formatter: _Template, piece: str, values: Mapping[str, Any]) -> str:
    """What ``formatter.format(piece, **values)`` gives, without parsing ``piece`` again."""
    runs = _parsed(piece)
    if runs is None:
        return formatter.format(piece, **values)
    out = []
    for literal, field, spec, conversion in runs:
        out.append(literal)
        if field is not None:
            value = formatter.get_value(field, (), values)
            if conversion is not None:
                value = formatter.convert_field(value, conversion)
            out.append(formatter.format_field(value, spec))
    return "".join(out)


def render_template(template: str, values: Mapping[str, Any]) -> Path:
    """Render a naming template such as ``{albumartist}/{album} ({year})/{title}.{ext}``.

    Each ``/``-separated component is rendered and sanitised on its own, so a value holding
    ``/`` or ``..`` can never add a directory level. Missing fields render empty.

    :raises ConfigError: when the template itself is malformed.
    """
    formatter = _Template()
    parts = []
    for piece in template.replace("\\", "/").split("/"):
        try:
            rendered = _render(formatter, piece, values)
        except (ValueError, IndexError, KeyError, AttributeError) as exc:
            raise ConfigError(
                f"filename template {template!r} is malformed: {exc}",
                field="filename_template",
                value=template,
            ) from exc
        rendered = re.sub(r"\s+", " ", rendered).replace("()", "").replace("[]", "").strip()
        if rendered.strip("-_. "):
            parts.append(safe_filename(rendered))
    if not parts:
        parts = ["download"]
    return Path(*parts)


def resolve_inside(directory: Path, relative: Path | str, *, resolved: bool = False) -> Path:
    """Join ``relative`` under ``directory`` and refuse anything that escapes it.

    ``..`` is folded lexically, and the target's folder is resolved through symlinks too, so
    a link inside the output folder cannot lead a write outside it.

    :param resolved: ``directory`` is already a real path (the caller resolved it once).
    :raises StorageError: when the joined path leaves ``directory``.
    """
    base = directory if resolved else Path(os.path.realpath(directory))
    target = Path(os.path.normpath(base / relative))
    if base in target.parents and target.parent != base and os.path.lexists(target.parent):
        target = Path(os.path.realpath(target.parent)) / target.name
    if target != base and base not in target.parents:
        raise StorageError(
            f"refusing to write {str(relative)!r}: it is outside {str(base)!r}", path=str(relative)
        )
    if target == base:
        raise StorageError(
            f"{str(relative)!r} names the output folder itself, not a file", path=str(relative)
        )
    return target


def unique_path(final: Path, taken: set[Path] | None = None) -> Path:
    """``final``, or ``name (1).ext``, ``name (2).ext``... the first that does not exist."""
    taken = taken or set()
    if not os.path.lexists(final) and final not in taken:
        return final
    stem, suffix = final.stem, final.suffix
    for index in range(1, 10_000):
        candidate = final.with_name(f"{stem} ({index}){suffix}")
        if not os.path.lexists(candidate) and candidate not in taken:
            return candidate
    raise StorageError(f"no free name for {str(final)!r}", path=str(final))


def storage_error(exc: OSError, path: Path, *, url: str | None = None) -> StorageError:
    """Turn an OSError from writing ``path`` into a StorageError that says what happened."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full"
    elif exc.errno == errno.EROFS:
        what = "the file system is read-only"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        what = "permission denied"
    elif exc.errno == errno.EFBIG:
        what = "the file is larger than this file system or limit allows"
    elif exc.errno == errno.ENAMETOOLONG:
        what = "the name is too long"
    else:
        what = exc.strerror or str(exc)
    return StorageError(f"cannot write {str(path)!r}: {what}", path=str(path), url=url)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


@functools.cache
def _renameat2() -> Any:
    """libc's ``renameat2`` (Linux, glibc 2.28+), or ``None`` where there is none."""
    try:
        return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:
        return None


def rename_no_clobber(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` atomically, failing if ``target`` exists.

    One ``renameat2(RENAME_NOREPLACE)`` where the system has it; elsewhere a hard link and an
    unlink (still atomic against a clobber), and a checked rename where links do not work.

    :raises FileExistsError: when ``target`` exists; ``source`` is left where it was.
    """
    rename = _renameat2()
    if rename is not None:
        if (
            rename(
                _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
            )
            == 0
        ):
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), str(target))
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(target))
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:
        if target.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(source, target)
        return
    os.unlink(source)


def atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_bytes(
    path: Path, data: bytes, *, fsync: bool = True, mode: int | None = None
) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename: a crash
    leaves the old file or the new one, never a part of either.

    :param fsync: sync the bytes before the rename (else a crash may leave an empty file).
    :param mode: the new file's permission bits (default: the temporary file's, 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
