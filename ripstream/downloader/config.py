"""Configuration: DownloadConfig, DownloadBehaviorSettings, RetryStrategy, OverwritePolicy.

Every value is checked in ``__post_init__``; a bad one raises :class:`ConfigError` naming the
field and the value. Configs round-trip through JSON (``save`` / ``load``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ripstream import __version__
from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.schedule import Schedule, as_schedule
from ripstream.downloader.units import parse_rate
from ripstream.downloader.urls import check_proxy

__all__ = [
    "APPLICATION_KEYS",
    "DownloadBehaviorSettings",
    "DownloadConfig",
    "OverwritePolicy",
    "RetryStrategy",
    "parse_rate",
    "require_object",
]

DEFAULT_USER_AGENT = f"ripstream/{__version__}"
#: Keys of older config files that now belong to the application (``ripstream.app``).
APPLICATION_KEYS = frozenset({"source_credentials", "write_tags", "archive_path"})


class RetryStrategy(enum.Enum):
    """How the wait between attempts grows.

    ``FIXED`` waits ``retry_delay`` each time, ``LINEAR`` waits ``retry_delay * attempt``,
    ``EXPONENTIAL`` waits ``retry_delay * 2**(attempt-1)`` with random jitter; all are capped by
    ``max_retry_delay``. A server's ``Retry-After`` overrides the computed wait.
    """

    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class OverwritePolicy(enum.Enum):
    """What to do when the final path already exists."""

    SKIP = "skip"  #: keep the existing file and report the download as skipped
    OVERWRITE = "overwrite"  #: replace it atomically once the new file is complete
    RENAME = "rename"  #: write ``name (1).ext`` beside it
    ERROR = "error"  #: fail with TargetExistsError


def _rate(name: str, value: Any) -> float | None:
    """:func:`parse_rate` for the setting ``name``, so its error names that setting."""
    try:
        return parse_rate(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc.message}", field=name, value=value) from None


def _check(
    condition: bool, name: str, value: Any, requirement: str, shown: str | None = None
) -> None:
    if not condition:
        # reprlib: a huge or deeply nested value makes a short message, not a RecursionError
        text = reprlib.repr(value) if shown is None else shown
        raise ConfigError(f"{name} {requirement}, got {text}", field=name, value=value)


def _finite(value: Any) -> bool:
    """A real number that is not NaN or infinite (JSON's ``Infinity`` parses as one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_POSITIVE = (
    "timeout_seconds",
    "connect_timeout",
    "stall_timeout",
    "min_speed_window",
    "header_timeout",
    "max_decoded_ratio",
    "rate_period_seconds",
)
_NON_NEGATIVE = ("retry_delay", "max_retry_delay", "retry_jitter", "max_retry_after")
_INTEGERS = (
    ("max_retries", 0),
    ("segments", 1),
    ("max_redirects", 0),
    ("max_connections_per_host", 1),
    ("max_per_host", 1),
    ("chunk_size", 1024),
    ("min_segment_size", 1),
    ("max_api_bytes", 1024),
)
_FLAGS = ("verify_checksums", "verify_ssl", "resume", "fsync")


@dataclass(frozen=True, slots=True)
class DownloadBehaviorSettings:
    """How each download behaves. Frozen, so it is safe to share between threads.

    The defaults are the careful ones: retries with backoff, resume, stall detection,
    checksum verification and TLS verification are all on.

    Example::

        settings = DownloadBehaviorSettings(timeout_seconds=60.0, max_retries=5)
    """

    timeout_seconds: float = 30.0
    connect_timeout: float = 10.0
    max_retries: int = 5
    retry_strategy: RetryStrategy | Callable[[int], float] = RetryStrategy.EXPONENTIAL
    retry_delay: float = 1.0
    max_retry_delay: float = 60.0
    retry_jitter: float = 0.5
    max_retry_after: float = 300.0
    verify_checksums: bool = True
    verify_ssl: bool = True
    resume: bool = True
    overwrite: OverwritePolicy = OverwritePolicy.SKIP
    fsync: bool = False
    segments: int = 1
    min_segment_size: int = 4 * 1024 * 1024
    max_connections_per_host: int = 16
    max_per_host: int = 4
    chunk_size: int = 1024 * 1024
    rate_limit: float | None = None
    stall_timeout: float = 30.0
    #: bytes/s; a transfer slower than this over a whole window is a stall (retried, resumed)
    min_speed: float | None = 1024.0
    min_speed_window: float = 60.0
    #: the response's status line and headers must arrive within this many seconds in all,
    #: however slowly a server drips them
    header_timeout: float = 60.0
    #: the largest file accepted, in bytes (``None``: no limit)
    max_filesize: int | None = None
    #: how much bigger than the bytes on the wire a compressed body may decode to
    max_decoded_ratio: float = 100.0
    max_redirects: int = 10
    requests_per_period: int | None = None
    rate_period_seconds: float = 1.0
    user_agent: str = DEFAULT_USER_AGENT
    headers: dict[str, str] = field(default_factory=dict)
    #: every request through this proxy: ``http://``, ``https://``, ``socks5(h)://HOST:PORT``
    proxy: str | None = None
    #: CA certificates (a PEM file or folder) to verify TLS with, instead of the defaults
    ca_bundle: str | None = None
    #: a Netscape ``cookies.txt`` whose cookies are sent (as curl, wget and yt-dlp read it)
    cookies_file: str | None = None
    #: the most bytes one API answer (``get_json``) may have, after decompression
    max_api_bytes: int = 32 * 1024 * 1024

    def __post_init__(self) -> None:
        self._check_numbers()
        self._normalise_choices()
        object.__setattr__(self, "rate_limit", _rate("rate_limit", self.rate_limit))
        self._check_optional_limits()
        if self.proxy not in (None, ""):  # "" in a config file: no proxy
            check_proxy(self.proxy)
        _check(
            isinstance(self.user_agent, str) and bool(self.user_agent),
            "user_agent",
            self.user_agent,
            "must be a non-empty string",
        )
        _check(
            isinstance(self.headers, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()),
            "headers",
            self.headers,
            "must map header names to string values",
            # the names only: header values are often secrets
            reprlib.repr(list(self.headers) if isinstance(self.headers, dict) else self.headers),
        )

    def _check_numbers(self) -> None:
        for name in _POSITIVE:
            value = getattr(self, name)
            _check(_finite(value) and value > 0, name, value, "must be a finite number > 0")
        for name in _NON_NEGATIVE:
            value = getattr(self, name)
            _check(_finite(value) and value >= 0, name, value, "must be a finite number >= 0")
        for name, low in _INTEGERS:
            value = getattr(self, name)
            _check(type(value) is int and value >= low, name, value, f"must be an integer >= {low}")
        for name in _FLAGS:
            value = getattr(self, name)
            _check(isinstance(value, bool), name, value, "must be true or false")

    def _normalise_choices(self) -> None:
        if not isinstance(self.retry_strategy, RetryStrategy):
            if isinstance(self.retry_strategy, str):
                object.__setattr__(
                    self,
                    "retry_strategy",
                    _enum(RetryStrategy, "retry_strategy", self.retry_strategy),
                )
            else:
                _check(
                    callable(self.retry_strategy),
                    "retry_strategy",
                    self.retry_strategy,
                    "must be fixed, linear, exponential or a callable",
                )
        if not isinstance(self.overwrite, OverwritePolicy):
            object.__setattr__(
                self, "overwrite", _enum(OverwritePolicy, "overwrite", self.overwrite)
            )

    def _check_optional_limits(self) -> None:
        if self.max_filesize is not None:
            _check(
                type(self.max_filesize) is int and self.max_filesize > 0,
                "max_filesize",
                self.max_filesize,
                "must be an integer > 0 (bytes) or null",
            )
        if self.min_speed is not None:
            _check(
                _finite(self.min_speed) and self.min_speed > 0,
                "min_speed",
                self.min_speed,
                "must be > 0 bytes/s or null",
            )
        if self.requests_per_period is not None:
            _check(
                type(self.requests_per_period) is int and self.requests_per_period > 0,
                "requests_per_period",
                self.requests_per_period,
                "must be an integer > 0",
            )

    def replace(self, **changes: Any) -> DownloadBehaviorSettings:
        """A copy with ``changes`` applied and validated.

        :raises ConfigError: for an unknown setting name or a bad value.
        """
        known = {f.name for f in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ConfigError(
                    f"unknown setting {name!r}; known settings: {', '.join(sorted(known))}",
                    field=name,
                    value=value,
                )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; a callable retry strategy cannot be saved."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif callable(value):
                raise ConfigError(
                    f"{f.name} is a callable and cannot be saved to JSON", field=f.name, value=value
                )
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DownloadBehaviorSettings:
        """Build from a dict such as :meth:`to_dict` makes; unknown keys are errors."""
        _check(isinstance(data, dict), "settings", data, "must be a JSON object")
        return cls().replace(**data)


def require_object(data: Any) -> None:
    """:raises ConfigError: unless ``data`` is a JSON object (a dict)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"config must be a JSON object, got {type(data).__name__}", field="config", value=data
        )


def _enum(kind: type[enum.Enum], name: str, value: Any) -> Any:
    try:
        return kind(value.lower() if isinstance(value, str) else value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise ConfigError(
            f"{name} must be one of {choices}, got {value!r}", field=name, value=value
        ) from None


@dataclass(slots=True)
class DownloadConfig:
    """The whole configuration: where files go, how many at once, and per-source settings.

    Not thread-safe to mutate; build it first, then share it read-only.

    Example::

        config = DownloadConfig(download_directory=Path("./downloads"), max_concurrent_downloads=3)
        config.add_source_setting("deezer", "timeout_seconds", 60.0)
        config.get_behavior_for_source("deezer").timeout_seconds  # 60.0
    """

    download_directory: Path = field(default_factory=lambda: Path("downloads"))
    max_concurrent_downloads: int = 3
    default_settings: DownloadBehaviorSettings = field(default_factory=DownloadBehaviorSettings)
    source_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    filename_template: str | None = None
    bandwidth_limit: float | None = None
    schedule: Schedule | None = None
    _effective: dict[str, tuple[DownloadBehaviorSettings, DownloadBehaviorSettings]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _check(
            isinstance(self.download_directory, str | os.PathLike),
            "download_directory",
            self.download_directory,
            "must be a path",
        )
        self.download_directory = Path(self.download_directory)
        _check(
            type(self.max_concurrent_downloads) is int and self.max_concurrent_downloads >= 1,
            "max_concurrent_downloads",
            self.max_concurrent_downloads,
            "must be an integer >= 1",
        )
        _check(
            isinstance(self.default_settings, DownloadBehaviorSettings),
            "default_settings",
            self.default_settings,
            "must be a DownloadBehaviorSettings",
        )
        _check(
            self.filename_template is None
            or (isinstance(self.filename_template, str) and bool(self.filename_template)),
            "filename_template",
            self.filename_template,
            "must be a non-empty string, or null for each source's own naming",
        )
        self.bandwidth_limit = _rate("bandwidth_limit", self.bandwidth_limit)
        self.schedule = as_schedule(self.schedule)
        for source, overrides in self.source_settings.items():
            _check(
                isinstance(overrides, dict),
                f"source_settings.{source}",
                overrides,
                "must be a JSON object of settings",
            )
            self.default_settings.replace(**overrides)  # validates; raises naming the field
            _check(
                isinstance(source, str) and bool(source),
                "source",
                source,
                "must be a non-empty name",
            )

    def add_source_setting(self, source: str, key: str, value: Any) -> None:
        """Override one behaviour setting for one source.

        :raises ConfigError: for an unknown key or a bad value.
        """
        if isinstance(value, enum.Enum):
            value = value.value  # stored as JSON would hold it, so save() always works
        overrides = {**self.source_settings.get(source, {}), key: value}
        self.default_settings.replace(**overrides)
        self.source_settings[source] = overrides
        self._effective.pop(source, None)

    def get_behavior_for_source(self, source: str) -> DownloadBehaviorSettings:
        """The default settings with ``source``'s overrides applied."""
        cached = self._effective.get(source)
        if cached is not None and cached[0] is self.default_settings:
            return cached[1]
        overrides = self.source_settings.get(source)
        settings = (
            self.default_settings.replace(**overrides) if overrides else self.default_settings
        )
        self._effective[source] = (self.default_settings, settings)
        return settings

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "download_directory": str(self.download_directory),
            "max_concurrent_downloads": self.max_concurrent_downloads,
            "default_settings": self.default_settings.to_dict(),
            "source_settings": self.source_settings,
            "filename_template": self.filename_template,
            "bandwidth_limit": self.bandwidth_limit,
            "schedule": None if self.schedule is None else self.schedule.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> DownloadConfig:
        """Build from a dict; unknown keys and bad values raise :class:`ConfigError`."""
        require_object(data)
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        moved = sorted(set(data) & APPLICATION_KEYS)
        if moved:
            raise ConfigError(
                f"{moved[0]!r} is an application setting, not a DownloadConfig one: load the "
                "file with ripstream.app.AppConfig.load (as the CLI's --config does)",
                field=moved[0],
                value="<hidden>" if moved[0] == "source_credentials" else data[moved[0]],
            )
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r}; known keys: {', '.join(sorted(known))}",
                field=unknown[0],
                value=data[unknown[0]],
            )
        values = dict(data)
        if "default_settings" in values:
            settings = values["default_settings"]
            if not isinstance(settings, dict):
                raise ConfigError(
                    "default_settings must be a JSON object",
                    field="default_settings",
                    value=settings,
                )
            values["default_settings"] = DownloadBehaviorSettings.from_dict(settings)
        if not isinstance(values.get("source_settings", {}), dict):
            raise ConfigError(
                "source_settings must be a JSON object",
                field="source_settings",
                value=values["source_settings"],
            )
        return cls(**values)

    def to_json(self, **kwargs: Any) -> str:
        """Serialise to JSON text."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> DownloadConfig:
        """Parse JSON text.

        :raises ConfigError: when the text is not JSON or holds a bad value.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}", field="config") from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON, atomically."""
        from ripstream.downloader.files import atomic_write_text

        atomic_write_text(Path(path), self.to_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DownloadConfig:
        """Read a JSON config file.

        :raises ConfigError: when the file is missing, unreadable, not JSON, or invalid.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read config file {str(path)!r}: {exc.strerror}",
                field="config",
                value=str(path),
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {str(path)!r} is not UTF-8 text", field="config", value=str(path)
            ) from exc
        try:
            return cls.from_json(text)
        except ConfigError as exc:
            raise ConfigError(
                f"config file {path!s}: {exc.message}", field=exc.field, value=exc.value
            ) from exc
