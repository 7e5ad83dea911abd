"""A client for the Subsonic / OpenSubsonic REST API (Navidrome, Airsonic, Gonic, Supysonic...).

The client speaks JSON (``f=json``), authenticates every request, and turns every answer into
frozen dataclasses (:class:`Song`, :class:`Album`, :class:`Artist`, :class:`Playlist`) at the
edge, so no raw JSON travels further into RipStream.

Authentication
--------------
* **Salted token** (the default with a password): ``t = md5(password + salt)`` and ``s = salt``,
  a fresh random salt (:mod:`secrets`) for every request.
* **Password** (``p=enc:<hex>``): used when the server says it cannot check tokens, that is
  error 41 ("token authentication not supported"), OpenSubsonic's 42 ("authentication
  mechanism not supported"), or, before any call has succeeded, error 10 ("required parameter
  missing", what servers that only know ``p`` answer, Supysonic among them). The client then
  remembers the choice for its lifetime. Pass ``auth=AuthMethod.PASSWORD`` to skip the probe.
* **API key** (OpenSubsonic ``apiKey``): when the credentials hold an API key; no username is
  sent then, as the OpenSubsonic specification requires.

Every request also carries ``v`` (:data:`API_VERSION`), ``c`` (:data:`CLIENT_NAME`) and
``f=json``.

Errors
------
A ``subsonic-response`` whose ``status`` is ``failed`` raises: codes 40, 41, 42, 43, 44 and 50
:class:`~ripstream.downloader.exceptions.AuthenticationError`; code 70
:class:`~ripstream.downloader.exceptions.ContentNotFoundError`; any other code
:class:`SubsonicAPIError` (which carries ``code``). Transport failures raise the
:class:`~ripstream.downloader.exceptions.NetworkError` family. No message, log line or ``url``
field ever holds the password, token, salt or API key: URLs are passed through
:func:`redact_url` first.

Example::

    from ripstream.downloader import DownloadConfig, SessionManager
    from ripstream.sources.subsonic_api import SubsonicClient, SubsonicCredentials

    with SessionManager(DownloadConfig()) as sessions:
        client = SubsonicClient(
            "https://music.example.org",
            SubsonicCredentials(username="me", password="hunter2"),
            sessions.get_session("subsonic"),
        )
        album = client.get_album("al-123")
        for song in album.songs:
            print(song.track, song.title, client.download_url(song.id))
"""

from __future__ import annotations

import enum
import functools
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from urllib.parse import quote, unquote, urlencode, urlsplit

from ripstream.downloader.plugin import (
    AuthenticationError,
    ConfigError,
    ContentNotFoundError,
    DownloadError,
    DownloadSession,
    ResponseMismatchError,
    error_for_status,
    redact_text,
    redact_url,
)

__all__ = [
    "API_VERSION",
    "CLIENT_NAME",
    "SOURCE_NAME",
    "Album",
    "Artist",
    "AuthMethod",
    "Playlist",
    "Song",
    "SubsonicAPIError",
    "SubsonicClient",
    "SubsonicCredentials",
    "SubsonicKind",
    "SubsonicRef",
    "parse_subsonic_url",
    "redact_url",
]

#: what one API request gives: the ``subsonic-response`` object, HTTP status, redacted URL
_Answer: TypeAlias = tuple[Mapping[str, Any], int, str]

logger = logging.getLogger(__name__)

#: The REST API version the client announces (``v``).
API_VERSION: Final = "1.16.1"
#: The client name the client announces (``c``).
CLIENT_NAME: Final = "ripstream"
#: The ``source`` field of the errors this module raises.
SOURCE_NAME: Final = "subsonic"

_INTEGER: Final = re.compile(r"-?[0-9]+")

#: Subsonic error codes.
_ERR_MISSING_PARAMETER: Final = 10
_ERR_TOKEN_UNSUPPORTED: Final = 41
_ERR_MECHANISM_UNSUPPORTED: Final = 42
_AUTH_ERRORS: Final = frozenset({40, 41, 42, 43, 44, 50})
_ERR_NOT_FOUND: Final = 70


# --------------------------------------------------------------------------- errors


class SubsonicAPIError(DownloadError):
    """The server answered with an error code no more specific RipStream error covers, or
    with something that is not a Subsonic JSON response at all.

    :param message: what went wrong, naming the API method.
    :param url: the redacted URL of the request.
    :param source: the source name, ``"subsonic"``.
    :param code: the Subsonic error code, or ``None`` when the answer was not a Subsonic
        error (not JSON, no ``subsonic-response``, a malformed field).
    :param status_code: the HTTP status of the answer, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = SOURCE_NAME,
        code: int | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.code = code
        self.status_code = status_code


# --------------------------------------------------------------------------- credentials


class AuthMethod(enum.Enum):
    """How requests are authenticated."""

    #: ``u``, ``t = md5(password + salt)``, ``s = salt``.
    TOKEN = "token"  # noqa: S105 - the name of a method, not a secret
    #: ``u``, ``p = enc:<hex of the password>``.
    PASSWORD = "password"  # noqa: S105 - the name of a method, not a secret
    #: OpenSubsonic ``apiKey``.
    API_KEY = "apiKey"


@dataclass(frozen=True, slots=True, repr=False)
class SubsonicCredentials:
    """A username with a password, or an OpenSubsonic API key.

    The ``repr`` shows which secret is set, never its value.

    :param username: the account name; required with a password, ignored with an API key.
    :param password: the account password (used for salted tokens, or ``p=enc:``).
    :param api_key: an OpenSubsonic API key, instead of username and password.
    :raises ConfigError: when neither or both secrets are given, or a password comes without a
        username.

    Example::

        >>> SubsonicCredentials(username="me", password="hunter2")
        SubsonicCredentials(username='me', password=<set>)
    """

    username: str | None = None
    password: str | None = None
    api_key: str | None = None

    def __post_init__(self) -> None:
        if (self.password is None) == (self.api_key is None):
            raise ConfigError(
                "Subsonic credentials need exactly one of a password or an API key",
                field="credentials",
                value=None,
            )
        if self.api_key is not None and not self.api_key:
            raise ConfigError("the Subsonic API key is empty", field="api_key", value=None)
        if self.password is not None and not self.username:
            raise ConfigError(
                "a Subsonic password needs a username", field="username", value=self.username
            )

    def __repr__(self) -> str:
        if self.api_key is not None:
            return "SubsonicCredentials(api_key=<set>)"
        return f"SubsonicCredentials(username={self.username!r}, password=<set>)"

    __str__ = __repr__


# --------------------------------------------------------------------------- models


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


class _Parser:
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


# --------------------------------------------------------------------------- the client


class SubsonicClient:
    """A synchronous Subsonic API client on a source's :class:`DownloadSession` (rate limited,
    typed errors).

    The session is not closed by the client. One client may be shared by threads as far as
    its session may; the only state it keeps is the authentication method once negotiated.

    :param base_url: the server root, ``http(s)://host[:port][/prefix]``; API calls go to
        ``<base_url>/rest/<method>.view``.
    :param credentials: a password or an API key.
    :param session: the HTTP session to send requests with.
    :param timeout: the connect and read timeout of each request, in seconds.
    :param auth: force an authentication method instead of negotiating one (token first,
        then password); must match the credentials.
    :raises ConfigError: for a base URL that is not http(s) with a host, a timeout that is
        not positive, or an ``auth`` the credentials cannot serve.
    """

    def __init__(
        self,
        base_url: str,
        credentials: SubsonicCredentials,
        session: DownloadSession,
        timeout: float = 30.0,
        *,
        auth: AuthMethod | None = None,
        retry: Callable[[Callable[[], _Answer]], _Answer] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"the Subsonic base URL must be http(s)://host[:port][/path], "
                f"got {redact_url(base_url)!r}",
                field="base_url",
                value=redact_url(base_url),
            )
        if parts.query or parts.fragment:
            raise ConfigError(
                "the Subsonic base URL must not have a query or fragment",
                field="base_url",
                value=redact_url(base_url),
            )
        if not timeout > 0:
            raise ConfigError("the timeout must be positive", field="timeout", value=timeout)
        if credentials.api_key is not None:
            if auth not in (None, AuthMethod.API_KEY):
                raise ConfigError(
                    "API-key credentials can only use AuthMethod.API_KEY", field="auth", value=auth
                )
            auth = AuthMethod.API_KEY
        elif auth is AuthMethod.API_KEY:
            raise ConfigError(
                "AuthMethod.API_KEY needs credentials with an API key", field="auth", value=auth
            )
        self._base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._session = session
        self._timeout = timeout
        self._retry = retry or (lambda call: call())
        self._lock = threading.Lock()
        self._auth = auth or AuthMethod.TOKEN
        #: True once a request authenticated with ``self._auth`` succeeded, or it was forced.
        self._auth_settled = auth is not None

    def __repr__(self) -> str:
        return f"SubsonicClient({self._base_url!r}, auth={self._auth.value})"

    @property
    def base_url(self) -> str:
        """The server root, without a trailing slash."""
        return self._base_url

    @property
    def auth_method(self) -> AuthMethod:
        """The authentication method in use (negotiated on the first request)."""
        return self._auth

    # ------------------------------------------------------------------ public API

    def ping(self) -> None:
        """Check that the server answers and accepts the credentials.

        :raises AuthenticationError: when the credentials are refused.
        :raises NetworkError: when the server cannot be reached or answers with an HTTP error.
        :raises SubsonicAPIError: when the answer is not a successful Subsonic response.
        """
        self._call("ping")

    def get_song(self, song_id: str) -> Song:
        """Return one song (``getSong``).

        :param song_id: the server's song id.
        :returns: the song.
        :raises ContentNotFoundError: when the server has no such song (error 70).
        :raises AuthenticationError: when the credentials are refused.
        :raises NetworkError: when the server cannot be reached or answers with an HTTP error.
        :raises SubsonicAPIError: for any other error code or a malformed answer.
        """
        body, parser = self._call("getSong", id=song_id)
        return parser.song(parser.obj(body, "song"))

    def get_album(self, album_id: str) -> Album:
        """Return an album and its songs (``getAlbum``), songs in the server's order.

        :param album_id: the server's album id (ID3 browsing).
        :returns: the album; each song's ``album_artist`` falls back to the album's artist.
        :raises ContentNotFoundError: when the server has no such album (error 70).
        :raises AuthenticationError: when the credentials are refused.
        :raises NetworkError: when the server cannot be reached or answers with an HTTP error.
        :raises SubsonicAPIError: for any other error code or a malformed answer.
        """
        body, parser = self._call("getAlbum", id=album_id)
        return parser.album(parser.obj(body, "album"), with_songs=True)

    def get_artist(self, artist_id: str) -> Artist:
        """Return an artist and its albums (``getArtist``); the albums carry no songs.

        :param artist_id: the server's artist id (ID3 browsing).
        :returns: the artist.
        :raises ContentNotFoundError: when the server has no such artist (error 70).
        :raises AuthenticationError: when the credentials are refused.
        :raises NetworkError: when the server cannot be reached or answers with an HTTP error.
        :raises SubsonicAPIError: for any other error code or a malformed answer.
        """
        body, parser = self._call("getArtist", id=artist_id)
        return parser.artist(parser.obj(body, "artist"))

    def get_playlist(self, playlist_id: str) -> Playlist:
        """Return a playlist and its songs in order (``getPlaylist``).

        :param playlist_id: the server's playlist id.
        :returns: the playlist.
        :raises ContentNotFoundError: when the server has no such playlist (error 70).
        :raises AuthenticationError: when the credentials are refused, or the playlist is
            another user's private one (error 50).
        :raises NetworkError: when the server cannot be reached or answers with an HTTP error.
        :raises SubsonicAPIError: for any other error code or a malformed answer.
        """
        body, parser = self._call("getPlaylist", id=playlist_id)
        return parser.playlist(parser.obj(body, "playlist"))

    def download_url(self, song_id: str) -> str:
        """Return the signed ``download`` URL of a song's original file.

        The URL carries authentication parameters: a one-time salted token, or, on servers
        that only accept passwords, the hex-encoded password itself. Treat it as a secret and
        log it only through :func:`redact_url`. If the authentication method is not settled
        yet, this first calls :meth:`ping` to settle it.

        :param song_id: the server's song id.
        :returns: an absolute URL; GET it to receive the file's bytes.
        :raises AuthenticationError: when settling the authentication method fails.
        :raises NetworkError: when the server cannot be reached while settling it.
        """
        return self._signed_url("download", {"id": song_id})

    def cover_art_url(self, cover_id: str, size: int | None = None) -> str:
        """Return the signed ``getCoverArt`` URL of a cover (see :meth:`download_url`).

        :param cover_id: a ``cover_art`` id from a :class:`Song` or :class:`Album`.
        :param size: ask the server to scale the image to this many pixels, if given.
        :returns: an absolute URL; GET it to receive the image's bytes.
        :raises ConfigError: when ``size`` is not positive.
        :raises AuthenticationError: when settling the authentication method fails.
        :raises NetworkError: when the server cannot be reached while settling it.
        """
        params = {"id": cover_id}
        if size is not None:
            if size <= 0:
                raise ConfigError("the cover size must be positive", field="size", value=size)
            params["size"] = str(size)
        return self._signed_url("getCoverArt", params)

    # ------------------------------------------------------------------ internals

    def _endpoint(self, method: str) -> str:
        return f"{self._base_url}/rest/{method}.view"

    def _auth_params(self, method: AuthMethod) -> dict[str, str]:
        creds = self._credentials
        if method is AuthMethod.API_KEY:
            assert creds.api_key is not None
            auth = {"apiKey": creds.api_key}
        else:
            assert creds.username is not None
            assert creds.password is not None
            if method is AuthMethod.TOKEN:
                salt = secrets.token_hex(8)
                token = hashlib.md5(
                    (creds.password + salt).encode("utf-8"), usedforsecurity=False
                ).hexdigest()
                auth = {"u": creds.username, "t": token, "s": salt}
            else:
                auth = {"u": creds.username, "p": "enc:" + creds.password.encode("utf-8").hex()}
        return {**auth, "v": API_VERSION, "c": CLIENT_NAME, "f": "json"}

    def _signed_url(self, method: str, params: Mapping[str, str]) -> str:
        if not self._auth_settled:
            self.ping()
        query = urlencode({**params, **self._auth_params(self._auth)}, quote_via=quote)
        return f"{self._endpoint(method)}?{query}"

    def _call(self, method: str, **params: str) -> tuple[Mapping[str, Any], _Parser]:
        """Call ``method``; negotiate the authentication method on the way.

        :returns: the ``subsonic-response`` object of a successful answer, and a parser that
            names ``method`` and the redacted URL in its errors.
        """
        while True:
            auth = self._auth
            body, status, url = self._retry(functools.partial(self._request, method, params, auth))
            error = self._error_of(body)
            if error is None:
                if not self._auth_settled:
                    with self._lock:
                        self._auth_settled = True
                return body, _Parser(method, url)
            code, message = error
            if (
                auth is AuthMethod.TOKEN
                and not self._auth_settled
                and code
                in (_ERR_TOKEN_UNSUPPORTED, _ERR_MECHANISM_UNSUPPORTED, _ERR_MISSING_PARAMETER)
            ):
                logger.info(
                    "the Subsonic server at %s refused token authentication (error %s); "
                    "falling back to password authentication",
                    self._base_url,
                    code,
                )
                with self._lock:
                    if self._auth is AuthMethod.TOKEN:
                        self._auth = AuthMethod.PASSWORD
                continue
            raise self._error(method, url, status, code, message)

    def _request(
        self, method: str, params: Mapping[str, str], auth: AuthMethod
    ) -> tuple[Mapping[str, Any], int, str]:
        """GET one API method; return its ``subsonic-response``, HTTP status and redacted URL."""
        endpoint = self._endpoint(method)
        query = {**params, **self._auth_params(auth)}
        shown = redact_url(f"{endpoint}?{urlencode(query)}")
        logger.debug("GET %s", shown)
        try:
            response = self._session.get(
                endpoint,
                params=query,
                timeout=self._timeout,
                headers={"Accept": "application/json"},
                check_status=False,
                stream=True,  # read with the session's bounds (size, nesting), never whole
            )
        except DownloadError as exc:
            # the session's typed error, redacted; not chained, because the requests error's
            # own text carries the signed URL (the password or its token)
            exc.url = shown
            raise exc from None
        with response:
            status = response.status_code
            try:
                document = self._session.read_json(response, shown)
            except ResponseMismatchError:
                document = None
        body = document.get("subsonic-response") if isinstance(document, Mapping) else None
        if isinstance(body, Mapping) and (status < 400 or self._error_of(body) is not None):
            return body, status, shown
        if status >= 400:
            raise error_for_status(response, SOURCE_NAME)
        raise SubsonicAPIError(
            f"the answer to {method} is not a Subsonic JSON response (HTTP {status})",
            url=shown,
            status_code=status,
        )

    @staticmethod
    def _error_of(body: Mapping[str, Any]) -> tuple[int | None, str] | None:
        """Return (code, message) when ``body`` is a failed response, ``None`` when ok."""
        status = body.get("status")
        if status == "ok":
            return None
        if status != "failed":
            return (
                None,
                f"the response status is {redact_text(str(status))!r}, not 'ok' or 'failed'",
            )
        error = body.get("error")
        if not isinstance(error, Mapping):
            return None, "the response failed without an error object"
        code = _Parser.opt_int(error, "code")
        message = _Parser.opt_str(error, "message") or "no message"
        return code, message

    def _error(
        self, method: str, url: str, status: int, code: int | None, message: str
    ) -> DownloadError:
        text = f"Subsonic {method} failed with error {code}: {redact_text(message)}"
        if code in _AUTH_ERRORS:
            return AuthenticationError(
                f"the Subsonic server refused the credentials for {method} "
                f"(error {code}: {redact_text(message)})",
                url=url,
                source=SOURCE_NAME,
                status_code=status,
            )
        if code == _ERR_NOT_FOUND:
            return ContentNotFoundError(
                f"the Subsonic server has no such item for {method} ({redact_text(message)})",
                url=url,
                source=SOURCE_NAME,
                status_code=status,
            )
        return SubsonicAPIError(text, url=url, code=code, status_code=status)


# --------------------------------------------------------------------------- subsonic:// URLs


class SubsonicKind(enum.StrEnum):
    """What a ``subsonic://`` URL points at."""

    ALBUM = "album"
    ARTIST = "artist"
    PLAYLIST = "playlist"
    SONG = "song"


_SCHEMES: Final = {"subsonic": "http", "subsonics": "https"}


@dataclass(frozen=True, slots=True)
class SubsonicRef:
    """A parsed ``subsonic://[user@]host[:port][/prefix]/<kind>/<id>`` URL.

    :param base_url: the server root to give :class:`SubsonicClient` (``http`` for
        ``subsonic://``, ``https`` for ``subsonics://``, prefix kept).
    :param username: the user named in the URL, if any (passwords are refused in URLs).
    :param kind: album, artist, playlist or song.
    :param id: the server's id, percent-decoded.

    Example::

        >>> ref = SubsonicRef.parse("subsonics://me@music.example.org/album/al-1")
        >>> ref.base_url, ref.username, ref.kind.value, ref.id
        ('https://music.example.org', 'me', 'album', 'al-1')
    """

    base_url: str
    username: str | None
    kind: SubsonicKind
    id: str

    @classmethod
    def parse(cls, url: str) -> SubsonicRef:
        """Parse a ``subsonic://`` or ``subsonics://`` URL; see :func:`parse_subsonic_url`."""
        return parse_subsonic_url(url)

    def to_url(self) -> str:
        """Return the ``subsonic(s)://`` URL this reference was parsed from (normalised)."""
        parts = urlsplit(self.base_url)
        scheme = "subsonics" if parts.scheme == "https" else "subsonic"
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        path = f"{parts.path}/{self.kind.value}/{quote(self.id, safe='')}"
        return f"{scheme}://{user}{parts.netloc}{path}"


def _bad_url(reason: str, url: str) -> ConfigError:
    shown = redact_url(url)
    return ConfigError(f"invalid Subsonic URL {shown!r}: {reason}", field="url", value=shown)


def parse_subsonic_url(url: str) -> SubsonicRef:
    """Parse ``subsonic://[user@]host[:port][/prefix]/<album|artist|playlist|song>/<id>``.

    ``subsonics://`` means HTTPS. A path prefix before the kind (a server behind a reverse
    proxy at ``/music``) is kept in ``base_url``. A trailing slash is allowed.

    :param url: the URL to parse.
    :returns: the parsed reference.
    :raises ConfigError: (a :class:`ValueError`) when the scheme is not ``subsonic(s)``, the
        host is missing, the port is not a number within 1..65535, a password is given in the
        URL, there is a query or fragment, the kind is unknown, or the id is missing.
    """
    if not isinstance(url, str):
        raise ConfigError("a Subsonic URL must be a string", field="url", value=repr(url))
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise _bad_url(str(exc), url) from None
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise _bad_url("the scheme must be subsonic:// or subsonics://", url)
    if parts.password is not None:
        raise _bad_url("put the password in the configuration, not in the URL", url)
    if not parts.hostname:
        raise _bad_url("the host is missing", url)
    try:
        port = parts.port
    except ValueError:
        raise _bad_url("the port is not a number within 0..65535", url) from None
    if port == 0:
        raise _bad_url("the port must be within 1..65535", url)
    if parts.query or parts.fragment:
        raise _bad_url("a query string or fragment is not allowed", url)
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2:
        raise _bad_url("the path must end with /<album|artist|playlist|song>/<id>", url)
    *prefix, kind_text, raw_id = segments
    try:
        kind = SubsonicKind(kind_text.lower())
    except ValueError:
        raise _bad_url(
            f"unknown kind {kind_text!r}; expected one of "
            f"{', '.join(k.value for k in SubsonicKind)}",
            url,
        ) from None
    item_id = unquote(raw_id)
    if not item_id.strip():
        raise _bad_url("the id is empty", url)
    hostport = parts.netloc.rpartition("@")[2]
    prefix_path = "".join(f"/{segment}" for segment in prefix)
    username = unquote(parts.username) if parts.username else None
    return SubsonicRef(
        base_url=f"{scheme}://{hostport.lower()}{prefix_path}",
        username=username,
        kind=kind,
        id=item_id,
    )
