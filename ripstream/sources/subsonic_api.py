"""A client for the Subsonic / OpenSubsonic REST API (Navidrome, gonic, Airsonic, LMS...).

The client speaks JSON (``f=json``), authenticates every request, and turns every answer into
frozen dataclasses (:mod:`~ripstream.sources.subsonic_models`) at the edge, so no raw JSON
travels further into RipStream.

Discovery
---------
Before its first authenticated call, the client asks the server about itself once:
``getOpenSubsonicExtensions`` (public by the OpenSubsonic specification) gives the server's
name, version and extensions (:class:`ServerInfo`, :attr:`SubsonicClient.server`). What it
announces is used instead of probing by failure: an API key is never sent to a server that
does not announce ``apiKeyAuthentication``, a server that refuses passwords but announces API
keys is explained as such, and a server known to transcode ``download`` (gonic before the fix)
is sent to ``stream?format=raw`` (:attr:`SubsonicClient.download_method`).

Authentication
--------------
* **Salted token** (the default with a password): ``t = md5(password + salt)`` and ``s = salt``,
  a fresh random salt (:mod:`secrets`) for every request.
* **Password** (``p=enc:<hex>``): used when the server says it cannot check tokens, that is
  error 41 (LDAP users, servers that do not keep passwords), OpenSubsonic's 42 (unless the
  server announces API keys: then the error says to use one), or, before any call has
  succeeded, error 10 (what servers that only know ``p`` answer, Supysonic among them). The
  client then remembers the choice for its lifetime. Pass ``auth=AuthMethod.PASSWORD`` to skip
  the probe. Over plain ``http`` this is as good as sending the password: a warning is logged
  once per client before the first such request.
* **API key** (OpenSubsonic ``apiKey``): when the credentials hold an API key; no username is
  sent then (a server answers 43 to both).

Every request also carries ``v`` (:data:`API_VERSION`), ``c`` (:data:`CLIENT_NAME`) and
``f=json``.

Errors
------
A ``subsonic-response`` whose ``status`` is ``failed`` (or ``fail``) raises the error of its
code with a plain message (:mod:`~ripstream.sources.subsonic_errors`): ``wrong username or
password``, ``downloads are disabled on this server``... Transport failures raise the
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
            print(song.track, song.title, client.media_url("download", {"id": song.id}))
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias
from urllib.parse import quote, urlencode, urlsplit

from ripstream.downloader.plugin import (
    AuthenticationError,
    ConfigError,
    ContentNotFoundError,
    DownloadError,
    DownloadSession,
    HTTPStatusError,
    ResponseMismatchError,
    error_for_status,
    redact_url,
)
from ripstream.sources.subsonic_auth import AuthMethod, SubsonicCredentials, auth_params
from ripstream.sources.subsonic_errors import (
    SOURCE_NAME,
    ErrorCode,
    SubsonicAPIError,
    SubsonicAuthError,
    error_for_code,
    failure_of,
)
from ripstream.sources.subsonic_models import (
    Album,
    Artist,
    Parser,
    Playlist,
    ServerInfo,
    Song,
)
from ripstream.sources.subsonic_urls import SubsonicKind, SubsonicRef, parse_subsonic_url

__all__ = [
    "API_VERSION",
    "CLIENT_NAME",
    "SOURCE_NAME",
    "Album",
    "Artist",
    "AuthMethod",
    "Playlist",
    "ServerInfo",
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
#: The OpenSubsonic extension that announces ``apiKey`` logins.
API_KEY_EXTENSION: Final = "apiKeyAuthentication"
#: The endpoints that serve a song's bytes.
MEDIA_METHODS: Final = frozenset({"download", "stream"})
_PASSWORD_CODES: Final = frozenset(
    {ErrorCode.TOKEN_UNSUPPORTED, ErrorCode.MECHANISM_UNSUPPORTED, ErrorCode.MISSING_PARAMETER}
)
_NOT_OPEN_SUBSONIC: Final = (SubsonicAPIError, HTTPStatusError, ContentNotFoundError)
_USE_API_KEY: Final = (
    "this server takes OpenSubsonic API keys instead (it announces apiKeyAuthentication): "
    "create one in its web interface and give it as api_key (RIPSTREAM_SUBSONIC_API_KEY)"
)


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
        self._server: ServerInfo | None = None
        self._avoid_download = False
        self._warned = False

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

    @property
    def server(self) -> ServerInfo:
        """What the server announced about itself (asked once, on first use).

        :raises NetworkError: when the server cannot be reached.
        """
        self._discover()
        assert self._server is not None
        return self._server

    @property
    def download_method(self) -> str:
        """``"download"``, or ``"stream"`` once the server refused downloads (error 50) or is
        known to transcode ``download``."""
        return "stream" if self._avoid_download or self.server.transcodes_download else "download"

    def avoid_download(self) -> None:
        """Use ``stream`` from now on (the server answered ``download`` with error 50)."""
        with self._lock:
            self._avoid_download = True

    def download_url(self, song_id: str) -> str:
        """The signed URL of a song's original bytes (``download?format=raw``, or
        ``stream?format=raw`` where ``download`` is refused); see :meth:`media_url`."""
        method = self.download_method
        extra = {"estimateContentLength": "true"} if method == "stream" else {}
        return self.media_url(method, {"id": song_id, "format": "raw", **extra})

    def media_url(self, method: str, params: Mapping[str, str]) -> str:
        """Return the signed URL of a media endpoint (``download`` or ``stream``).

        The URL carries authentication parameters: a one-time salted token, or, on servers
        that only accept passwords, the hex-encoded password itself. Treat it as a secret and
        log it only through :func:`redact_url`. If the authentication method is not settled
        yet, this first calls :meth:`ping` to settle it.

        :param params: ``id`` and the endpoint's options (``format``, ``maxBitRate``...).
        :returns: an absolute URL; GET it to receive the bytes.
        :raises ConfigError: for another method.
        :raises AuthenticationError: when settling the authentication method fails.
        :raises NetworkError: when the server cannot be reached while settling it.
        """
        if method not in MEDIA_METHODS:
            raise ConfigError(f"{method!r} is not a media endpoint", field="method", value=method)
        return self._signed_url(method, params)

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
        if method is not AuthMethod.TOKEN:
            self._warn_plaintext(method)
        signed = auth_params(self._credentials, method)
        return {**signed, "v": API_VERSION, "c": CLIENT_NAME, "f": "json"}

    def _warn_plaintext(self, method: AuthMethod) -> None:
        """Once per client: a password or key is about to travel unencrypted."""
        if self._warned or urlsplit(self._base_url).scheme != "http":
            return
        with self._lock:
            warned, self._warned = self._warned, True
        if not warned:
            what = "API key" if method is AuthMethod.API_KEY else "password (hex-encoded)"
            logger.warning(
                "sending the %s to %s over plain http: anyone on the network can read it "
                "and log in; use subsonics:// (https) where the server offers it",
                what,
                self._base_url,
            )

    def _signed_url(self, method: str, params: Mapping[str, str]) -> str:
        if not self._auth_settled:
            self.ping()
        query = urlencode({**params, **self._auth_params(self._auth)}, quote_via=quote)
        return f"{self._endpoint(method)}?{query}"

    def _discover(self) -> None:
        """Ask ``getOpenSubsonicExtensions`` once (public: no credentials are sent)."""
        if self._server is not None:
            return
        try:
            body, _, _ = self._retry(
                functools.partial(self._request, "getOpenSubsonicExtensions", {}, None)
            )
        except (*_NOT_OPEN_SUBSONIC, AuthenticationError) as exc:
            logger.debug("%s does not list OpenSubsonic extensions: %s", self._base_url, exc)
            info = ServerInfo()
        else:
            info = ServerInfo.parse(body, extensions=failure_of(body) is None)
        logger.debug("%s is %s, extensions: %s", self._base_url, info, sorted(info.extensions))
        with self._lock:
            self._server = self._server or info

    def _call(self, method: str, **params: str) -> tuple[Mapping[str, Any], Parser]:
        """Call ``method``; negotiate the authentication method on the way.

        :returns: the ``subsonic-response`` object of a successful answer, and a parser that
            names ``method`` and the redacted URL in its errors.
        """
        server = self.server
        keys = server.supports(API_KEY_EXTENSION)
        if self._auth is AuthMethod.API_KEY and server.open_subsonic and not keys:
            raise SubsonicAuthError(
                f"{server} does not accept API keys (it does not announce the OpenSubsonic "
                "apiKeyAuthentication extension): log in with username and password",
                url=redact_url(self._endpoint(method)),
            )
        while True:
            auth = self._auth
            body, status, url = self._retry(functools.partial(self._request, method, params, auth))
            failure = failure_of(body)
            if failure is None:
                if not self._auth_settled:
                    with self._lock:
                        self._auth_settled = True
                return body, Parser(method, url)
            code, message = failure
            if not self._falls_back(auth, code):
                raise self._error(method, url, status, code, message)

    def _falls_back(self, auth: AuthMethod, code: int | None) -> bool:
        """Whether to try the password after ``code`` refused a token (and switch to it)."""
        if auth is not AuthMethod.TOKEN or self._auth_settled or code not in _PASSWORD_CODES:
            return False
        if code == ErrorCode.MECHANISM_UNSUPPORTED and self.server.supports(API_KEY_EXTENSION):
            return False  # it said which mechanism it takes: no point sending the password
        logger.info(
            "the Subsonic server at %s refused token authentication (error %s); "
            "falling back to password authentication",
            self._base_url,
            code,
        )
        with self._lock:
            if self._auth is AuthMethod.TOKEN:
                self._auth = AuthMethod.PASSWORD
        return True

    def _request(
        self, method: str, params: Mapping[str, str], auth: AuthMethod | None
    ) -> tuple[Mapping[str, Any], int, str]:
        """GET one API method; return its ``subsonic-response``, HTTP status and redacted URL.
        ``auth=None`` sends no credentials (public endpoints)."""
        endpoint = self._endpoint(method)
        signed = self._auth_params(auth) if auth is not None else {}
        query = {**params, "v": API_VERSION, "c": CLIENT_NAME, "f": "json", **signed}
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
        if isinstance(body, Mapping) and (status < 400 or failure_of(body) is not None):
            return body, status, shown
        if status >= 400:
            raise error_for_status(response, SOURCE_NAME)
        raise SubsonicAPIError(
            f"the answer to {method} is not a Subsonic JSON response (HTTP {status})",
            url=shown,
            status_code=status,
        )

    def _error(
        self, method: str, url: str, status: int, code: int | None, message: str
    ) -> DownloadError:
        return error_for_code(
            code, message, method=method, url=url, status_code=status, hint=self._hint(code)
        )

    def _hint(self, code: int | None) -> str | None:
        """What the user can do about ``code``, from what the server announced."""
        server = self._server or ServerInfo()
        keys = server.supports(API_KEY_EXTENSION)
        if self._credentials.api_key is None:
            if keys and code in (ErrorCode.TOKEN_UNSUPPORTED, ErrorCode.MECHANISM_UNSUPPORTED):
                return f"{server} does not accept passwords; {_USE_API_KEY}"
            return None
        if code == ErrorCode.MISSING_PARAMETER and not server.open_subsonic:
            return f"{server} predates OpenSubsonic API keys: log in with username and password"
        if code == ErrorCode.INVALID_API_KEY:
            return "create a new key in the server's web interface"
        return None
