"""The ``subsonic`` source: albums, playlists, artists and songs from a Subsonic server.

A ``subsonic[s]://[user@]host[:port][/prefix]/<album|playlist|artist|song>/<id>`` URL becomes
tasks: the album's ``cover.<ext>`` first (if the server has one), then each track's original
file depending on it, then an ``.m3u8`` of the tracks depending on every track.

Tracks are the original bytes: ``download?format=raw``, or ``stream?format=raw`` where the
server refuses ``download`` (error 50) or is known to transcode it. A transcode is only asked
for on purpose (the ``format`` option, ``--subsonic-format opus:128``), and is named after the
format asked for. Either way the bytes decide: an empty body or an error page fails the track,
and a container the name does not fit gets its own extension before tagging
(:func:`~ripstream.sources.subsonic_media.review_track`). Raw files resume (``Range`` with
``If-Range`` on ``Last-Modified``); transcodes have no validator, so they start over.

Nothing secret is stored in a task, a result or a log line: contents carry the *unsigned*
endpoint URL, signed afresh just before each request. Content ids are stable
(``<server>#song:<id>``), so resume sidecars and the download archive key on them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import requests

from ripstream.downloader.plugin import (
    AuthenticationError,
    BaseDownloader,
    ConfigError,
    ContentType,
    DownloadableContent,
    DownloadError,
    DownloadTask,
    FinalName,
    ResponseMismatchError,
    StorageError,
    TrackMetadata,
    redact_url,
    render_template,
    safe_filename,
)
from ripstream.sources.subsonic_api import (
    MEDIA_METHODS,
    SOURCE_NAME,
    Album,
    Song,
    SubsonicClient,
    SubsonicCredentials,
    SubsonicKind,
    SubsonicRef,
    parse_subsonic_url,
)
from ripstream.sources.subsonic_errors import (
    DownloadsDisabledError,
    MediaMismatchError,
    error_in_document,
)
from ripstream.sources.subsonic_media import MediaFormat, render_playlist, review_track

__all__ = ["SubsonicDownloader"]

logger = logging.getLogger(__name__)

_COVER_PRIORITY: Final = 10
_DOCUMENT_TYPES: Final = frozenset({"application/json", "text/json", "text/xml", "application/xml"})
_MAX_DOCUMENT: Final = 64 * 1024
_PAGE_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
_SIGNED_PARAMS: Final[tuple[str, ...]] = ("format", "maxBitRate", "estimateContentLength")
#: the content ids of a playlist file's tracks, in its order (in ``metadata.extra``)
_ENTRIES: Final = "subsonic_entries"


@dataclass(frozen=True, slots=True)
class _Login:
    """What :meth:`SubsonicDownloader.authenticate` was given; its repr hides the secrets."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    media: MediaFormat = field(default_factory=MediaFormat)


def _login(credentials: Mapping[str, Any]) -> _Login:
    keys = ("username", "password", "api_key")
    given = {k: str(credentials[k]) for k in keys if credentials.get(k) not in (None, "")}
    media = MediaFormat.parse(str(credentials.get("format") or "raw"))
    return _Login(**given, media=media)


@dataclass(slots=True)
class _Plan:
    """The tasks being built for one URL: one cover per album folder, tracks, playlist lines."""

    client: SubsonicClient
    ref: SubsonicRef
    tasks: list[DownloadTask] = field(default_factory=list)
    covers: dict[PurePosixPath, DownloadTask | None] = field(default_factory=dict)
    tracks: dict[str, DownloadTask] = field(default_factory=dict)
    entries: list[tuple[Song, PurePosixPath]] = field(default_factory=list)
    albums: dict[str, Album] = field(default_factory=dict)


def _mime(response: requests.Response) -> str:
    return str(response.headers.get("Content-Type", "")).split(";")[0].strip().lower()


def _method_of(url: str) -> str:
    """The API method of a ``.../rest/<method>.view?...`` URL."""
    return urlsplit(url).path.rpartition("/")[2].removesuffix(".view")


def _raise_for_document(response: requests.Response, *, media: bool = False) -> None:
    """Raise the typed error for a Subsonic error document (sent with HTTP 200) in place of
    media, which would otherwise be saved as the track; for ``media``, also for an HTML page
    or an empty body."""
    kind = _mime(response)
    shown = redact_url(response.url)
    fields: dict[str, Any] = {"url": shown, "status_code": response.status_code}
    if media and (kind in _PAGE_TYPES or response.headers.get("Content-Length") == "0"):
        what = "an empty body" if kind not in _PAGE_TYPES else f"a {kind} page"
        reason = "document" if kind in _PAGE_TYPES else "empty"
        text = f"{shown} sent {what} instead of audio: not saved"
        raise MediaMismatchError(text, reason=reason, **fields)
    if kind not in _DOCUMENT_TYPES:
        return
    data = response.raw.read(_MAX_DOCUMENT, decode_content=True)
    error = error_in_document(data, method=_method_of(response.url), **fields)
    if error is not None:
        raise error
    text = f"{shown} sent a {kind} document instead of media"
    raise ResponseMismatchError(text, source=SOURCE_NAME, **fields)


class SubsonicDownloader(BaseDownloader):
    """Downloads from Subsonic-compatible servers (Navidrome, Airsonic, Gonic, Supysonic...).

    Thread-safe: the API clients (one per server and user, pinged on first use) are created
    under a lock and shared by the download threads.

    Example::

        source = SubsonicDownloader(DownloadConfig(download_directory=Path("music")))
        source.authenticate({"username": "me", "password": "hunter2"})
        queue = DownloadQueue()
        queue.add_tasks(source.tasks_for_url("subsonics://music.example.org/album/al-1"))
        with DownloadManager(source.config, downloaders=[source]) as manager:
            results = manager.run(queue)
    """

    source_name: ClassVar[str] = "subsonic"
    stable_ids: ClassVar[bool] = True  # a song id names the same original file
    supported_content_types: ClassVar[list[ContentType]] = [
        kind for kind in ContentType if kind is not ContentType.FILE
    ]
    default_template: ClassVar[str] = (
        "{albumartist}/{album} ({year})/{discnumber}-{tracknumber:02d} {title}.{ext}"
    )
    required_credentials: ClassVar[tuple[str, ...]] = ("password",)
    description: ClassVar[str] = (
        "Subsonic/OpenSubsonic servers (subsonics:// for HTTPS): original files, covers, "
        ".m3u8 playlists; username with password, or api_key"
    )
    url_patterns: ClassVar[tuple[str, ...]] = tuple(
        f"subsonic[s]://[user@]host[:port]/{kind.value}/<id>" for kind in SubsonicKind
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._login: _Login | None = None
        self._clients: dict[tuple[str, str | None], SubsonicClient] = {}
        self._clients_lock = threading.Lock()
        #: where this process placed each track (content id -> path), for playlist files
        self._placed: dict[str, Path] = {}

    @classmethod
    def claims_url(cls, url: str) -> bool:
        """True for well-formed ``subsonic://`` and ``subsonics://`` URLs."""
        try:
            parse_subsonic_url(url)
        except ConfigError:
            return False
        return True

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        """Keep ``username`` (a URL's ``user@`` wins), and ``password`` or ``api_key``; and
        ``format``: ``raw`` (the original files, the default) or a transcode asked for on
        purpose (``opus:128``; see :class:`MediaFormat`).

        Each server is pinged when first used (a missing or wrong secret raises
        :class:`AuthenticationError` then); without this call, the config's are used.

        :raises ConfigError: for a ``format`` that is not ``raw``, ``FORMAT`` or ``FORMAT:KBPS``.
        """
        with self._clients_lock:
            self._login = _login(credentials)
            self._clients.clear()
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        """Resolve a ``subsonic://.../song/<id>`` URL into the song's content.

        :raises ConfigError: for another kind of URL (use :meth:`tasks_for_url`).
        :raises AuthenticationError: when the server refuses the credentials.
        """
        ref = parse_subsonic_url(content_id)
        if ref.kind is not SubsonicKind.SONG:
            why = f"get_download_info takes a song URL; use tasks_for_url for a {ref.kind.value}"
            raise ConfigError(why, field="url", value=ref.to_url())
        plan = _Plan(self._client(ref.base_url, ref.username), ref)
        return self._track(plan, self._with_album(plan, plan.client.get_song(ref.id))[0])

    def tasks_for_url(self, url: str) -> list[DownloadTask]:
        """Cover, tracks and playlist file for an album, playlist, artist or song URL.

        :raises ConfigError: for a malformed URL.
        :raises AuthenticationError: when the server refuses the credentials.
        :raises ContentNotFoundError: when the server has no such item.
        """
        ref = parse_subsonic_url(url)
        client = self._client(ref.base_url, ref.username)
        if ref.kind is SubsonicKind.ALBUM:
            return self._album_tasks(_Plan(client, ref), client.get_album(ref.id))
        if ref.kind is SubsonicKind.ARTIST:
            tasks: list[DownloadTask] = []
            for album in client.get_artist(ref.id).albums:
                tasks += self._album_tasks(_Plan(client, ref), client.get_album(album.id))
            return tasks
        plan = _Plan(client, ref)
        if ref.kind is SubsonicKind.PLAYLIST:
            playlist = client.get_playlist(ref.id)
            for song in playlist.songs:
                self._add_song(plan, *self._with_album(plan, song))
            self._add_playlist(plan, playlist.name, PurePosixPath())
        else:
            self._add_song(plan, *self._with_album(plan, client.get_song(ref.id)))
        return plan.tasks

    def _album_tasks(self, plan: _Plan, album: Album) -> list[DownloadTask]:
        for song in album.songs:
            self._add_song(plan, song, album.cover_art or song.cover_art)
        if plan.entries:
            self._add_playlist(plan, album.name, plan.entries[0][1].parent)
        return plan.tasks

    def _with_album(self, plan: _Plan, song: Song) -> tuple[Song, str | None]:
        """The song with its album's artist (playlists lack it), and the album's cover id."""
        if song.album_id is None:
            return song, song.cover_art
        album = plan.albums.get(song.album_id)
        if album is None:
            album = plan.albums[song.album_id] = plan.client.get_album(song.album_id)
        song = replace(song, album_artist=album.artist or song.album_artist)
        return song, album.cover_art or song.cover_art

    def _add_song(self, plan: _Plan, song: Song, cover_id: str | None) -> None:
        content = self._track(plan, song)
        path = PurePosixPath(render_template(self.naming_template, self.naming_values(content)))
        plan.entries.append((song, path))
        if content.content_id in plan.tracks:
            return  # listed twice: downloaded once, listed twice in the playlist file
        if path.parent not in plan.covers:
            cover = self._cover(plan, cover_id, song, path.parent) if cover_id else None
            plan.covers[path.parent] = cover
            plan.tasks += [cover] if cover else []
        # after the cover (so tags can embed it), but not cancelled if the cover fails
        after = [cover.task_id for cover in (plan.covers[path.parent],) if cover]
        task = DownloadTask.from_content(content, file_path=str(path), after=after)
        plan.tracks[content.content_id] = task
        plan.tasks.append(task)

    def _add_playlist(self, plan: _Plan, name: str, folder: PurePosixPath) -> None:
        """The ``.m3u8`` of every entry so far, in ``folder``, after every track."""
        lines, ids = ["#EXTM3U"], []
        for song, path in plan.entries:
            ids.append(self._song_id(plan, song))
            label = " - ".join(filter(None, (song.artist or song.album_artist, song.title)))
            # one line per entry: a title with a line break must not add entries of its own
            label = " ".join(label.split())
            lines.append(f"#EXTINF:{song.duration or -1},{label}")
            lines.append(PurePosixPath(os.path.relpath(path, folder)).as_posix())
        data = ("\n".join(lines) + "\n").encode("utf-8")
        filename = safe_filename(f"{name or plan.ref.id}.m3u8")
        # the digest in the id: a changed playlist is written again despite the archive
        digest = hashlib.sha256(data).hexdigest()[:16]
        content = DownloadableContent(
            content_id=f"{plan.client.base_url}#{plan.ref.kind.value}-m3u8:{plan.ref.id}:{digest}",
            content_type=ContentType.PLAYLIST,
            source=self.source_name,
            title=name or plan.ref.id,
            url=plan.ref.to_url(),
            file_extension="m3u8",
            filename=filename,
            data=data,  # the names as planned; written with the names the tracks got
            metadata=TrackMetadata(extra={_ENTRIES: ids}),
        )
        deps = [task.task_id for task in plan.tracks.values()]
        target = str(folder / filename)
        plan.tasks.append(DownloadTask.from_content(content, file_path=target, dependencies=deps))

    def _song_id(self, plan: _Plan, song: Song) -> str:
        return f"{plan.client.base_url}#song:{song.id}"

    def _track(self, plan: _Plan, song: Song) -> DownloadableContent:
        media = (self._login or _Login()).media
        suffix, title = media.extension or song.suffix or "bin", song.title or song.id
        tags = TrackMetadata(
            title=title,
            artist=song.artist,
            albumartist=song.album_artist or song.artist,
            album=song.album,
            year=song.year,
            genre=song.genre,
            tracknumber=song.track,
            discnumber=song.disc or 1,
        )
        name = PurePosixPath(song.path).stem if song.path else title
        return DownloadableContent(
            content_id=self._song_id(plan, song),
            content_type=ContentType.TRACK,
            source=self.source_name,
            title=title,
            url=_unsigned(plan, media.method, song.id, media.params()),
            artist=song.artist,
            album=song.album,
            file_extension=suffix,
            filename=f"{name}.{suffix}",
            size=song.size if media.is_raw else None,  # a transcode's size is unknown
            metadata=tags,
        )

    def _cover(
        self, plan: _Plan, cover_id: str, song: Song, folder: PurePosixPath
    ) -> DownloadTask | None:
        """The task for ``folder/cover.<ext>``; ``None`` when the server has no such image."""
        extension = self._cover_extension(plan.client, cover_id)
        if extension is None:
            return None
        content = DownloadableContent(
            content_id=f"{plan.client.base_url}#cover:{cover_id}",
            content_type=ContentType.COVER,
            source=self.source_name,
            title=f"{song.album or song.title} (cover)",
            url=_unsigned(plan, "getCoverArt", cover_id),
            file_extension=extension,
            filename=f"cover.{extension}",
        )
        path = str(folder / f"cover.{extension}")
        return DownloadTask.from_content(content, priority=_COVER_PRIORITY, file_path=path)

    def _cover_extension(self, client: SubsonicClient, cover_id: str) -> str | None:
        """Read the cover's headers (not its body): whether it exists, and its image type."""
        try:
            url = client.cover_art_url(cover_id)
            with contextlib.closing(self.session.get(url, stream=True, check_status=False)) as got:
                if got.status_code < 400:
                    _raise_for_document(got)
                    if _mime(got).startswith("image/"):
                        return (mimetypes.guess_extension(_mime(got)) or ".jpg").lstrip(".")
                reason = f"HTTP {got.status_code} {_mime(got) or 'without a type'}"
        except AuthenticationError:
            raise
        except DownloadError as exc:
            reason = str(exc)
        logger.info("no cover %r on %s: %s", cover_id, client.base_url, reason)
        return None

    def request_url(self, content: DownloadableContent) -> str:
        """The media URL signed afresh for this attempt (tasks hold it unsigned); a playlist
        file carries its bytes and is never fetched."""
        return content.url if content.data is not None else self._sign(content.url)

    def check_response(self, content: DownloadableContent, response: Any) -> None:
        """Subsonic servers answer errors with a 200 and a document: never save one as media
        (nor, for a track, an HTML page or an empty body)."""
        _raise_for_document(response, media=content.content_type is ContentType.TRACK)

    def _download_content(
        self, content: DownloadableContent, file_path: Path, progress_callback: Any
    ) -> Any:
        """A playlist file is written with the tracks' final names; a track refused with
        error 50 on ``download`` comes through ``stream?format=raw`` instead."""
        if content.data is not None:
            return self._write_playlist(content, file_path)
        try:
            transfer = progress_callback.fetch_default(content, file_path)
        except DownloadsDisabledError as exc:
            client = self._client_for(content.url)
            if _method_of(content.url) != "download" or client.download_method != "download":
                raise
            logger.warning("%s; downloading through stream?format=raw instead", exc)
            client.avoid_download()
            transfer = progress_callback.fetch_default(content, file_path)
        # judged here, before the engine compares sizes: an error page is not a short file
        try:
            self.final_name(content, file_path, file_path.with_suffix(""))
        except DownloadError:
            file_path.unlink(missing_ok=True)
            raise
        return transfer

    def final_name(self, content: DownloadableContent, part: Path, path: Path) -> FinalName | None:
        """A track's bytes decide its extension; an empty body or an error page fails it."""
        if content.content_type is not ContentType.TRACK:
            return None
        query = parse_qs(urlsplit(content.url).query)
        return review_track(content, part, path, raw=query.get("format") == ["raw"])

    def placed(self, content: DownloadableContent, path: Path) -> None:
        """Remember where a track went, for the playlist file written after it."""
        if content.content_type is ContentType.TRACK:
            with self._clients_lock:
                self._placed[content.content_id] = path

    def _write_playlist(self, content: DownloadableContent, part: Path) -> None:
        assert content.data is not None
        entries = content.metadata.extra.get(_ENTRIES, [])
        with self._clients_lock:
            placed = dict(self._placed)
        ids = entries if isinstance(entries, list) else []
        data = render_playlist(content.data, ids, placed, part.parent)
        try:
            part.write_bytes(data)
        except OSError as exc:
            raise StorageError(f"cannot write {str(part)!r}: {exc}", path=str(part)) from exc

    def _client_for(self, url: str) -> SubsonicClient:
        base_url = url.rpartition("/rest/")[0]
        return self._client(base_url, parse_qs(urlsplit(url).query).get("u", [None])[0])

    def _sign(self, url: str) -> str:
        """Turn an unsigned endpoint URL (see :func:`_unsigned`) into a signed one."""
        method, query = _method_of(url), parse_qs(urlsplit(url).query)
        if method not in (*MEDIA_METHODS, "getCoverArt") or "id" not in query:
            shown = redact_url(url)
            raise ConfigError(f"not a Subsonic media URL: {shown!r}", field="url", value=shown)
        client, item = self._client_for(url), query["id"][0]
        if method == "getCoverArt":
            return client.cover_art_url(item)
        params = {key: query[key][0] for key in _SIGNED_PARAMS if key in query}
        if method == "download" and client.download_method == "stream":
            method, params["estimateContentLength"] = "stream", "true"
        return client.media_url(method, {"id": item, **params})

    def _client(self, base_url: str, username: str | None) -> SubsonicClient:
        """The client for ``base_url`` as ``username``; created and pinged on first use.

        :raises AuthenticationError: when no secret is known or the server refuses it.
        """
        with self._clients_lock:
            login = self._login or _Login()
            user = username or login.username
            client = self._clients.get((base_url, user))
            if client is not None:
                return client
            if login.api_key is not None:
                credentials = SubsonicCredentials(api_key=login.api_key)
            elif login.password is not None:
                credentials = SubsonicCredentials(username=user, password=login.password)
            else:
                why = (
                    "the subsonic source needs a password or an api_key; none was given "
                    "(call authenticate() first)"
                )
                raise AuthenticationError(why, source=self.source_name)
            client = SubsonicClient(
                base_url,
                credentials,
                self.session,
                self.settings.timeout_seconds,
                retry=lambda call: self.retrying(call, describe=f"Subsonic API {base_url}"),
            )
            client.ping()
            logger.debug("signed in to %s as %s", base_url, user or "(API key)")
            self._clients[(base_url, user)] = client
            return client


def _unsigned(plan: _Plan, method: str, item: str, params: Mapping[str, str] | None = None) -> str:
    """A media endpoint's URL without authentication (signed just before each request)."""
    query = {"id": item, **(params or {})}
    if plan.ref.username:
        query["u"] = plan.ref.username
    return f"{plan.client.base_url}/rest/{method}.view?{urlencode(query, quote_via=quote)}"
