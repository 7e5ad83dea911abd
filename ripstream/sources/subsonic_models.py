"""What a Subsonic server describes, as frozen dataclasses parsed at the edge.

:class:`Song`, :class:`Album`, :class:`Artist`, :class:`Playlist` and :class:`ServerInfo` (what
a server says about itself: its name, version and OpenSubsonic extensions). ``Parser`` reads
the JSON fields and names the API method in its errors, so no raw JSON travels further.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ripstream.sources.subsonic_errors import SubsonicAPIError

__all__ = ["Album", "Artist", "Playlist", "ServerInfo", "Song"]

_INTEGER: Final = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class Song:
    """One track as the server describes it (a Subsonic ``Child``).

    ``album_artist`` comes from OpenSubsonic's ``displayAlbumArtist`` / ``albumArtists``, else
    from the enclosing album's artist (in :meth:`SubsonicClient.get_album`), else ``artist``.
    ``year``, ``track`` and ``disc`` are ``None`` when the server sends nothing or 0;
    ``duration`` is in whole seconds; ``path`` is the server-side path, when the server
    reveals it; ``genre`` is the song's genre, if the server knows one.
    """

    id: str
    title: str
    album: str | None = None
    artist: str | None = None
    album_artist: str | None = None
    track: int | None = None
    disc: int | None = None
    year: int | None = None
    suffix: str | None = None
    size: int | None = None
    content_type: str | None = None
    cover_art: str | None = None
    duration: int | None = None
    path: str | None = None
    album_id: str | None = None
    artist_id: str | None = None
    genre: str | None = None


@dataclass(frozen=True, slots=True)
class Album:
    """An album (``AlbumID3``); ``songs`` is empty when listed inside an :class:`Artist`."""

    id: str
    name: str
    artist: str | None = None
    year: int | None = None
    cover_art: str | None = None
    songs: tuple[Song, ...] = ()
    artist_id: str | None = None
    song_count: int | None = None


@dataclass(frozen=True, slots=True)
class Artist:
    """An artist (``ArtistID3``) with its albums (without their songs)."""

    id: str
    name: str
    albums: tuple[Album, ...] = ()


@dataclass(frozen=True, slots=True)
class Playlist:
    """A playlist and its songs, in playlist order."""

    id: str
    name: str
    songs: tuple[Song, ...] = ()
    owner: str | None = None


# --------------------------------------------------------------------------- parsing


class Parser:
    """Field readers that name the API method in their errors."""

    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = url

    def fail(self, what: str) -> SubsonicAPIError:
        return SubsonicAPIError(
            f"the Subsonic server's answer to {self.method} is malformed: {what}", url=self.url
        )

    def obj(self, data: Any, key: str) -> Mapping[str, Any]:
        value = data.get(key) if isinstance(data, Mapping) else None
        if not isinstance(value, Mapping):
            raise self.fail(f"{key!r} is missing or not an object")
        return value

    def objects(self, data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        value = data.get(key)
        if value is None:
            return []
        if isinstance(value, Mapping):  # some servers send a lone object for a one-item list
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.fail(f"{key!r} is not a list of objects")
        return value

    def req_str(self, data: Mapping[str, Any], key: str) -> str:
        value = self.opt_str(data, key)
        if not value:
            raise self.fail(f"{key!r} is missing or empty")
        return value

    @staticmethod
    def opt_str(data: Mapping[str, Any], key: str) -> str | None:
        value = data.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # old servers send numeric ids
        return None

    @staticmethod
    def opt_int(data: Mapping[str, Any], key: str, *, positive: bool = False) -> int | None:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None
        if isinstance(value, float) and not value.is_integer():
            return None
        if isinstance(value, str) and not _INTEGER.fullmatch(value.strip()):
            return None
        number = int(value)
        if positive and number <= 0:
            return None
        return number

    def song(self, data: Mapping[str, Any], *, album_artist: str | None = None) -> Song:
        artist = self.opt_str(data, "artist")
        display_album_artist = self.opt_str(data, "displayAlbumArtist")
        if not display_album_artist:
            names = [self.opt_str(a, "name") for a in self.objects(data, "albumArtists")]
            display_album_artist = " & ".join(n for n in names if n) or None
        return Song(
            id=self.req_str(data, "id"),
            title=self.opt_str(data, "title") or "",
            album=self.opt_str(data, "album"),
            artist=artist,
            album_artist=display_album_artist or album_artist or artist,
            track=self.opt_int(data, "track", positive=True),
            disc=self.opt_int(data, "discNumber", positive=True),
            year=self.opt_int(data, "year", positive=True),
            suffix=self.opt_str(data, "suffix"),
            size=self.opt_int(data, "size"),
            content_type=self.opt_str(data, "contentType"),
            cover_art=self.opt_str(data, "coverArt"),
            duration=self.opt_int(data, "duration"),
            path=self.opt_str(data, "path"),
            album_id=self.opt_str(data, "albumId"),
            artist_id=self.opt_str(data, "artistId"),
            genre=self.opt_str(data, "genre") or None,
        )

    def album(self, data: Mapping[str, Any], *, with_songs: bool) -> Album:
        artist = self.opt_str(data, "artist")
        songs = (
            tuple(self.song(s, album_artist=artist) for s in self.objects(data, "song"))
            if with_songs
            else ()
        )
        return Album(
            id=self.req_str(data, "id"),
            name=self.opt_str(data, "name") or self.opt_str(data, "title") or "",
            artist=artist,
            year=self.opt_int(data, "year", positive=True),
            cover_art=self.opt_str(data, "coverArt"),
            songs=songs,
            artist_id=self.opt_str(data, "artistId"),
            song_count=self.opt_int(data, "songCount"),
        )

    def artist(self, data: Mapping[str, Any]) -> Artist:
        return Artist(
            id=self.req_str(data, "id"),
            name=self.opt_str(data, "name") or "",
            albums=tuple(self.album(a, with_songs=False) for a in self.objects(data, "album")),
        )

    def playlist(self, data: Mapping[str, Any]) -> Playlist:
        return Playlist(
            id=self.req_str(data, "id"),
            name=self.opt_str(data, "name") or "",
            songs=tuple(self.song(s) for s in self.objects(data, "entry")),
            owner=self.opt_str(data, "owner"),
        )


#: Servers whose ``download`` endpoint transcoded like ``stream`` (by name, up to the version
#: before the fix): gonic treated ``download`` as ``stream`` until sentriz/gonic#679.
_DOWNLOAD_TRANSCODERS: Final[Mapping[str, tuple[int, ...]]] = {"gonic": (0, 21)}
_VERSION: Final = re.compile(r"v?(\d+(?:\.\d+)*)")


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a server says about itself (every ``subsonic-response`` of an OpenSubsonic server
    carries ``type``, ``serverVersion`` and ``openSubsonic``; ``getOpenSubsonicExtensions``
    lists the extensions).

    Example::

        >>> ServerInfo("gonic", "0.16.4", True, frozenset()).transcodes_download
        True
    """

    name: str | None = None
    version: str | None = None
    open_subsonic: bool = False
    extensions: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, body: Mapping[str, Any], extensions: bool) -> ServerInfo:
        """From a ``subsonic-response``; ``extensions``: whether it answers
        ``getOpenSubsonicExtensions`` (then its list is read)."""
        names: set[str] = set()
        if extensions:
            for item in Parser("getOpenSubsonicExtensions", "").objects(
                body, "openSubsonicExtensions"
            ):
                name = Parser.opt_str(item, "name")
                names.update([name] if name else [])
        return cls(
            name=(Parser.opt_str(body, "type") or "").lower() or None,
            version=Parser.opt_str(body, "serverVersion"),
            open_subsonic=body.get("openSubsonic") is True,
            extensions=frozenset(names),
        )

    def supports(self, extension: str) -> bool:
        """Whether the server announced the OpenSubsonic ``extension``."""
        return extension in self.extensions

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """``serverVersion`` as numbers (``"0.53.3 (abc)"`` -> ``(0, 53, 3)``); ``()`` if none."""
        found = _VERSION.match((self.version or "").strip())
        return tuple(int(part) for part in found.group(1).split(".")) if found else ()

    @property
    def transcodes_download(self) -> bool:
        """Whether this server's ``download`` is known to transcode like ``stream``."""
        fixed = _DOWNLOAD_TRANSCODERS.get(self.name or "")
        return fixed is not None and bool(self.version_tuple) and self.version_tuple < fixed

    def __str__(self) -> str:
        if self.name is None:
            return "a Subsonic server"
        return f"{self.name} {self.version}" if self.version else self.name
