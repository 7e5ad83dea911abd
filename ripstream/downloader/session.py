"""HTTP sessions: one ``requests.Session`` per source, pooled, rate limited, with typed errors.

:class:`SessionManager` hands out one :class:`DownloadSession` per source. Each wraps a
``requests.Session`` whose urllib3 pool is sized to the concurrency (so no connection is ever
discarded with "connection pool is full"), applies the source's headers, user agent and TLS
setting, paces requests to the source's rate limit, and turns every requests/urllib3 failure
and HTTP error status into the exception tree, raised ``from`` the original.
"""

from __future__ import annotations

import http.cookiejar
import logging
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.cookies import get_cookie_header
from requests.structures import CaseInsensitiveDict

from ripstream.downloader.apibody import read_json
from ripstream.downloader.config import DownloadBehaviorSettings, DownloadConfig
from ripstream.downloader.deadline import DeadlineAdapter
from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.httperrors import error_for_status, map_request_error
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.resources import Closing
from ripstream.downloader.urls import install_log_redaction, split_http_url

__all__ = [
    "SAFE_HEADERS",
    "SENSITIVE_HEADERS",
    "DownloadSession",
    "SessionManager",
    "configured_secrets",
]

logger = logging.getLogger(__name__)

#: Headers that never follow a redirect to another origin (scheme, host and port).
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"}
)
#: The only configured headers that do follow a redirect to another origin: they carry no
#: credentials. Every other header the user or a source set (``X-Custom-Token``) is dropped.
SAFE_HEADERS = frozenset(
    {
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "range",
        "if-range",
        "referer",
        "connection",
        # framing of a body that a 307/308 carries along
        "content-type",
        "content-length",
    }
)


#: Keyword arguments the lean GET passes on unchanged to ``Session.send``.
_LEAN_KWARGS = frozenset({"timeout", "verify", "allow_redirects"})
#: A URL ``PreparedRequest.prepare_url`` would return unchanged: http(s), a lower-case ASCII
#: host, a path and query of characters that need no quoting, no ``%`` escapes to normalise,
#: no user info and no fragment. Anything else is prepared by requests itself.
_PLAIN_URL = re.compile(
    r"https?://[a-z0-9.-]+(?::[0-9]{1,5})?/[A-Za-z0-9._~!$&'()*+,;=:@/-]*"
    r"(?:\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?\Z"
)
#: ``.`` and ``..`` path segments, which urllib3 would remove.
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|\?|\Z)")


class _GuardedSession(requests.Session):
    """A Session that strips, on a change of origin, the sensitive headers and every header
    the user configured (the session's own and the request's), except :data:`SAFE_HEADERS`."""

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        original = urlsplit(response.request.url or "")
        target = urlsplit(prepared_request.url or "")
        if (original.hostname, original.port, original.scheme) != (
            target.hostname,
            target.port,
            target.scheme,
        ):
            configured = {*self.headers, *(response.request.headers or {})}
            dropped = SENSITIVE_HEADERS | {n.lower() for n in configured} - SAFE_HEADERS
            for name in list(prepared_request.headers):
                if name.lower() in dropped:
                    del prepared_request.headers[name]
        else:
            # requests drops a hand-set Cookie header on every hop; on the same origin it
            # belongs to the request as much as Authorization does
            cookie = response.request.headers.get("Cookie")
            if cookie and "Cookie" not in prepared_request.headers:
                prepared_request.headers["Cookie"] = cookie
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]


def configured_secrets(config: DownloadConfig) -> list[str]:
    """The values of every header configured for any source, except :data:`SAFE_HEADERS`,
    and the password of every configured proxy."""
    settings = [config.default_settings]
    settings += [config.get_behavior_for_source(source) for source in config.source_settings]
    headers = [
        value
        for behavior in settings
        for name, value in behavior.headers.items()
        if name.lower() not in SAFE_HEADERS
    ]
    return headers + [password for behavior in settings if (password := _proxy_password(behavior))]


def _proxy_password(settings: DownloadBehaviorSettings) -> str | None:
    try:
        return urlsplit(settings.proxy or "").password
    except ValueError:
        return None


def _environment_matters() -> bool:
    """Whether proxy variables or a .netrc could change what requests sends per request."""
    # a no_proxy list alone changes nothing: it only narrows proxies that are set
    if any(scheme != "no" for scheme in urllib.request.getproxies()):
        return True
    netrc = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    return os.path.exists(netrc) or os.path.exists(os.path.expanduser("~/_netrc"))


def _environment_ca_bundle() -> str | None:
    """The CA bundle requests would take from the environment, read once per session."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def _cookie_jar(path: str) -> http.cookiejar.CookieJar:
    """The cookies of a Netscape ``cookies.txt`` (session cookies included, as curl does).

    :raises ConfigError: when the file cannot be read as one.
    """
    jar = http.cookiejar.MozillaCookieJar()
    try:
        jar.load(path, ignore_discard=True, ignore_expires=True)
    except (OSError, http.cookiejar.LoadError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the cookies file {path!r}: {exc}", field="cookies_file", value=path
        ) from exc
    for cookie in jar:
        if cookie.expires == 0:  # cookies.txt writes 0 for a session cookie (curl, browsers)
            cookie.expires = None
            cookie.discard = True
    return jar


class DownloadSession:
    """HTTP operations for one source. Thread-safe: many download threads share one.

    Example::

        with SessionManager(DownloadConfig()) as manager:
            session = manager.get_session("http")
            data = session.get_json("https://example.com/api/track/1")
    """

    def __init__(
        self,
        source: str,
        settings: DownloadBehaviorSettings,
        session: requests.Session,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.source = source
        self.settings = settings
        self.http = session
        self._limiter: TokenBucket | None = None
        if settings.requests_per_period:
            rate = settings.requests_per_period / settings.rate_period_seconds
            self._limiter = TokenBucket(
                rate, burst=settings.requests_per_period, clock=clock, sleep=sleep
            )

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) timeouts; the read timeout doubles as the no-data stall limit."""
        return (
            self.settings.connect_timeout,
            min(self.settings.timeout_seconds, self.settings.stall_timeout),
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        check_status: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request, paced by the source's rate limit.

        :param check_status: raise the typed error for a status >= 400.
        :raises DownloadError: a typed error, chained from the requests/urllib3 error.
        """
        split_http_url(url)
        if self._limiter is not None:
            self._limiter.acquire(1)
        kwargs.setdefault("timeout", self.timeout)
        # passed explicitly so a CA bundle in the environment cannot re-enable verification
        # that the settings turned off
        kwargs.setdefault("verify", self.http.verify)
        try:
            if method == "GET" and stream and kwargs.keys() <= _LEAN_KWARGS and self._lean():
                response = self.http.send(self._prepared_get(url, headers), stream=True, **kwargs)
            else:
                response = self.http.request(
                    method, url, headers=dict(headers or {}), stream=stream, **kwargs
                )
        except (
            requests.RequestException,
            urllib3.exceptions.HTTPError,
            OSError,
            ValueError,
        ) as exc:
            proxy = self.settings.proxy
            raise map_request_error(exc, url, self.source, proxy) from exc
        if check_status and response.status_code >= 400:
            response.close()
            raise error_for_status(response, self.source)
        return response

    def _lean(self) -> bool:
        """Whether a GET may skip ``Session.request``: nothing it would add per request is
        set (auth from .netrc or the environment's proxies, session params) and the session
        class has not changed how requests are prepared."""
        http = self.http
        kind = type(http)
        return (
            not http.trust_env
            and not http.params
            and kind.request is requests.Session.request
            and kind.prepare_request is requests.Session.prepare_request
        )

    def _prepared_get(
        self, url: str, headers: Mapping[str, str] | None
    ) -> requests.PreparedRequest:
        """The GET that ``Session.prepare_request`` would build, without its per-request
        merging: the session's headers (the request's own win, ``None`` removes one), its
        cookie jar, auth and hooks. The data path sends it with ``Session.send``, so the
        session's adapter (its urllib3 pool), proxies, TLS settings, cookie updates and
        redirect rules all apply as they do to any request."""
        http = self.http
        prepared = requests.PreparedRequest()
        prepared.method = "GET"
        if _PLAIN_URL.match(url) and not _DOT_SEGMENT.search(url):
            prepared.url = url
        else:
            prepared.prepare_url(url, None)
        merged: CaseInsensitiveDict[Any] = CaseInsensitiveDict(http.headers)
        if headers:
            merged.update(headers)
        for name in [name for name, value in merged.items() if value is None]:
            del merged[name]
        prepared.headers = merged
        prepared.body = None
        prepared.hooks = {event: list(hooks) for event, hooks in http.hooks.items()}
        prepared._cookies = http.cookies  # type: ignore[attr-defined]  # copied on redirect
        if len(http.cookies):
            cookie = get_cookie_header(http.cookies, prepared)  # type: ignore[no-untyped-call]
            if cookie is not None:
                prepared.headers["Cookie"] = cookie
        if http.auth is not None:
            prepared.prepare_auth(http.auth, prepared.url)
        return prepared

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """GET ``url``; see :meth:`request`."""
        return self.request("GET", url, **kwargs)

    def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET ``url`` and parse JSON, reading at most ``settings.max_api_bytes`` (after
        decompression) and refusing JSON nested deeper than ``apibody.MAX_JSON_DEPTH``.

        :raises ResponseMismatchError: when the body is not JSON, too large or too deep.
        """
        kwargs["stream"] = True  # read with a bound, never whole
        with self.request("GET", url, **kwargs) as response:
            return self.read_json(response, url)

    def read_json(self, response: requests.Response, url: str) -> Any:
        """Parse the JSON body of a streamed ``response``, with the bounds of :meth:`get_json`.

        :raises ResponseMismatchError: when the body is not JSON, too large or too deep.
        """
        return read_json(
            response, url=url, source=self.source, max_bytes=self.settings.max_api_bytes
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self.http.close()


class SessionManager(Closing):
    """One :class:`DownloadSession` per source, created on first use. Thread-safe.

    Subclass and override :meth:`create_session` to add auth, adapters or proxies.

    Example::

        class ProxiedSessions(SessionManager):
            def create_session(self, source, settings):
                session = super().create_session(source, settings)
                session.proxies = {"https": "http://proxy:3128"}
                return session
    """

    def __init__(
        self,
        config: DownloadConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.config = config or DownloadConfig()
        self._clock = clock
        self._sleep = sleep
        self._sessions: dict[str, DownloadSession] = {}
        self._lock = threading.Lock()
        # urllib3's DEBUG lines quote request targets, query strings included
        install_log_redaction(configured_secrets(self.config))

    def pool_size(self, settings: DownloadBehaviorSettings) -> int:
        """Connections kept per host: every download thread times its segments, plus slack."""
        per_download = min(settings.segments, settings.max_connections_per_host)
        return self.config.max_concurrent_downloads * per_download + 2

    def create_session(self, source: str, settings: DownloadBehaviorSettings) -> requests.Session:
        """Build the ``requests.Session`` for ``source`` (the override point)."""
        session = _GuardedSession()
        # requests re-reads proxy variables and .netrc from the environment on every request
        # (most of its per-request cost); skip that when there is nothing to find
        session.trust_env = _environment_matters()
        session.max_redirects = settings.max_redirects
        # with trust_env off, the environment's CA bundle is applied here, once
        bundle = (settings.ca_bundle or _environment_ca_bundle()) if settings.verify_ssl else None
        session.verify = bundle or settings.verify_ssl
        session.headers["User-Agent"] = settings.user_agent
        session.headers["Accept-Encoding"] = "identity"
        session.headers.update(settings.headers)
        if settings.proxy:
            session.proxies = {"http": settings.proxy, "https": settings.proxy}
        if settings.cookies_file:
            session.cookies.update(_cookie_jar(settings.cookies_file))
        if not settings.verify_ssl:  # said once here, instead of by urllib3 on every connection
            logger.warning("%s: TLS certificates are not checked (verify_ssl is off)", source)
        size = self.pool_size(settings)
        # retries are ours (typed, with backoff), so urllib3 must not retry on its own
        adapter = DeadlineAdapter(
            header_timeout=settings.header_timeout,
            warn_unverified=settings.verify_ssl,
            pool_connections=16,
            pool_maxsize=size,
            max_retries=0,
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def get_session(self, source: str) -> DownloadSession:
        """The session for ``source``, created on first use."""
        with self._lock:
            session = self._sessions.get(source)
            if session is None:
                settings = self.config.get_behavior_for_source(source)
                session = DownloadSession(
                    source,
                    settings,
                    self.create_session(source, settings),
                    clock=self._clock,
                    sleep=self._sleep,
                )
                self._sessions[source] = session
            return session

    def close(self) -> None:
        """Close every session."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()
