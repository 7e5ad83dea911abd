"""The Internet Archive source: archive.org audio items, resolved through the metadata API.

``GET {api_base}/metadata/<identifier>`` is parsed by :mod:`.internet_archive_api` (where the
quirks of real answers are listed). Bytes come from ``{download_base}/download/<identifier>/
<name>``, checked against the md5 the answer gives (except ``<identifier>_files.xml``, which
archive.org rewrites after computing it). The audio format is the constructor's
``audio_format=`` or the class attribute ``default_audio_format``; it is chosen per track, so
a stream-only recording (private FLAC, public MP3 and Ogg) downloads its MP3s.

Errors, all raised before any task is queued: an unknown (``{}``, ``[]``) or dark item
``ContentNotFoundError``; a ``nodownload`` item, a private file, or an item whose every track
is private or lending-only :class:`ArchiveAccessError` (an ``AuthenticationError``) naming the
tracks; unavailable servers ``ServerError``; a malformed answer ``ResponseMismatchError``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any, ClassVar, Final
from urllib.parse import quote

from ripstream.downloader.plugin import (
    BaseDownloader,
    ConfigError,
    ContentType,
    DownloadableContent,
    DownloadTask,
    ServerError,
    TrackMetadata,
    render_template,
)
from ripstream.sources.internet_archive_api import (
    SOURCE_NAME,
    AccessReason,
    ArchiveAccessError,
    ArchiveFile,
    ArchiveItem,
    ArchiveRef,
    AudioFormat,
    is_identifier,
    parse_archive_url,
    parse_item,
)

__all__ = [
    "AccessReason",
    "ArchiveAccessError",
    "ArchiveFile",
    "ArchiveItem",
    "ArchiveRef",
    "AudioFormat",
    "InternetArchiveDownloader",
    "parse_archive_url",
    "parse_item",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE: Final = "https://archive.org"
DEFAULT_TEMPLATE: Final = "{albumartist}/{album} ({year})/{tracknumber:02d} {title}.{ext}"
COVER_NAME: Final = "cover.jpg"
COVER_PRIORITY: Final = 10
_CONTENT_TYPES: Final = (ContentType.ALBUM, ContentType.TRACK, ContentType.COVER, ContentType.FILE)


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
    stable_ids: ClassVar[bool] = True  # an item's file is md5-pinned by the archive

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
        if not is_identifier(identifier):
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
        ref = parse_archive_url(content_id) or ArchiveRef(identifier, name or None)
        if ref.file is None:
            raise _config_error("content_id", content_id, "names no file: use <identifier>/<file>")
        item = self.fetch_item(ref.identifier)
        return self.file_content(item, self._one_file(item, ref))

    def tasks_for_url(self, url: str) -> list[DownloadTask]:
        """The cover first (high priority, saved as ``cover.jpg`` in the album folder), then
        one task per track, each ordered after the cover; a file URL gives one task.

        :raises DownloadError: when the URL cannot be resolved or the item not downloaded.
        """
        ref = parse_archive_url(url)
        if ref is None:
            raise _config_error("url", url, "is not an archive.org item URL")
        item = self.fetch_item(ref.identifier)
        if ref.file is not None:
            return [DownloadTask.from_content(self.file_content(item, self._one_file(item, ref)))]
        item.check_downloadable()
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
        # an item without a title is named by its identifier; its files' album reads better
        untitled = item.title == item.identifier and entry.album
        album = entry.album if untitled else item.title
        metadata: dict[str, Any] = {"albumartist": item.creator, "album": album}
        metadata |= {"year": item.year, "identifier": item.identifier, "format": entry.format}
        if entry.is_audio:
            metadata |= {"title": title, "artist": artist, "discnumber": entry.disc or 1}
            metadata |= {"tracknumber": entry.track or position, "length": entry.length}
        # archive.org rewrites the file list after recording its md5 and size
        listing = entry.name == f"{item.identifier}_files.xml"
        return DownloadableContent(
            content_id=f"{item.identifier}/{entry.name}",
            content_type=ContentType.TRACK if entry.is_audio else ContentType.FILE,
            source=self.source_name,
            title=title,
            url=f"{self.download_base}/download/{item.identifier}/{quote(entry.name, safe='/')}",
            artist=artist,
            album=album,
            file_extension=PurePosixPath(entry.name).suffix.lstrip(".").lower() or "bin",
            filename=PurePosixPath(entry.name).name,
            size=None if listing else entry.size,
            checksum=f"md5:{entry.md5}" if entry.md5 and not listing else None,
            metadata=TrackMetadata.from_mapping(metadata),
        )

    @staticmethod
    def _one_file(item: ArchiveItem, ref: ArchiveRef) -> ArchiveFile:
        """The file ``ref`` names, if archive.org will serve it.

        :raises DownloadError: as :meth:`ArchiveItem.file` and
            :meth:`ArchiveItem.check_downloadable`; ``ArchiveAccessError`` for a private file.
        """
        entry = item.file(*ref.file_names)
        item.check_downloadable()
        if entry.private:
            reason = AccessReason.LENDING if item.access_restricted else AccessReason.PRIVATE
            raise ArchiveAccessError(
                f"{entry.name!r} of archive.org item {item.identifier!r} is private: "
                "archive.org does not offer it for download",
                identifier=item.identifier,
                reason=reason,
                tracks=(entry.title or PurePosixPath(entry.name).stem,),
                files=(entry.name,),
            )
        return entry


def _config_error(field: str, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"{field} {value!r} {problem}", field=field, value=value)
