"""What the Subsonic source asks a server for, and what it makes of the bytes that came.

* :class:`MediaFormat`: the original file (``raw``, the default) or a transcode asked for on
  purpose (``opus:128``); it decides the endpoint, its parameters and the extension.
* :func:`review_track`: the bytes of a downloaded track against what was asked: an empty body
  or an error page is a typed failure; a container other than the name says gets the right
  extension (:class:`~ripstream.downloader.plugin.FinalName`).
* :func:`render_playlist`: the ``.m3u8`` with the names the tracks were finally written under.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from ripstream.downloader.plugin import ConfigError, DownloadableContent, FinalName, redact_url
from ripstream.sources.subsonic_errors import MediaMismatchError, error_in_document
from ripstream.sources.subsonic_sniff import Kind, sniff_file

__all__ = ["MediaFormat", "render_playlist", "review_track"]

_FORMAT: Final = re.compile(r"(?P<codec>[a-z0-9]{1,12})(?::(?P<kbps>[0-9]{1,4}))?")
#: File extensions of the formats servers transcode to, where they differ from the name.
_EXTENSIONS: Final = {"vorbis": "ogg", "oga": "ogg", "alac": "m4a", "aac": "m4a"}
_AUDIO_EXTENSIONS: Final = tuple(sorted({kind.extension for kind in Kind if kind.is_audio}))


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """The original file, or a transcode to ``codec`` at ``bitrate`` kbit/s.

    Example::

        >>> MediaFormat.parse("opus:128").params()
        {'format': 'opus', 'maxBitRate': '128'}
        >>> MediaFormat.parse("raw").method
        'download'
    """

    codec: str = "raw"
    bitrate: int | None = None

    @classmethod
    def parse(cls, text: str) -> MediaFormat:
        """``raw``, ``FORMAT`` or ``FORMAT:KBPS`` (``mp3:320``, ``opus:128``).

        :raises ConfigError: for anything else, or a bitrate outside 8..1411.
        """
        found = _FORMAT.fullmatch(str(text).strip().lower())
        bitrate = int(found["kbps"]) if found and found["kbps"] else None
        if found is None or (bitrate is not None and not 8 <= bitrate <= 1411):
            raise ConfigError(
                f"the Subsonic format {text!r} is not raw, FORMAT or FORMAT:KBPS (e.g. opus:128)",
                field="format",
                value=text,
            )
        if found["codec"] == "raw" and bitrate is not None:
            raise ConfigError("raw takes no bitrate", field="format", value=text)
        return cls(found["codec"], bitrate)

    @property
    def is_raw(self) -> bool:
        """The original file, untouched."""
        return self.codec == "raw"

    @property
    def method(self) -> str:
        """``download`` for the original, ``stream`` for a transcode."""
        return "download" if self.is_raw else "stream"

    @property
    def extension(self) -> str | None:
        """The extension a transcode is named with; ``None`` for raw (the song's suffix)."""
        return None if self.is_raw else _EXTENSIONS.get(self.codec, self.codec)

    def params(self) -> dict[str, str]:
        """The endpoint's query parameters besides ``id``. A transcode is not asked to
        estimate its length: an estimate would cut or fail a body that runs longer."""
        params = {"format": self.codec}
        if self.bitrate is not None:
            params["maxBitRate"] = str(self.bitrate)
        return params

    def __str__(self) -> str:
        return self.codec if self.bitrate is None else f"{self.codec}:{self.bitrate}"


def review_track(
    content: DownloadableContent, part: Path, path: Path, *, raw: bool
) -> FinalName | None:
    """Judge a downloaded track by its bytes (see the module docstring).

    :param path: where the file is going.
    :param raw: whether the original file was asked for.
    :raises MediaMismatchError: for an empty body, an HTML/XML page, unknown JSON, or a
        different container than the original's when the original was asked for.
    :raises DownloadError: the typed error of a Subsonic error document.
    """
    kind = sniff_file(part)
    shown = redact_url(content.url)
    if kind is Kind.EMPTY:
        raise MediaMismatchError(
            f"the server sent an empty file for {content.title!r}: not saved (a failed "
            "transcode on the server is the usual cause)",
            url=shown,
            reason="empty",
        )
    if kind.is_document:
        error = error_in_document(part.read_bytes()[: 64 * 1024], method="download", url=shown)
        if error is not None:
            raise error
        raise MediaMismatchError(
            f"the server sent {kind.label} instead of audio for {content.title!r}: not saved",
            url=shown,
            reason="document",
        )
    suffix = path.suffix.lstrip(".")
    if not kind.is_audio or kind.fits(suffix):
        return None
    if raw and content.size is not None and part.stat().st_size != content.size:
        raise MediaMismatchError(
            f"the server transcoded {content.title!r} to {kind.label} although RipStream asked "
            f"for the original .{suffix} file (format=raw); ask for a transcode on purpose with "
            f"--subsonic-format {kind.extension} to keep it",
            url=shown,
            reason="transcoded",
        )
    note = f"the bytes are {kind.label}, not .{suffix}: saved as .{kind.extension}"
    return FinalName(f"{path.stem}.{kind.extension}", note)


def render_playlist(
    planned: bytes, entries: Sequence[str], placed: Mapping[str, Path], folder: Path
) -> bytes:
    """``planned`` (an ``.m3u8`` whose path lines follow ``entries``, the tracks' content ids)
    with each track's path as finally written: as this process placed it, else as found on
    disk beside the planned name with another audio extension, else as planned."""
    lines = planned.decode("utf-8").splitlines()
    index = 0
    for number, line in enumerate(lines):
        if not line or line.startswith("#"):
            continue
        if index < len(entries):
            where = placed.get(entries[index]) or _on_disk(folder, line)
            if where is not None:
                lines[number] = PurePosixPath(Path(os.path.relpath(where, folder))).as_posix()
        index += 1
    return ("\n".join(lines) + "\n").encode("utf-8")


def _on_disk(folder: Path, line: str) -> Path | None:
    """The planned file, or the one file beside it whose extension was fixed."""
    planned = folder / line
    if planned.exists():
        return planned
    found = [p for e in _AUDIO_EXTENSIONS if (p := planned.with_suffix(f".{e}")).exists()]
    return found[0] if len(found) == 1 else None
