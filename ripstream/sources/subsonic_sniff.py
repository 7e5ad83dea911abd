"""What a file really is, from its first bytes: the container of an audio file, or a document.

Subsonic metadata (``suffix``) describes the file on the server, not what a transcoding server
sends, so the source trusts the bytes: :func:`sniff_file` reads the head of a downloaded file
(past an ID3v2 tag when there is one) and :func:`sniff` names its :class:`Kind`.

Example::

    >>> sniff(b"fLaC\\x00\\x00\\x00\\x22").extension
    'flac'
    >>> sniff(b"<!DOCTYPE html><html>").is_audio
    False
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Final

__all__ = ["Kind", "sniff", "sniff_file"]

_HEAD: Final = 64
_ID3_HEADER: Final = 10
_ASF_GUID: Final = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_DOCUMENT_STARTS: Final = (b"<", b"{", b"[")


class Kind(enum.Enum):
    """A file's kind: ``(extension, label, is_audio)``."""

    FLAC = ("flac", "FLAC", True)
    MP3 = ("mp3", "MP3", True)
    AAC = ("aac", "AAC (ADTS)", True)
    OGG_OPUS = ("opus", "Ogg Opus", True)
    OGG_VORBIS = ("ogg", "Ogg Vorbis", True)
    OGG_FLAC = ("oga", "Ogg FLAC", True)
    OGG = ("ogg", "Ogg", True)
    MP4 = ("m4a", "MP4/M4A", True)
    WAV = ("wav", "WAV", True)
    AIFF = ("aiff", "AIFF", True)
    WAVPACK = ("wv", "WavPack", True)
    APE = ("ape", "Monkey's Audio", True)
    MUSEPACK = ("mpc", "Musepack", True)
    DSF = ("dsf", "DSD (DSF)", True)
    DFF = ("dff", "DSD (DFF)", True)
    WMA = ("wma", "WMA", True)
    TTA = ("tta", "TTA", True)
    EMPTY = ("", "an empty file", False)
    HTML = ("html", "an HTML page", False)
    JSON = ("json", "a JSON document", False)
    XML = ("xml", "an XML document", False)
    UNKNOWN = ("", "unrecognised bytes", False)

    def __init__(self, extension: str, label: str, is_audio: bool) -> None:
        self.extension = extension
        self.label = label
        self.is_audio = is_audio

    @property
    def is_document(self) -> bool:
        """An error page or API document rather than media."""
        return self in (Kind.HTML, Kind.JSON, Kind.XML)

    def fits(self, suffix: str | None) -> bool:
        """Whether a file named ``*.suffix`` may hold this kind (``.oga`` for Ogg Vorbis,
        ``.mp4`` for an M4A...)."""
        return (suffix or "").lower().lstrip(".") in _SUFFIXES.get(self, {self.extension})


_SUFFIXES: Final[dict[Kind, set[str]]] = {
    Kind.FLAC: {"flac", "fla"},
    Kind.MP3: {"mp3", "mp2", "mpga"},
    Kind.AAC: {"aac", "adts"},
    Kind.OGG_OPUS: {"opus", "ogg", "oga"},
    Kind.OGG_VORBIS: {"ogg", "oga"},
    Kind.OGG_FLAC: {"oga", "ogg"},
    Kind.OGG: {"ogg", "oga", "ogx", "spx"},
    Kind.MP4: {"m4a", "m4b", "mp4", "m4p", "alac", "aac"},
    Kind.WAV: {"wav", "wave"},
    Kind.AIFF: {"aiff", "aif", "aifc"},
}

_MAGIC: Final[tuple[tuple[bytes, Kind], ...]] = (
    (b"fLaC", Kind.FLAC),
    (b"wvpk", Kind.WAVPACK),
    (b"MAC ", Kind.APE),
    (b"MPCK", Kind.MUSEPACK),
    (b"MP+", Kind.MUSEPACK),
    (b"DSD ", Kind.DSF),
    (b"FRM8", Kind.DFF),
    (b"TTA1", Kind.TTA),
    (_ASF_GUID, Kind.WMA),
)


def sniff(head: bytes) -> Kind:
    """The kind of a file that starts with ``head`` (its first 64 bytes are plenty; an ID3v2
    tag at the start is taken as MP3 unless :func:`sniff_file` saw past it)."""
    if not head:
        return Kind.EMPTY
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith(b"ID3"):
        return Kind.MP3
    if head.startswith(b"OggS"):
        return _ogg(head)
    if head[4:8] == b"ftyp":
        return Kind.MP4
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Kind.WAV
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return Kind.AIFF
    frame = _mpeg_frame(head)
    return frame if frame is not None else _document(head)


def sniff_file(path: Path) -> Kind:
    """The kind of the file at ``path``, looking past a leading ID3v2 tag (FLAC files may
    carry one too).

    :raises OSError: when the file cannot be read.
    """
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
        if not head.startswith(b"ID3") or len(head) < _ID3_HEADER:
            return sniff(head)
        size = _syncsafe(head[6:10])
        footer = _ID3_HEADER if head[5] & 0x10 else 0
        handle.seek(_ID3_HEADER + size + footer)
        after = handle.read(_HEAD)
    kind = sniff(after)
    return kind if kind.is_audio else Kind.MP3


def _syncsafe(data: bytes) -> int:
    value = 0
    for byte in data:
        value = (value << 7) | (byte & 0x7F)
    return value


def _ogg(head: bytes) -> Kind:
    """An Ogg stream by the codec of its first packet."""
    if len(head) < 27:
        return Kind.OGG
    packet = head[27 + head[26] :]
    if packet.startswith(b"OpusHead"):
        return Kind.OGG_OPUS
    if packet.startswith(b"\x01vorbis"):
        return Kind.OGG_VORBIS
    if packet.startswith(b"\x7fFLAC"):
        return Kind.OGG_FLAC
    return Kind.OGG


def _mpeg_frame(head: bytes) -> Kind | None:
    """An MPEG audio frame header (MP3) or an ADTS header (AAC) at the start."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    layer = (head[1] >> 1) & 0x03
    if layer == 0:
        return Kind.AAC if head[1] & 0xF6 == 0xF0 else None
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x03
    if bitrate == 0x0F or rate == 0x03 or (head[1] >> 3) & 0x03 == 0x01:
        return None
    return Kind.MP3


def _document(head: bytes) -> Kind:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(_DOCUMENT_STARTS):
        return Kind.UNKNOWN
    if text.startswith((b"{", b"[")):
        return Kind.JSON
    lowered = text[:64].lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return Kind.HTML
    return Kind.XML if lowered.startswith(b"<?xml") or b"subsonic" in lowered else Kind.HTML
