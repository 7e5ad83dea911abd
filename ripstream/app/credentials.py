"""Where a source's credentials come from: the config, the environment, then a prompt."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ripstream.app.config import AppConfig
from ripstream.downloader.exceptions import AuthenticationError, ConfigError

__all__ = ["credential_variable", "credentials_for", "source_name_of"]


def credential_variable(source: str, key: str) -> str:
    """The environment variable that may hold ``key``, e.g. ``RIPSTREAM_SUBSONIC_PASSWORD``."""
    return "RIPSTREAM_" + re.sub(r"[^A-Za-z0-9]+", "_", f"{source}_{key}").upper()


def source_name_of(source: type[Any]) -> str:
    """A source class's ``source_name``.

    :raises ConfigError: when the class has none.
    """
    name = getattr(source, "source_name", None)
    if not isinstance(name, str):
        raise ConfigError(f"{source.__name__} has no source_name", field="source")
    return name


def credentials_for(
    source: type[Any],
    app: AppConfig,
    *,
    environ: Mapping[str, str],
    prompt: Callable[[str], str] | None = None,
) -> dict[str, str]:
    """Credentials for ``source``: the config's, then environment variables, then a prompt.

    :param prompt: asks the user for a missing secret (``None`` when nobody can answer).
    :raises AuthenticationError: when a required credential is missing and cannot be asked.
    """
    name = source_name_of(source)
    required: tuple[str, ...] = getattr(source, "required_credentials", ())
    found = app.credentials(name)
    for key in (*required, "username", "api_key"):
        variable = credential_variable(name, key)
        if key not in found and environ.get(variable):
            found[key] = environ[variable]
    for key in required:
        if key in found or (key == "password" and "api_key" in found):
            continue
        if prompt is None:
            raise AuthenticationError(
                f"the {name} source needs a {key}: set {credential_variable(name, key)}, or "
                f"source_credentials.{name}.{key} in the --config file",
                source=name,
            )
        found[key] = prompt(f"{name} {key}: ")
    return found
