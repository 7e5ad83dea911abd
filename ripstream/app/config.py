"""The application's configuration: the framework's :class:`DownloadConfig` plus what only the
application uses (credentials, tags, the download archive).

A config file stays one flat JSON object, as it always was: the application keys
(:data:`~ripstream.downloader.config.APPLICATION_KEYS`) are taken out, the rest is the
:class:`DownloadConfig`. Files written before the split load unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ripstream.downloader.apibody import MAX_JSON_DEPTH, deep_field
from ripstream.downloader.config import APPLICATION_KEYS, DownloadConfig, require_object
from ripstream.downloader.exceptions import ConfigError, StorageError
from ripstream.downloader.files import atomic_write_text
from ripstream.downloader.safeio import read_regular
from ripstream.downloader.session import configured_secrets

__all__ = ["MAX_CONFIG_BYTES", "AppConfig"]

#: A config file larger than this is not a config file.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


@dataclass(slots=True)
class AppConfig:
    """What the CLI and batches run with. Not thread-safe to mutate.

    Example::

        app = AppConfig.load("ripstream.json")
        app.download.max_concurrent_downloads  # the framework's settings
        app.archive_path                       # the application's

    :param download: the framework's configuration.
    :param source_credentials: per source, the keys its ``authenticate`` takes (secrets:
        never printed).
    :param write_tags: write tags into downloaded tracks (needs the ``tags`` extra).
    :param archive_path: the download archive; ``None`` for ``<download_directory>/
        .ripstream-archive.sqlite3``.
    """

    download: DownloadConfig = field(default_factory=DownloadConfig)
    source_credentials: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    write_tags: bool = True
    archive_path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.download, DownloadConfig):
            raise ConfigError("download must be a DownloadConfig", field="download")
        if not isinstance(self.write_tags, bool):
            raise ConfigError(
                f"write_tags must be true or false, got {reprlib.repr(self.write_tags)}",
                field="write_tags",
                value=self.write_tags,
            )
        if self.archive_path is not None:
            if not isinstance(self.archive_path, str | os.PathLike):
                raise ConfigError(
                    f"archive_path must be a path or null, got {reprlib.repr(self.archive_path)}",
                    field="archive_path",
                    value=self.archive_path,
                )
            self.archive_path = Path(self.archive_path)
        credentials = self.source_credentials
        if not (
            isinstance(credentials, dict)
            and all(
                isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
                for v in credentials.values()
            )
        ):
            raise ConfigError(
                "source_credentials must map source names to objects of strings",
                field="source_credentials",
                value="<hidden>",
            )

    def secrets(self) -> list[str]:
        """Every value of this config that output must never show: the configured headers'
        (except harmless ones such as User-Agent) and every credential."""
        values = configured_secrets(self.download)
        return values + [v for keys in self.source_credentials.values() for v in keys.values()]

    def credentials(self, source: str) -> dict[str, str]:
        """The configured credentials of ``source`` (a copy)."""
        return dict(self.source_credentials.get(source, {}))

    def replace(self, **changes: Any) -> AppConfig:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-ready dict of a config file."""
        return {
            **self.download.to_dict(),
            "source_credentials": self.source_credentials,
            "write_tags": self.write_tags,
            "archive_path": str(self.archive_path) if self.archive_path else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AppConfig:
        """Build from a flat dict; unknown keys and bad values raise :class:`ConfigError`."""
        require_object(data)
        framework = {k: v for k, v in data.items() if k not in APPLICATION_KEYS}
        application = {k: v for k, v in data.items() if k in APPLICATION_KEYS}
        return cls(download=DownloadConfig.from_dict(framework), **application)

    @classmethod
    def load(cls, path: str | Path) -> AppConfig:
        """Read a JSON config file (old flat files included).

        :raises ConfigError: when the file is missing, unreadable, not JSON, or invalid.
        """
        try:
            raw = read_regular(Path(path), "config file", MAX_CONFIG_BYTES)
        except StorageError as exc:
            raise ConfigError(exc.message, field="config", value=str(path)) from exc
        if raw is None:
            raise ConfigError(
                f"cannot read config file {str(path)!r}: No such file or directory",
                field="config",
                value=str(path),
            )
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {str(path)!r} is not UTF-8 text", field="config", value=str(path)
            ) from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"config file {path!s} is not valid JSON: {exc}", field="config"
            ) from exc
        except RecursionError as exc:
            name = deep_field(raw.decode("utf-8-sig")) or "config"
            raise ConfigError(
                f"config file {path!s}: {name} nests its JSON too deeply "
                f"(more than {MAX_JSON_DEPTH} levels)",
                field=name,
            ) from exc
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(
                f"config file {path!s}: {exc.message}", field=exc.field, value=exc.value
            ) from exc

    def save(self, path: str | Path) -> None:
        """Write the config as one flat JSON object, atomically."""
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")
