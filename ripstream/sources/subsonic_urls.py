"""``subsonic://`` URLs: what a user types to point RipStream at an album, artist, playlist or song.

Example::

    >>> parse_subsonic_url("subsonics://me@music.example.org/album/al-1").base_url
    'https://music.example.org'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, quote, unquote, urlsplit

from ripstream.downloader.plugin import ConfigError, redact_url

__all__ = ["SubsonicKind", "SubsonicRef", "parse_subsonic_url"]


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


def _checked_parts(url: str) -> tuple[SplitResult, str]:
    """``url`` split, with its scheme, host, port and absence of secrets checked."""
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
    return parts, scheme


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
    parts, scheme = _checked_parts(url)
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
