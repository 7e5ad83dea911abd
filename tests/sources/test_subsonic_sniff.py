"""Container detection from the first bytes, the format option, and what a server announces."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ripstream.downloader.exceptions import ConfigError
from ripstream.sources.subsonic_media import MediaFormat
from ripstream.sources.subsonic_models import ServerInfo
from ripstream.sources.subsonic_sniff import Kind, sniff, sniff_file
from tests.support.audio import (
    flac_bytes,
    m4a_bytes,
    mp3_bytes,
    ogg_opus_bytes,
    ogg_vorbis_bytes,
    wav_bytes,
)


def _aiff() -> bytes:
    common = b"COMM" + struct.pack(">IhIh", 18, 1, 0, 16) + bytes(10)
    return b"FORM" + struct.pack(">I", 4 + len(common)) + b"AIFF" + common


def _id3(body: bytes, size: int = 300) -> bytes:
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00\x00" + syncsafe + bytes(size) + body


@pytest.mark.parametrize(
    ("data", "kind", "extension"),
    [
        (flac_bytes(3, sample_value=1), Kind.FLAC, "flac"),
        (mp3_bytes(3, seed=1), Kind.MP3, "mp3"),
        (_id3(mp3_bytes(3, seed=1)), Kind.MP3, "mp3"),
        (_id3(flac_bytes(3, sample_value=1)), Kind.FLAC, "flac"),
        (ogg_opus_bytes(3, seed=1), Kind.OGG_OPUS, "opus"),
        (ogg_vorbis_bytes(3, seed=1), Kind.OGG_VORBIS, "ogg"),
        (m4a_bytes(3, sample_value=1), Kind.MP4, "m4a"),
        (wav_bytes(), Kind.WAV, "wav"),
        (_aiff(), Kind.AIFF, "aiff"),
        (b"", Kind.EMPTY, ""),
        (b"\n<!DOCTYPE html><html><body>502 Bad Gateway", Kind.HTML, "html"),
        (b'{"subsonic-response": {"status": "failed"}}', Kind.JSON, "json"),
        (b'<?xml version="1.0"?><subsonic-response status="failed">', Kind.XML, "xml"),
        (b"\x00\x01\x02 not audio", Kind.UNKNOWN, ""),
    ],
)
def test_the_bytes_say_what_a_file_is(
    tmp_path: Path, data: bytes, kind: Kind, extension: str
) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    assert sniff_file(path) is kind
    assert kind.extension == extension
    assert kind.is_audio == (extension not in ("", "html", "json", "xml"))


def test_a_name_fits_the_containers_it_may_hold() -> None:
    assert Kind.OGG_VORBIS.fits("oga")
    assert Kind.MP4.fits("MP4")
    assert Kind.AIFF.fits("aif")
    assert not Kind.MP3.fits("flac")
    assert not Kind.OGG_OPUS.fits("mp3")
    assert sniff(b"\xff\xf1\x50\x80") is Kind.AAC


@pytest.mark.parametrize(
    ("text", "method", "params", "extension"),
    [
        ("raw", "download", {"format": "raw"}, None),
        ("opus:128", "stream", {"format": "opus", "maxBitRate": "128"}, "opus"),
        (" MP3 ", "stream", {"format": "mp3"}, "mp3"),
        ("vorbis", "stream", {"format": "vorbis"}, "ogg"),
    ],
)
def test_the_format_option(
    text: str, method: str, params: dict[str, str], extension: str | None
) -> None:
    media = MediaFormat.parse(text)
    assert (media.method, media.params(), media.extension) == (method, params, extension)


@pytest.mark.parametrize("text", ["", "raw:320", "opus:4", "opus:fast", "mp3/320", "a" * 13])
def test_a_bad_format_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        MediaFormat.parse(text)
    assert info.value.field == "format"


@pytest.mark.parametrize(
    ("name", "version", "transcodes"),
    [
        ("gonic", "0.16.4", True),
        ("gonic", "v0.20.1", True),
        ("gonic", "0.21.0", False),
        ("gonic", None, False),
        ("navidrome", "0.53.3 (13af8ed4)", False),
    ],
)
def test_servers_known_to_transcode_download(
    name: str, version: str | None, transcodes: bool
) -> None:
    body = {"type": name, "serverVersion": version, "openSubsonic": True}
    assert ServerInfo.parse(body, extensions=False).transcodes_download is transcodes
