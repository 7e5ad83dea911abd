"""What is downloaded and what came of it: ContentType, DownloadableContent, DownloadResult."""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ripstream.downloader.exceptions import (
    ConfigError,
    DownloadError,
    error_from_dict,
    error_to_dict,
)
from ripstream.downloader.jsonmixin import JsonMixin, json_field
from ripstream.downloader.urls import redact_text, redact_url

__all__ = [
    "Checksum",
    "ContentType",
    "DownloadResult",
    "DownloadableContent",
    "ResultStatus",
    "TrackMetadata",
]

#: Digest algorithms accepted in ``ALGO:HEX`` checksums, with their hex lengths.
CHECKSUM_ALGORITHMS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")


class ContentType(enum.Enum):
    """The kind of thing a source offers."""

    TRACK = "track"
    ALBUM = "album"
    PLAYLIST = "playlist"
    ARTIST = "artist"
    COVER = "cover"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Checksum:
    """An expected digest, parsed from ``ALGO:HEX`` (for example ``sha256:9f86d0...``).

    Example::

        >>> Checksum.parse("md5:d41d8cd98f00b204e9800998ecf8427e").algorithm
        'md5'
    """

    algorithm: str
    hexdigest: str

    def __post_init__(self) -> None:
        length = CHECKSUM_ALGORITHMS.get(self.algorithm)
        if length is None:
            raise ConfigError(
                f"checksum algorithm {self.algorithm!r} is not one of "
                f"{', '.join(CHECKSUM_ALGORITHMS)}",
                field="checksum",
                value=self.algorithm,
            )
        if len(self.hexdigest) != length or not _HEX.fullmatch(self.hexdigest):
            raise ConfigError(
                f"checksum {self.hexdigest!r} is not {length} hex digits as {self.algorithm} needs",
                field="checksum",
                value=self.hexdigest,
            )
        object.__setattr__(self, "hexdigest", self.hexdigest.lower())

    @classmethod
    def parse(cls, text: str) -> Checksum:
        """Parse ``ALGO:HEX``.

        :raises ConfigError: when the text is not of that form or the algorithm is unknown.
        """
        algorithm, sep, digest = text.strip().partition(":")
        if not sep:
            raise ConfigError(
                f"checksum {text!r} must be written ALGO:HEX, e.g. sha256:<64 hex digits>",
                field="checksum",
                value=text,
            )
        return cls(algorithm.lower(), digest)

    def new_hasher(self) -> Any:
        """A fresh hashlib object for this algorithm."""
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


#: Extra naming values a source may add beside the typed fields (``{bitrate}``, ``{label}``).
ExtraValue = str | int | float | list[str]


@dataclass(slots=True)
class TrackMetadata(JsonMixin):
    """What naming templates and tags know about a track; every field optional.

    ``tracknumber``/``discnumber`` given as ``"3/12"`` are split into number and total.
    Keys that are not fields go to :attr:`extra` and are naming values too.

    Example::

        TrackMetadata.from_mapping({"tracknumber": "3/12", "year": 1999, "label": "Warp"})
        # TrackMetadata(tracknumber=3, tracktotal=12, year=1999, extra={'label': 'Warp'})
    """

    title: str | None = None
    artist: str | None = None
    albumartist: str | None = None
    album: str | None = None
    tracknumber: int | None = None
    tracktotal: int | None = None
    discnumber: int | None = None
    disctotal: int | None = None
    year: int | None = None
    date: str | None = None
    genre: str | None = None
    cover_path: str | None = None
    extra: dict[str, ExtraValue] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TrackMetadata:
        """Typed metadata from a plain mapping (the seed's ``metadata={...}``).

        :raises ConfigError: for a number field that is not a number, naming it.
        """
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        extra: dict[str, ExtraValue] = dict(data.get("extra") or {})
        for key, raw in data.items():
            if raw is None or key == "extra":
                continue
            if key not in known:
                extra[key] = _extra(raw)
            elif key in _NUMBER_PAIRS:
                number, total = _number_pair(key, raw)
                values[key] = number
                if total is not None and data.get(_NUMBER_PAIRS[key]) is None:
                    values[_NUMBER_PAIRS[key]] = total
            elif key in _NUMBERS:
                values[key] = _number_pair(key, raw)[0]
            else:
                values[key] = str(raw)
        return cls(**values, extra=extra)

    def get(self, key: str, default: Any = None) -> Any:
        """A value by name, fields and extras alike (the seed's dict-style reading)."""
        return self.values().get(key, default)

    def __getitem__(self, key: str) -> Any:
        values = self.values()
        if key not in values:
            raise KeyError(key)
        return values[key]

    def values(self) -> dict[str, Any]:
        """The naming values: every field that is set, and the extras."""
        found = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "extra" and getattr(self, f.name) is not None
        }
        return {**self.extra, **found}


_NUMBER_PAIRS = {"tracknumber": "tracktotal", "discnumber": "disctotal"}
_NUMBERS = frozenset({"tracktotal", "disctotal", "year"})


def _extra(raw: object) -> ExtraValue:
    if isinstance(raw, str | int | float):
        return raw
    if isinstance(raw, list | tuple):
        return [str(item) for item in raw]
    return str(raw)


def _number_pair(key: str, raw: object) -> tuple[int | None, int | None]:
    """``3`` or ``"3"`` or ``"3/12"`` as ``(3, None)`` / ``(3, 12)``."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw, None
    text = str(raw).strip()
    first, _, second = text.partition("/")
    try:
        number = int(first) if first.strip() else None
        total = int(second) if second.strip() else None
    except ValueError:
        raise ConfigError(f"{key} {raw!r} is not a number", field=key, value=raw) from None
    return number, total


def _encode_bytes(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _decode_bytes(text: str | bytes | None) -> bytes | None:
    if text is None or isinstance(text, bytes):
        return text
    return base64.b64decode(text)


@dataclass(slots=True)
class DownloadableContent(JsonMixin):
    """One downloadable thing, as a source resolved it.

    Only ``content_id``, ``content_type``, ``source``, ``title`` and ``url`` are required; the
    rest improves naming, verification and tagging when the source knows it.

    :param checksum: expected digest as ``ALGO:HEX``; verified while streaming.
    :param size: expected size in bytes, if the source knows it.
    :param headers: extra request headers for this content's URL (never logged).
    :param filename: a suggested file name; sanitised before use.
    :param metadata: what naming templates (``{album}``, ``{tracknumber}``) and tags use: a
        :class:`TrackMetadata`, or a plain mapping that is turned into one.
    :param data: the bytes themselves, for generated files (a playlist): written, not fetched.
    :param protocol: how the bytes arrive when it is not a plain http(s) stream (``"hls"``);
        fetchers look at it to decide whether they are suitable.

    Example::

        content = DownloadableContent(
            content_id="track_123", content_type=ContentType.TRACK, source="my_service",
            title="My Song", url="https://example.com/track_123.mp3", file_extension="mp3",
        )
    """

    content_id: str
    content_type: ContentType
    source: str
    title: str
    url: str
    artist: str | None = None
    album: str | None = None
    file_extension: str | None = None
    filename: str | None = None
    size: int | None = None
    checksum: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    metadata: TrackMetadata = field(default_factory=TrackMetadata)
    data: bytes | None = field(
        default=None,
        repr=False,
        metadata=json_field(encoder=_encode_bytes, decoder=_decode_bytes),
    )
    protocol: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, TrackMetadata):
            self.metadata = TrackMetadata.from_mapping(self.metadata or {})
        if not isinstance(self.content_type, ContentType):
            try:
                self.content_type = ContentType(self.content_type)
            except ValueError as exc:
                raise ConfigError(
                    f"content_type {self.content_type!r} is not one of "
                    f"{', '.join(t.value for t in ContentType)}",
                    field="content_type",
                    value=self.content_type,
                ) from exc
        if self.checksum is not None:
            Checksum.parse(self.checksum)
        if self.size is not None and self.size < 0:
            raise ConfigError(f"size must be >= 0, got {self.size}", field="size", value=self.size)

    @property
    def expected_checksum(self) -> Checksum | None:
        """The parsed :attr:`checksum`, or ``None``."""
        return Checksum.parse(self.checksum) if self.checksum else None

    def __repr__(self) -> str:
        # headers may carry tokens: show only their names
        return (
            f"DownloadableContent(content_id={self.content_id!r}, source={self.source!r}, "
            f"title={self.title!r}, content_type={self.content_type.value!r}, "
            f"headers={sorted(self.headers)!r})"
        )


class ResultStatus(enum.Enum):
    """How a download ended."""

    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class DownloadResult:
    """What came of one download. Not thread-safe; each belongs to the thread that made it.

    Example::

        result = downloader.download(content)
        if result.is_success:
            print(result.file_path, result.bytes_downloaded)
        else:
            result.raise_for_error()
    """

    content_id: str
    source: str
    status: ResultStatus
    file_path: Path | None = None
    url: str | None = None
    error: DownloadError | None = None
    bytes_downloaded: int = 0
    total_bytes: int | None = None
    resumed_from: int = 0
    elapsed: float = 0.0
    attempts: int = 0
    checksum: str | None = None
    message: str | None = None
    #: where it ran, ``host:pid``, when a worker process or a cluster ran it
    worker: str | None = None

    @property
    def is_success(self) -> bool:
        """True when the file is in place: downloaded now, or already there and kept."""
        return self.status in (ResultStatus.COMPLETED, ResultStatus.SKIPPED)

    @property
    def error_message(self) -> str | None:
        """The typed error's message, for display."""
        return str(self.error) if self.error is not None else None

    def raise_for_error(self) -> None:
        """Re-raise the typed error of a failed download; do nothing on success."""
        if self.error is not None:
            raise self.error

    def to_json(self) -> str:
        """The whole result as JSON, typed error included (results cross processes so)."""
        data: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, DownloadError):
                value = error_to_dict(value)
            data[item.name] = value
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> DownloadResult:
        """The result :meth:`to_json` wrote."""
        data = json.loads(text)
        data["status"] = ResultStatus(data["status"])
        if data.get("file_path") is not None:
            data["file_path"] = Path(data["file_path"])
        if data.get("error") is not None:
            data["error"] = error_from_dict(data["error"])
        return cls(**data)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (the CLI's ``--json`` line and the batch journal), every text in
        it redacted: a plain http source's content id is its URL, with whatever it carries."""
        error = self.error_message
        return {
            "content_id": redact_text(self.content_id),
            "source": self.source,
            "status": self.status.value,
            "ok": self.is_success,
            "file_path": str(self.file_path) if self.file_path else None,
            "url": redact_url(self.url),
            "bytes_downloaded": self.bytes_downloaded,
            "total_bytes": self.total_bytes,
            "resumed_from": self.resumed_from,
            "elapsed": round(self.elapsed, 6),
            "attempts": self.attempts,
            "checksum": self.checksum,
            "message": redact_text(self.message) if self.message else self.message,
            "error_type": type(self.error).__name__ if self.error else None,
            "error": redact_text(error) if error else error,
            "worker": self.worker,
        }
