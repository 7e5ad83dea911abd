"""The archive.org metadata API's answer as typed values, and the choice of files in it.

``GET /metadata/<identifier>`` answers ``{"metadata": {...}, "files": [...], ...}``. Real
answers differ from the documentation in ways this module absorbs at the edge:

* an unknown identifier answers ``{}`` (the documentation says ``[]``): both are "not found";
* ``is_dark``, ``nodownload`` and ``servers_unavailable`` are top-level booleans, and
  ``metadata["access-restricted-item"]`` marks lending-library items;
* a file's ``private`` is the string ``"true"``/``"false"`` or a JSON boolean;
* derivatives (``VBR MP3``, ``Ogg Vorbis``...) name their source file in ``original``, which may
  itself be a derivative; Ogg Vorbis derivatives carry no ``title``, ``track``, ``creator`` or
  ``album``, so those are inherited from the chain of originals;
* text fields hold HTML entities (``"Scarlet Begonias -&gt;"``) and are unescaped;
* ``length`` is seconds (``"336.27"``) or ``"mm:ss"``;
* old versions of replaced files stay listed as ``history/files/<name>.~N~`` with the format of
  their original (and ``old_version``); they are never chosen.

:class:`ArchiveItem` is immutable and so thread-safe.
"""

from __future__ import annotations

import enum
import html
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any, Final
from urllib.parse import unquote, unquote_plus, urlsplit

from ripstream.downloader.plugin import (
    AuthenticationError,
    ContentNotFoundError,
    ResponseMismatchError,
    ServerError,
)

__all__ = [
    "AccessReason",
    "ArchiveAccessError",
    "ArchiveFile",
    "ArchiveItem",
    "ArchiveRef",
    "AudioFormat",
    "is_identifier",
    "parse_archive_url",
    "parse_item",
]

logger = logging.getLogger(__name__)

SOURCE_NAME: Final = "internet_archive"
_HOSTS: Final = frozenset({"archive.org", "www.archive.org"})
_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_MD5: Final = re.compile(r"[0-9a-fA-F]{32}")
_LEADING_INT: Final = re.compile(r"^\s*0*(\d+)")
_YEAR: Final = re.compile(r"(\d{4})")
_HISTORY: Final = "history/"


class AudioFormat(enum.Enum):
    """Which audio files of an item to download."""

    AUTO = "auto"  #: per track: FLAC if public, else its MP3, else its Ogg Vorbis
    FLAC = "flac"
    MP3 = "mp3"
    OGG = "ogg"


_FLAC: Final = ("24bit Flac", "Flac")
_MP3: Final = ("VBR MP3", *(f"{r}Kbps MP3" for r in (320, 256, 192, 128, 64)), "MP3")
_OGG: Final = ("Ogg Vorbis",)
#: The archive.org ``format`` names each choice takes, best first.
_FORMATS: Final[dict[AudioFormat, tuple[str, ...]]] = {
    AudioFormat.AUTO: (*_FLAC, *_MP3, *_OGG),
    AudioFormat.FLAC: _FLAC,
    AudioFormat.MP3: _MP3,
    AudioFormat.OGG: _OGG,
}
_AUDIO_FORMATS: Final = frozenset(_FORMATS[AudioFormat.AUTO])
#: Artwork, best kind first; within a kind an original wins, then the larger file.
_COVER_KINDS: Final = ("JPEG", "JPEG Thumb", "Item Image", "Item Tile")


class AccessReason(enum.Enum):
    """Why archive.org will not serve files anonymously."""

    PRIVATE = "private"  #: the files are marked private (stream-only recordings, withheld files)
    LENDING = "lending"  #: the item is access-restricted: lending library only
    NO_DOWNLOAD = "nodownload"  #: the item is marked ``nodownload``


class ArchiveAccessError(AuthenticationError):
    """archive.org holds the files but will not serve them to an anonymous client.

    :param identifier: the item.
    :param reason: an :class:`AccessReason`.
    :param tracks: the titles of the tracks with no public file, in track order.
    :param files: the names of their best files (what would have been downloaded).

    Example::

        try:
            tasks = archive.tasks_for_url("https://archive.org/details/gd1977-05-08")
        except ArchiveAccessError as error:
            print(error.reason.value, "; ".join(error.tracks))
    """

    def __init__(
        self,
        message: str,
        *,
        identifier: str,
        reason: AccessReason,
        tracks: tuple[str, ...] = (),
        files: tuple[str, ...] = (),
        url: str | None = None,
    ) -> None:
        super().__init__(message, url=url, source=SOURCE_NAME)
        self.identifier = identifier
        self.reason = reason
        self.tracks = tracks
        self.files = files


@dataclass(frozen=True, slots=True)
class ArchiveRef:
    """What an archive.org URL names: an item, and maybe one of its files."""

    identifier: str
    file: str | None = None  #: the file path with ``%XX`` decoded
    #: the same with ``+`` read as a space, as details pages write spaces
    file_plus: str | None = None

    @property
    def file_names(self) -> tuple[str, ...]:
        """The names the file may have, the exact decoding first."""
        return tuple(dict.fromkeys(n for n in (self.file, self.file_plus) if n))


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One entry of an item's ``files`` list, with fields inherited from its originals."""

    name: str
    source: str
    format: str
    size: int | None = None
    md5: str | None = None
    title: str | None = None
    track: int | None = None  #: from ``"3"``, ``"03"`` or ``"3/12"``
    disc: int | None = None
    creator: str | None = None
    album: str | None = None
    original: str | None = None
    private: bool = False
    old_version: bool = False
    length: float | None = None  #: seconds
    #: the track this file is a version of: its first original's path without the extension
    family: str = ""

    @property
    def is_audio(self) -> bool:
        """True for FLAC, MP3 and Ogg Vorbis files."""
        return self.format in _AUDIO_FORMATS

    @property
    def is_old_version(self) -> bool:
        """True for the copies archive.org keeps of replaced files."""
        return self.old_version or self.name.startswith(_HISTORY)


@dataclass(frozen=True, slots=True)
class ArchiveItem:
    """An archive.org item: its metadata, its files and what it allows."""

    identifier: str
    title: str
    creator: str | None
    year: int | None
    files: tuple[ArchiveFile, ...]
    nodownload: bool = False
    servers_unavailable: bool = False
    workable_servers: tuple[str, ...] = ()
    access_restricted: bool = False

    def file(self, *names: str) -> ArchiveFile:
        """The first file called one of ``names`` (alternative spellings, best first).

        :raises ContentNotFoundError: when the item has none, or only an old version.
        """
        by_name = {f.name: f for f in self.files}
        found = next((by_name[n] for n in names if n in by_name), None)
        if found is not None and found.is_old_version:
            message = f"{found.name!r} is an old version of a file of archive.org item "
            raise ContentNotFoundError(
                f"{message}{self.identifier!r}; old versions are not downloaded",
                source=SOURCE_NAME,
            )
        if found is None:
            message = f"archive.org item {self.identifier!r} has no file {names[0]!r}"
            raise ContentNotFoundError(message, source=SOURCE_NAME)
        return found

    def check_downloadable(self) -> None:
        """Raise when archive.org says the item cannot be downloaded now.

        :raises ArchiveAccessError: for a ``nodownload`` item.
        :raises ServerError: when every server holding the item is unavailable.
        """
        if self.nodownload:
            raise ArchiveAccessError(
                f"archive.org item {self.identifier!r} is marked nodownload: "
                "it can be viewed or streamed on archive.org, not downloaded",
                identifier=self.identifier,
                reason=AccessReason.NO_DOWNLOAD,
            )
        if self.servers_unavailable and not self.workable_servers:
            raise ServerError(
                f"the archive.org servers holding item {self.identifier!r} are unavailable; "
                "try again later",
                source=SOURCE_NAME,
            )

    def audio_files(self, audio_format: AudioFormat = AudioFormat.AUTO) -> list[ArchiveFile]:
        """One public file per track, the best of the track's files in ``audio_format``'s order
        (for AUTO: FLAC, else the MP3, else the Ogg Vorbis), in disc and track order.

        A track with no public file is skipped with a warning, so a partly private item still
        gives every track it can; only when no track has a public file does this raise.

        :raises ContentNotFoundError: when the item has no audio in that format.
        :raises ArchiveAccessError: when no track has a public file in that format.
        """
        chosen, withheld = self._choose(_FORMATS[audio_format])
        withheld.sort(key=_track_order)
        if not chosen and withheld:
            raise self._withheld_error(audio_format, withheld)
        if not chosen:
            formats = ", ".join(sorted({f.format for f in self.files if f.is_audio})) or "none"
            raise ContentNotFoundError(
                f"archive.org item {self.identifier!r} has no {audio_format.value} audio "
                f"(its audio formats: {formats})",
                source=SOURCE_NAME,
            )
        if withheld:
            logger.warning(
                "archive.org item %r: skipping %d track(s) with no public %s file (%s): %s",
                self.identifier,
                len(withheld),
                audio_format.value,
                self._why(),
                _list_tracks(withheld),
            )
        return sorted(chosen, key=_track_order)

    def _choose(self, order: tuple[str, ...]) -> tuple[list[ArchiveFile], list[ArchiveFile]]:
        """Per track, its best public file in ``order``, or (when none is public) its best
        file, as ``(chosen, withheld)``."""
        tracks: dict[str, list[ArchiveFile]] = {}
        for entry in self.files:
            if entry.format in order and not entry.is_old_version:
                tracks.setdefault(entry.family, []).append(entry)
        chosen: list[ArchiveFile] = []
        withheld: list[ArchiveFile] = []
        for versions in tracks.values():
            versions.sort(key=lambda f: (order.index(f.format), f.source != "original", f.name))
            public = next((f for f in versions if not f.private), None)
            (chosen if public else withheld).append(public or versions[0])
        return chosen, withheld

    def cover(self) -> ArchiveFile | None:
        """The artwork: a public JPEG (originals and larger files first), else a ``JPEG Thumb``,
        else the ``Item Image`` or ``Item Tile``."""
        public = [f for f in self.files if not f.private and not f.is_old_version]
        for kind in _COVER_KINDS:
            found = [f for f in public if f.format == kind]
            if found:
                return max(found, key=lambda f: (f.source == "original", f.size or 0))
        return None

    def _why(self) -> str:
        if self.access_restricted:
            return "the item is access-restricted: archive.org lends it to logged-in borrowers"
        return "they are private: archive.org may stream them but does not offer them for download"

    def _withheld_error(
        self, audio_format: AudioFormat, withheld: Sequence[ArchiveFile]
    ) -> ArchiveAccessError:
        reason = AccessReason.LENDING if self.access_restricted else AccessReason.PRIVATE
        auto = audio_format is AudioFormat.AUTO
        kind, hint = ("audio", "") if auto else (audio_format.value, " (try another format)")
        return ArchiveAccessError(
            f"archive.org item {self.identifier!r}: none of its {len(withheld)} track(s) has a "
            f"public {kind} file{hint}; {self._why()}: {_list_tracks(withheld)}",
            identifier=self.identifier,
            reason=reason,
            tracks=tuple(_label(f) for f in withheld),
            files=tuple(f.name for f in withheld),
        )


def is_identifier(text: str) -> bool:
    """True when ``text`` is shaped like an archive.org identifier."""
    return _IDENTIFIER.fullmatch(text) is not None


def parse_archive_url(url: str) -> ArchiveRef | None:
    """The item and file of an archive.org ``details``/``download`` URL, or None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or parts.hostname not in _HOSTS:
        return None
    kind, _, rest = parts.path.lstrip("/").partition("/")
    identifier, _, name = rest.partition("/")
    if kind not in ("details", "download") or not is_identifier(identifier):
        return None
    name = name.strip("/")
    return ArchiveRef(identifier, unquote(name) or None, unquote_plus(name) or None)


def parse_item(data: Any, identifier: str, *, url: str | None = None) -> ArchiveItem:
    """Turn a metadata API answer into an :class:`ArchiveItem`.

    :raises ContentNotFoundError: for ``{}`` or ``[]`` (an unknown identifier), or a dark item.
    :raises ResponseMismatchError: when the JSON is not shaped like a metadata answer.
    """
    if data in ({}, []) or (isinstance(data, dict) and _flag(data.get("is_dark"))):
        why = "is dark (withdrawn from public access)" if data else "does not exist"
        message = f"archive.org item {identifier!r} {why}"
        raise ContentNotFoundError(message, url=url, source=SOURCE_NAME)
    metadata = data.get("metadata") if isinstance(data, dict) else None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(metadata, dict) or not isinstance(files, list):
        raise _mismatch(f"the answer for {identifier!r} lacks a metadata object or files", url)
    return ArchiveItem(
        identifier=_text(metadata, "identifier", url, escaped=False) or identifier,
        title=_text(metadata, "title", url) or identifier,
        creator=_text(metadata, "creator", url),
        year=_number(_YEAR, _text(metadata, "year", url) or _text(metadata, "date", url)),
        files=_inherit([_parse_file(entry, url) for entry in files]),
        nodownload=_flag(data.get("nodownload")),
        servers_unavailable=_flag(data.get("servers_unavailable")),
        workable_servers=_strings(data.get("workable_servers")),
        access_restricted=_flag(metadata.get("access-restricted-item")),
    )


def _parse_file(entry: Any, url: str | None) -> ArchiveFile:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise _mismatch(f"a files entry has no name: {str(entry)[:80]!r}", url)
    name: str = entry["name"]
    size = _text(entry, "size", url, escaped=False)
    if size is not None and not size.isdigit():
        raise _mismatch(f"file {name!r} has size {size!r}", url)
    md5 = _text(entry, "md5", url, escaped=False)
    if md5 is not None and not _MD5.fullmatch(md5):
        logger.warning("archive.org file %r has a malformed md5 %r; not verified", name, md5)
        md5 = None
    return ArchiveFile(
        name=name,
        source=_text(entry, "source", url, escaped=False) or "original",
        format=_text(entry, "format", url, escaped=False) or "",
        size=int(size) if size is not None else None,
        md5=md5.lower() if md5 else None,
        title=_text(entry, "title", url),
        track=_number(_LEADING_INT, _text(entry, "track", url)),
        disc=_number(_LEADING_INT, _text(entry, "disc", url)),
        creator=_text(entry, "creator", url) or _text(entry, "artist", url),
        album=_text(entry, "album", url),
        original=_text(entry, "original", url, escaped=False),
        private=_flag(entry.get("private")),
        old_version=_flag(entry.get("old_version")),
        length=_seconds(entry.get("length")),
    )


def _inherit(files: list[ArchiveFile]) -> tuple[ArchiveFile, ...]:
    """Each file with its track (``family``) and the fields its chain of originals gives it."""
    by_name = {f.name: f for f in files}
    result = []
    for entry in files:
        chain: list[ArchiveFile] = []  # its originals, nearest first
        parent = by_name.get(entry.original or "")
        while parent is not None and parent is not entry and parent not in chain:  # no cycles
            chain.append(parent)
            parent = by_name.get(parent.original or "")
        lineage = (entry, *chain)
        root = PurePosixPath(chain[-1].name if chain else entry.name)
        result.append(
            replace(
                entry,
                family=str(root.with_name(root.stem)),
                title=_first(lineage, "title"),
                track=_first(lineage, "track"),
                disc=_first(lineage, "disc"),
                creator=_first(lineage, "creator"),
                album=_first(lineage, "album"),
            )
        )
    return tuple(result)


def _first(lineage: Sequence[ArchiveFile], field: str) -> Any:
    """The file's own ``field``, else its nearest original's."""
    return next((getattr(a, field) for a in lineage if getattr(a, field) is not None), None)


def _text(
    values: Mapping[str, Any], key: str, url: str | None, *, escaped: bool = True
) -> str | None:
    """A text field (a list of strings is joined with ", "); other types are a mismatch.

    :param escaped: whether the field is prose that may hold HTML entities; names, formats
        and digests are taken as they are, since they address files.
    """
    value = values.get(key)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ", ".join(v.strip() for v in value if v.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if value is not None and not isinstance(value, str):
        raise _mismatch(f"field {key!r} is {type(value).__name__}, not text", url)
    if escaped and value:
        value = html.unescape(value)
    return (value.strip() or None) if value else None


def _flag(value: Any) -> bool:
    """archive.org writes flags as JSON booleans or as the strings "true" and "false"."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _seconds(value: Any) -> float | None:
    """``"336.27"``, ``"05:36"`` or ``"1:05:36"`` in seconds; None when unreadable."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    total = 0.0
    try:
        for part in str(value).strip().split(":"):
            total = total * 60 + float(part)
    except ValueError:
        return None
    return total


def _mismatch(what: str, url: str | None) -> ResponseMismatchError:
    return ResponseMismatchError(f"archive.org metadata API: {what}", url=url, source=SOURCE_NAME)


def _number(pattern: re.Pattern[str], text: str | None) -> int | None:
    match = pattern.search(text or "")
    return int(match.group(1)) if match else None


def _track_order(entry: ArchiveFile) -> tuple[int, int, str]:
    return (entry.disc or 1, entry.track if entry.track is not None else 1 << 30, entry.name)


def _label(entry: ArchiveFile) -> str:
    return entry.title or PurePosixPath(entry.name).stem


def _list_tracks(entries: Sequence[ArchiveFile]) -> str:
    return "; ".join(f"{_label(f)!r} ({f.name})" for f in entries)
