"""The Internet Archive source: archive.org audio items, resolved through the metadata API.

``GET {api_base}/metadata/<identifier>`` answers ``{"metadata": {...}, "files": [...], "server",
"dir", "d1", ...}``; each file has ``name``, ``source`` (original, derivative, metadata),
``format`` (``Flac``, ``24bit Flac``, ``VBR MP3``, ``Ogg Vorbis``, ``JPEG``, ``Item Tile``...)
and strings such as ``size``, ``md5``, ``track``, ``original``, ``private``. Bytes come from
``{download_base}/download/<identifier>/<name>``, checked against that md5. The audio format is
the constructor's ``audio_format=`` or the class attribute ``default_audio_format`` (config
``source_settings`` hold only behaviour settings). An unknown (``{}``) or dark item raises
``ContentNotFoundError``; all-private audio ``AuthenticationError``; a malformed answer
``ResponseMismatchError``.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any, ClassVar, Final
from urllib.parse import quote, unquote, urlsplit

from ripstream.downloader.plugin import (
    AuthenticationError,
    BaseDownloader,
    ConfigError,
    ContentNotFoundError,
    ContentType,
    DownloadableContent,
    DownloadTask,
    ResponseMismatchError,
    ServerError,
    TrackMetadata,
    render_template,
)

__all__ = [
    "ArchiveFile",
    "ArchiveItem",
    "AudioFormat",
    "InternetArchiveDownloader",
    "parse_archive_url",
    "parse_item",
]

logger = logging.getLogger(__name__)

SOURCE_NAME: Final = "internet_archive"
DEFAULT_BASE: Final = "https://archive.org"
DEFAULT_TEMPLATE: Final = "{albumartist}/{album} ({year})/{tracknumber:02d} {title}.{ext}"
COVER_NAME: Final = "cover.jpg"
COVER_PRIORITY: Final = 10
_HOSTS: Final = frozenset({"archive.org", "www.archive.org"})
_IDENTIFIER: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_MD5: Final = re.compile(r"[0-9a-fA-F]{32}")
_LEADING_INT: Final = re.compile(r"^\s*0*(\d+)")
_YEAR: Final = re.compile(r"(\d{4})")


class AudioFormat(enum.Enum):
    """Which audio files of an item to download."""

    AUTO = "auto"  #: FLAC when the item has it, else MP3, else Ogg Vorbis
    FLAC = "flac"
    MP3 = "mp3"
    OGG = "ogg"


#: The archive.org ``format`` names of each family, best first.
_ARCHIVE_FORMATS: Final[dict[AudioFormat, tuple[str, ...]]] = {
    AudioFormat.FLAC: ("24bit Flac", "Flac"),
    AudioFormat.MP3: ("VBR MP3", *(f"{r}Kbps MP3" for r in (320, 256, 192, 128, 64)), "MP3"),
    AudioFormat.OGG: ("Ogg Vorbis",),
}
_CONTENT_TYPES: Final = (ContentType.ALBUM, ContentType.TRACK, ContentType.COVER, ContentType.FILE)
_AUDIO_FORMATS: Final = frozenset(f for names in _ARCHIVE_FORMATS.values() for f in names)
_COVER_FALLBACKS: Final = ("Item Image", "Item Tile")  # when there is no JPEG original


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One entry of an item's ``files`` list."""

    name: str
    source: str
    format: str
    size: int | None = None
    md5: str | None = None
    title: str | None = None
    track: int | None = None  #: from ``"3"``, ``"03"`` or ``"3/12"``
    disc: int | None = None
    creator: str | None = None
    original: str | None = None
    private: bool = False

    @property
    def is_audio(self) -> bool:
        """True for FLAC, MP3 and Ogg Vorbis files."""
        return self.format in _AUDIO_FORMATS


@dataclass(frozen=True, slots=True)
class ArchiveItem:
    """An archive.org item: its metadata and its files."""

    identifier: str
    title: str
    creator: str | None
    year: int | None
    files: tuple[ArchiveFile, ...]

    def file(self, name: str) -> ArchiveFile:
        """The file called ``name``.

        :raises ContentNotFoundError: when the item has none.
        """
        found = next((f for f in self.files if f.name == name), None)
        if found is None:
            message = f"archive.org item {self.identifier!r} has no file {name!r}"
            raise ContentNotFoundError(message, source=SOURCE_NAME)
        return found

    def audio_files(self, audio_format: AudioFormat = AudioFormat.AUTO) -> list[ArchiveFile]:
        """One public file per track in ``audio_format``, in disc and track order.

        Files derived from one original (``VBR MP3`` and ``64Kbps MP3`` of one FLAC) are one
        track: an original wins, then the better format.

        :raises ContentNotFoundError: when the item has no audio in that format.
        :raises AuthenticationError: when all of it is private or lending-only.
        """
        audio = [f for f in self.files if f.is_audio]
        by_name = {f.name: f for f in self.files}
        auto = audio_format is AudioFormat.AUTO
        for family in tuple(_ARCHIVE_FORMATS) if auto else (audio_format,):  # FLAC, MP3, Ogg
            names = _ARCHIVE_FORMATS[family]
            found = [f for f in audio if f.format in names]
            public = [f for f in found if not f.private]
            public.sort(key=lambda f: (f.source != "original", names.index(f.format)))
            if public:
                best: dict[str, ArchiveFile] = {}
                for entry in public:  # a derivative counts as its original's track
                    original = entry.original if entry.original in by_name else None
                    best.setdefault(original or entry.name, entry)
                return sorted(best.values(), key=_track_order)
            if found:
                raise AuthenticationError(
                    f"the {family.value} files of archive.org item {self.identifier!r} are "
                    "private or lending-only; they cannot be downloaded anonymously",
                    source=SOURCE_NAME,
                )
        formats = ", ".join(sorted({f.format for f in audio})) or "none"
        raise ContentNotFoundError(
            f"archive.org item {self.identifier!r} has no {audio_format.value} audio "
            f"(its audio formats: {formats})",
            source=SOURCE_NAME,
        )

    def cover(self) -> ArchiveFile | None:
        """The artwork: the largest JPEG original, else the ``Item Image`` or ``Item Tile``."""
        public = [f for f in self.files if not f.private]
        jpegs = [f for f in public if f.format == "JPEG" and f.source == "original"]
        if jpegs:
            return max(jpegs, key=lambda f: f.size or 0)
        return next((f for kind in _COVER_FALLBACKS for f in public if f.format == kind), None)


def parse_archive_url(url: str) -> tuple[str, str | None] | None:
    """``(identifier, file or None)`` of an archive.org ``details``/``download`` URL, or None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or parts.hostname not in _HOSTS:
        return None
    kind, _, rest = parts.path.lstrip("/").partition("/")
    identifier, _, name = rest.partition("/")
    if kind not in ("details", "download") or not _IDENTIFIER.fullmatch(identifier):
        return None
    return identifier, unquote(name.strip("/")) or None


def parse_item(data: Any, identifier: str, *, url: str | None = None) -> ArchiveItem:
    """Turn a metadata API answer into an :class:`ArchiveItem`.

    :raises ContentNotFoundError: for ``{}`` (an unknown identifier) or a dark item.
    :raises ResponseMismatchError: when the JSON is not shaped like a metadata answer.
    """
    if data == {} or (isinstance(data, dict) and data.get("is_dark") is True):
        why = "does not exist" if data == {} else "is dark (withdrawn from public access)"
        message = f"archive.org item {identifier!r} {why}"
        raise ContentNotFoundError(message, url=url, source=SOURCE_NAME)
    metadata = data.get("metadata") if isinstance(data, dict) else None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(metadata, dict) or not isinstance(files, list):
        raise _mismatch(f"the answer for {identifier!r} lacks a metadata object or files", url)
    return ArchiveItem(
        identifier=_text(metadata, "identifier", url) or identifier,
        title=_text(metadata, "title", url) or identifier,
        creator=_text(metadata, "creator", url),
        year=_number(_YEAR, _text(metadata, "year", url) or _text(metadata, "date", url)),
        files=tuple(_parse_file(entry, url) for entry in files),
    )


class InternetArchiveDownloader(BaseDownloader):
    """Downloads Internet Archive audio items, md5-verified. Thread-safe.

    Example::

        with InternetArchiveDownloader(config, audio_format=AudioFormat.MP3) as archive:
            queue = DownloadQueue()
            queue.add_tasks(archive.tasks_for_url("https://archive.org/details/gd1977-05-08"))
            results = DownloadManager(config, downloaders=[archive]).run(queue)

    :param audio_format: an :class:`AudioFormat` or its value (default: the class attribute).
    :param api_base: the API's host; ``download_base`` (default: the same) serves downloads.
    :raises ConfigError: for an unknown ``audio_format``.
    """

    source_name: ClassVar[str] = SOURCE_NAME
    supported_content_types: ClassVar[list[ContentType]] = list(_CONTENT_TYPES)
    default_template: ClassVar[str] = DEFAULT_TEMPLATE
    required_credentials: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = "Internet Archive audio items (FLAC, MP3 or Ogg; md5-checked)"
    url_patterns: ClassVar[tuple[str, ...]] = (
        "https://archive.org/details/<identifier>[/<file>]",
        "https://archive.org/download/<identifier>/<file>",
    )
    #: The audio format used when the constructor is given none.
    default_audio_format: ClassVar[AudioFormat] = AudioFormat.AUTO

    def __init__(
        self,
        *args: Any,
        audio_format: AudioFormat | str | None = None,
        api_base: str = DEFAULT_BASE,
        download_base: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        try:
            self.audio_format = AudioFormat(audio_format or self.default_audio_format)
        except ValueError as exc:
            choices = ", ".join(f.value for f in AudioFormat)
            raise _config_error("audio_format", audio_format, f"is not one of {choices}") from exc
        self.api_base = api_base.rstrip("/")
        self.download_base = (download_base or api_base).rstrip("/")

    @classmethod
    def claims_url(cls, url: str) -> bool:
        """True for ``archive.org/details/<identifier>[/<file>]`` (or ``/download/``)."""
        return parse_archive_url(url) is not None

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        """Nothing to do: public items need no login."""
        return True

    def fetch_item(self, identifier: str) -> ArchiveItem:
        """The item from the metadata API, transient failures retried (errors: see the module)."""
        if not _IDENTIFIER.fullmatch(identifier):
            raise _config_error("identifier", identifier, "is not an archive.org identifier")
        url = f"{self.api_base}/metadata/{identifier}"

        def attempt() -> Any:
            data = self.session.get_json(url)
            if isinstance(data, dict) and isinstance(data.get("error"), str):  # overloaded
                raise ServerError(f"archive.org: {data['error']}", url=url, source=SOURCE_NAME)
            return data

        data = self.retrying(attempt, describe=url)
        return parse_item(data, identifier, url=url)

    def get_download_info(self, content_id: str) -> DownloadableContent:
        """Resolve ``"<identifier>/<file name>"`` (or a file URL) into that file.

        :raises DownloadError: ``ConfigError`` for no file, ``ContentNotFoundError``...
        """
        identifier, _, name = content_id.partition("/")
        identifier, file = parse_archive_url(content_id) or (identifier, name)
        if not file:
            raise _config_error("content_id", content_id, "names no file: use <identifier>/<file>")
        item = self.fetch_item(identifier)
        return self.file_content(item, item.file(file))

    def tasks_for_url(self, url: str) -> list[DownloadTask]:
        """The cover first (high priority, saved as ``cover.jpg`` in the album folder), then
        one task per track, each depending on the cover; a file URL gives one task.

        :raises DownloadError: when the URL cannot be resolved.
        """
        ref = parse_archive_url(url)
        if ref is None:
            raise _config_error("url", url, "is not an archive.org item URL")
        item = self.fetch_item(ref[0])
        if ref[1] is not None:
            return [DownloadTask.from_content(self.file_content(item, item.file(ref[1])))]
        audio = item.audio_files(self.audio_format)
        tracks = [self.file_content(item, f, position) for position, f in enumerate(audio, 1)]
        cover = item.cover()
        if cover is None:
            return [DownloadTask.from_content(track) for track in tracks]
        # the folder the template gives the first track, so the cover lands beside the tracks
        folder = render_template(self.naming_template, self.naming_values(tracks[0])).parent
        cover_task = DownloadTask.from_content(
            replace(self.file_content(item, cover), content_type=ContentType.COVER),
            priority=COVER_PRIORITY,
            file_path=str(folder / COVER_NAME),
        )
        return [cover_task] + [
            # after the cover (so tags can embed it), but not cancelled if the cover fails
            DownloadTask.from_content(track, after=[cover_task.task_id])
            for track in tracks
        ]

    def file_content(
        self, item: ArchiveItem, entry: ArchiveFile, position: int | None = None
    ) -> DownloadableContent:
        """The content of one file, with the values naming templates and tags use.

        :param position: the track's place in the album, used when it has no ``track``.
        """
        title = entry.title or PurePosixPath(entry.name).stem
        artist = entry.creator or item.creator
        metadata: dict[str, Any] = {"albumartist": item.creator, "album": item.title}
        metadata |= {"year": item.year, "identifier": item.identifier, "format": entry.format}
        if entry.is_audio:
            metadata |= {"title": title, "artist": artist, "discnumber": entry.disc or 1}
            metadata["tracknumber"] = entry.track or position
        return DownloadableContent(
            content_id=f"{item.identifier}/{entry.name}",
            content_type=ContentType.TRACK if entry.is_audio else ContentType.FILE,
            source=self.source_name,
            title=title,
            url=f"{self.download_base}/download/{item.identifier}/{quote(entry.name, safe='/')}",
            artist=artist,
            album=item.title,
            file_extension=PurePosixPath(entry.name).suffix.lstrip(".").lower() or "bin",
            filename=PurePosixPath(entry.name).name,
            size=entry.size,
            checksum=f"md5:{entry.md5}" if entry.md5 else None,
            metadata=TrackMetadata.from_mapping(metadata),
        )


def _text(values: Mapping[str, Any], key: str, url: str | None) -> str | None:
    """A text field (a list of strings is joined with ", "); other types are a mismatch."""
    value = values.get(key)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ", ".join(v.strip() for v in value if v.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if value is not None and not isinstance(value, str):
        raise _mismatch(f"field {key!r} is {type(value).__name__}, not text", url)
    return (value.strip() or None) if value else None


def _parse_file(entry: Any, url: str | None) -> ArchiveFile:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise _mismatch(f"a files entry has no name: {str(entry)[:80]!r}", url)
    name: str = entry["name"]
    size = _text(entry, "size", url)
    if size is not None and not size.isdigit():
        raise _mismatch(f"file {name!r} has size {size!r}", url)
    md5 = _text(entry, "md5", url)
    if md5 is not None and not _MD5.fullmatch(md5):
        logger.warning("archive.org file %r has a malformed md5 %r; not verified", name, md5)
        md5 = None
    return ArchiveFile(
        name=name,
        source=_text(entry, "source", url) or "original",
        format=_text(entry, "format", url) or "",
        size=int(size) if size is not None else None,
        md5=md5.lower() if md5 else None,
        title=_text(entry, "title", url),
        track=_number(_LEADING_INT, _text(entry, "track", url)),
        disc=_number(_LEADING_INT, _text(entry, "disc", url)),
        creator=_text(entry, "creator", url) or _text(entry, "artist", url),
        original=_text(entry, "original", url),
        private=_text(entry, "private", url) == "true",
    )


def _config_error(field: str, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"{field} {value!r} {problem}", field=field, value=value)


def _mismatch(what: str, url: str | None) -> ResponseMismatchError:
    return ResponseMismatchError(f"archive.org metadata API: {what}", url=url, source=SOURCE_NAME)


def _number(pattern: re.Pattern[str], text: str | None) -> int | None:
    match = pattern.search(text or "")
    return int(match.group(1)) if match else None


def _track_order(entry: ArchiveFile) -> tuple[int, int, str]:
    return (entry.disc or 1, entry.track if entry.track is not None else 1 << 30, entry.name)
