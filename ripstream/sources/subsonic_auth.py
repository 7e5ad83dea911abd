"""How a Subsonic client proves who it is: a salted token, the password, or an API key.

Example::

    >>> SubsonicCredentials(username="me", password="hunter2")
    SubsonicCredentials(username='me', password=<set>)
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass

from ripstream.downloader.plugin import ConfigError

__all__ = ["AuthMethod", "SubsonicCredentials", "auth_params"]


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


def auth_params(credentials: SubsonicCredentials, method: AuthMethod) -> dict[str, str]:
    """The query parameters that authenticate one request with ``method`` (a fresh salt for
    every token; never a username beside an API key)."""
    if method is AuthMethod.API_KEY:
        assert credentials.api_key is not None
        return {"apiKey": credentials.api_key}
    assert credentials.username is not None
    assert credentials.password is not None
    if method is AuthMethod.TOKEN:
        salt = secrets.token_hex(8)
        token = hashlib.md5(
            (credentials.password + salt).encode("utf-8"), usedforsecurity=False
        ).hexdigest()
        return {"u": credentials.username, "t": token, "s": salt}
    return {"u": credentials.username, "p": "enc:" + credentials.password.encode("utf-8").hex()}
