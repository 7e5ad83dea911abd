# mypy: disable-error-code="no-untyped-call"
"""Tiny, valid, tagged audio files written without any external tool.

Two formats are written by hand and then tagged with mutagen:

* **MP3**: MPEG-1 Layer III frames, 32 kbit/s, 32 kHz, mono (144 bytes, 36 ms each). The side
  information is all zeros (``main_data_begin = 0``, ``part2_3_length = 0``), so every frame
  decodes to silence; the unused main-data bytes are ancillary data, which decoders skip, and
  are filled with a per-track pattern so that no two tracks share their audio bytes.
* **FLAC**: a STREAMINFO block (with the real MD5 of the decoded samples) and fixed-blocksize
  frames of one CONSTANT subframe each, 8 kHz, mono, 16 bit, with correct CRC-8 and CRC-16.
  Each track uses its own constant sample value.

Covers are tiny PNGs (zlib + CRC-32 from the standard library). :func:`build_library` lays
out a small music library (two albums of three tracks and a single) and returns a frozen
description of it, with each file's SHA-256, so tests can compare downloaded bytes and tags.
"""

from __future__ import annotations

import hashlib
import io
import struct
import wave
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, TALB, TDRC, TIT2, TPE1, TPE2, TPOS, TRCK

__all__ = [
    "GeneratedAlbum",
    "GeneratedLibrary",
    "GeneratedTrack",
    "build_library",
    "flac_bytes",
    "jpeg_bytes",
    "m4a_audio",
    "m4a_bytes",
    "mp3_bytes",
    "ogg_opus_bytes",
    "ogg_packets",
    "ogg_vorbis_bytes",
    "png_bytes",
    "sha256_hex",
    "wav_bytes",
    "write_flac",
    "write_mp3",
]

# --------------------------------------------------------------------------- primitives

#: MPEG-1 Layer III, no CRC; 32 kbit/s (index 1), 32 kHz (index 2), no padding; mono.
_MP3_HEADER = bytes([0xFF, 0xFB, 0x18, 0xC4])
_MP3_FRAME_SIZE = 144  # 144 * bitrate / sample_rate
_MP3_SIDE_INFO_SIZE = 17  # mono, MPEG-1
_MP3_SECONDS_PER_FRAME = 1152 / 32000


def sha256_hex(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def mp3_bytes(frames: int, *, seed: int) -> bytes:
    """Return ``frames`` silent MPEG-1 Layer III frames whose ancillary bytes depend on ``seed``.

    :param frames: how many 36 ms frames to write (at least 1).
    :param seed: makes the bytes unique to a track; any int.
    :returns: the raw MPEG audio stream, without tags.
    """
    if frames < 1:
        raise ValueError("an MP3 needs at least one frame")
    ancillary_size = _MP3_FRAME_SIZE - len(_MP3_HEADER) - _MP3_SIDE_INFO_SIZE
    out = bytearray()
    for index in range(frames):
        out += _MP3_HEADER
        out += bytes(_MP3_SIDE_INFO_SIZE)
        out += bytes((seed * 31 + index * 7 + offset) % 251 for offset in range(ancillary_size))
    return bytes(out)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


_FLAC_SAMPLE_RATE = 8000
_FLAC_BLOCK_SIZE = 4096  # block size code 0b1100 = 256 * 2**4


def flac_bytes(frames: int, *, sample_value: int) -> bytes:
    """Return a complete, untagged FLAC stream of ``frames`` constant-valued blocks.

    :param frames: how many 4096-sample blocks (0.512 s each at 8 kHz) to write, 1 to 127.
    :param sample_value: the signed 16-bit value of every sample; distinct per track.
    :returns: ``fLaC`` + STREAMINFO + frames, decodable by any FLAC decoder.
    """
    if not 1 <= frames <= 127:
        raise ValueError("frames must be within 1..127 (one-byte UTF-8 frame numbers)")
    if not -32768 <= sample_value <= 32767:
        raise ValueError("sample_value must fit in 16 signed bits")
    encoded_frames = []
    for number in range(frames):
        header = bytes([0xFF, 0xF8, 0xC4, 0x08, number])  # 4096 / 8 kHz / mono / 16 bit
        header += bytes([_crc8(header)])
        body = header + b"\x00" + struct.pack(">h", sample_value)  # CONSTANT subframe
        encoded_frames.append(body + struct.pack(">H", _crc16(body)))
    frame_size = len(encoded_frames[0])
    total_samples = frames * _FLAC_BLOCK_SIZE
    md5 = hashlib.md5(struct.pack("<h", sample_value) * total_samples).digest()
    packed = (_FLAC_SAMPLE_RATE << 44) | (0 << 41) | (15 << 36) | total_samples
    streaminfo = (
        struct.pack(">HH", _FLAC_BLOCK_SIZE, _FLAC_BLOCK_SIZE)
        + frame_size.to_bytes(3, "big") * 2
        + packed.to_bytes(8, "big")
        + md5
    )
    block_header = bytes([0x80]) + len(streaminfo).to_bytes(3, "big")  # last block, STREAMINFO
    return b"fLaC" + block_header + streaminfo + b"".join(encoded_frames)


def png_bytes(rgb: tuple[int, int, int], size: int = 4) -> bytes:
    """Return a valid ``size`` x ``size`` PNG filled with one colour.

    :param rgb: the colour, three ints within 0..255.
    :param size: the width and height in pixels.
    :returns: the PNG file's bytes.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- tagged files


@dataclass(frozen=True)
class TrackTags:
    """The tags written into one generated file."""

    title: str
    artist: str
    album_artist: str
    album: str
    year: int
    track: int
    track_total: int
    disc: int
    disc_total: int


def write_mp3(
    path: Path, tags: TrackTags, *, frames: int, seed: int, cover: bytes | None = None
) -> None:
    """Write a silent, ID3v2.4-tagged MP3 to ``path``.

    :param path: the file to create (parents are created).
    :param tags: the tags to write.
    :param frames: the number of 36 ms MPEG frames.
    :param seed: makes the audio bytes unique.
    :param cover: PNG bytes to embed as the front cover (APIC), if any.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(mp3_bytes(frames, seed=seed))
    id3 = ID3()
    id3.add(TIT2(encoding=3, text=tags.title))
    id3.add(TPE1(encoding=3, text=tags.artist))
    id3.add(TPE2(encoding=3, text=tags.album_artist))
    id3.add(TALB(encoding=3, text=tags.album))
    id3.add(TDRC(encoding=3, text=str(tags.year)))
    id3.add(TRCK(encoding=3, text=f"{tags.track}/{tags.track_total}"))
    id3.add(TPOS(encoding=3, text=f"{tags.disc}/{tags.disc_total}"))
    if cover is not None:
        id3.add(APIC(encoding=3, mime="image/png", type=3, desc="Cover", data=cover))
    id3.save(path, v2_version=4)


def write_flac(
    path: Path,
    tags: TrackTags,
    *,
    frames: int,
    sample_value: int,
    cover: bytes | None = None,
) -> None:
    """Write a constant-valued FLAC with Vorbis comments to ``path``.

    :param path: the file to create (parents are created).
    :param tags: the tags to write.
    :param frames: the number of 0.512 s blocks.
    :param sample_value: the constant sample value; makes the audio bytes unique.
    :param cover: PNG bytes to embed as a METADATA_BLOCK_PICTURE, if any.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(flac_bytes(frames, sample_value=sample_value))
    audio = FLAC(path)
    audio["title"] = tags.title
    audio["artist"] = tags.artist
    audio["albumartist"] = tags.album_artist
    audio["album"] = tags.album
    audio["date"] = str(tags.year)
    audio["tracknumber"] = str(tags.track)
    audio["tracktotal"] = str(tags.track_total)
    audio["discnumber"] = str(tags.disc)
    audio["disctotal"] = str(tags.disc_total)
    if cover is not None:
        picture = Picture()
        picture.type = 3
        picture.mime = "image/png"
        picture.width = picture.height = 4
        picture.depth = 24
        picture.data = cover
        audio.add_picture(picture)
    audio.save()


# --------------------------------------------------------------------------- the library


@dataclass(frozen=True)
class GeneratedTrack:
    """One generated audio file and the tags written into it."""

    path: Path
    #: the path relative to the library root, with ``/`` separators.
    relpath: str
    sha256: str
    size: int
    title: str
    artist: str
    album_artist: str
    album: str
    year: int
    track: int
    disc: int
    #: the file extension without the dot, lower case: ``mp3`` or ``flac``.
    suffix: str
    #: the audio length in seconds, as written.
    duration: float
    #: the SHA-256 of the embedded cover picture, if one was embedded.
    embedded_cover_sha256: str | None = None


@dataclass(frozen=True)
class GeneratedAlbum:
    """One album folder: its tracks in (disc, track) order and its folder cover."""

    name: str
    #: the album artist.
    artist: str
    year: int
    directory: Path
    tracks: tuple[GeneratedTrack, ...]
    #: the ``cover.png`` in the album folder, if any, and its SHA-256.
    cover_path: Path | None = None
    cover_sha256: str | None = None


@dataclass(frozen=True)
class GeneratedLibrary:
    """The whole generated library rooted at ``root``."""

    root: Path
    albums: tuple[GeneratedAlbum, ...]

    @property
    def tracks(self) -> tuple[GeneratedTrack, ...]:
        """Every track of every album, in library order."""
        return tuple(track for album in self.albums for track in album.tracks)

    @property
    def artists(self) -> tuple[str, ...]:
        """Every distinct album artist, in library order."""
        return tuple(dict.fromkeys(album.artist for album in self.albums))

    def album(self, name: str) -> GeneratedAlbum:
        """Return the album called ``name``; :raises KeyError: when there is none."""
        for album in self.albums:
            if album.name == name:
                return album
        raise KeyError(name)

    def track(self, title: str) -> GeneratedTrack:
        """Return the track titled ``title``; :raises KeyError: when there is none."""
        for track in self.tracks:
            if track.title == title:
                return track
        raise KeyError(title)

    def by_relpath(self) -> Mapping[str, GeneratedTrack]:
        """Return the tracks keyed by their relative path."""
        return {track.relpath: track for track in self.tracks}

    def __iter__(self) -> Iterator[GeneratedAlbum]:
        return iter(self.albums)


@dataclass(frozen=True)
class _AlbumPlan:
    name: str
    artist: str
    year: int
    fmt: str  # "mp3" or "flac"
    #: (title, track artist, disc, track)
    tracks: tuple[tuple[str, str, int, int], ...]
    folder_cover: tuple[int, int, int] | None
    embedded_cover: tuple[int, int, int] | None


_PLANS = (
    _AlbumPlan(
        name="First Light",
        artist="The Test Tones",
        year=2021,
        fmt="mp3",
        tracks=(
            ("Dawn Chorus", "The Test Tones", 1, 1),
            ("Morning Static", "The Test Tones", 1, 2),
            ("Noon Hum", "The Test Tones", 1, 3),
        ),
        folder_cover=(200, 30, 30),
        embedded_cover=None,
    ),
    _AlbumPlan(
        name="Deep Water",
        artist="Null Set",
        year=2019,
        fmt="flac",
        tracks=(
            ("Undertow", "Null Set", 1, 1),
            ("Riptide", "Null Set feat. Guest Voice", 1, 2),
            ("Abyssal Plain", "Null Set", 2, 1),
        ),
        folder_cover=(30, 30, 200),
        embedded_cover=None,
    ),
    _AlbumPlan(
        name="Lone Signal",
        artist="Solo Sine",
        year=2023,
        fmt="mp3",
        tracks=(("Lone Signal", "Solo Sine", 1, 1),),
        folder_cover=None,
        embedded_cover=(30, 200, 30),
    ),
)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in " -._()" else "_" for ch in name).strip()


def build_library(root: Path) -> GeneratedLibrary:
    """Write the test library under ``root`` and describe it.

    Layout (about 30 KB in all)::

        The Test Tones/First Light (2021)/0N - <title>.mp3   3 tracks, cover.png
        Null Set/Deep Water (2019)/<disc>-0N - <title>.flac   2 discs, 3 tracks, cover.png,
                                                              track 2 by another artist
        Solo Sine/Lone Signal (2023)/01 - Lone Signal.mp3     a single, embedded cover

    :param root: an empty or missing directory.
    :returns: the library description, albums in the order above, tracks by (disc, track).
    """
    root.mkdir(parents=True, exist_ok=True)
    albums: list[GeneratedAlbum] = []
    serial = 0
    for plan in _PLANS:
        directory = root / _safe(plan.artist) / _safe(f"{plan.name} ({plan.year})")
        directory.mkdir(parents=True, exist_ok=True)
        cover_path: Path | None = None
        cover_sha: str | None = None
        if plan.folder_cover is not None:
            cover = png_bytes(plan.folder_cover)
            cover_path = directory / "cover.png"
            cover_path.write_bytes(cover)
            cover_sha = sha256_hex(cover)
        embedded = png_bytes(plan.embedded_cover) if plan.embedded_cover is not None else None
        track_total = len(plan.tracks)
        disc_total = max(disc for _, _, disc, _ in plan.tracks)
        tracks: list[GeneratedTrack] = []
        for title, artist, disc, number in plan.tracks:
            serial += 1
            tags = TrackTags(
                title=title,
                artist=artist,
                album_artist=plan.artist,
                album=plan.name,
                year=plan.year,
                track=number,
                track_total=track_total,
                disc=disc,
                disc_total=disc_total,
            )
            prefix = f"{disc}-{number:02d}" if disc_total > 1 else f"{number:02d}"
            path = directory / f"{prefix} - {_safe(title)}.{plan.fmt}"
            if plan.fmt == "mp3":
                frames = 28 + 14 * (serial % 3)  # 1 to 2 s
                write_mp3(path, tags, frames=frames, seed=serial, cover=embedded)
                duration = frames * _MP3_SECONDS_PER_FRAME
            else:
                frames = 2 + serial % 3  # 1 to 2 s
                write_flac(path, tags, frames=frames, sample_value=serial * 1000, cover=embedded)
                duration = frames * _FLAC_BLOCK_SIZE / _FLAC_SAMPLE_RATE
            data = path.read_bytes()
            tracks.append(
                GeneratedTrack(
                    path=path,
                    relpath=path.relative_to(root).as_posix(),
                    sha256=sha256_hex(data),
                    size=len(data),
                    title=title,
                    artist=artist,
                    album_artist=plan.artist,
                    album=plan.name,
                    year=plan.year,
                    track=number,
                    disc=disc,
                    suffix=plan.fmt,
                    duration=duration,
                    embedded_cover_sha256=sha256_hex(embedded) if embedded is not None else None,
                )
            )
        albums.append(
            GeneratedAlbum(
                name=plan.name,
                artist=plan.artist,
                year=plan.year,
                directory=directory,
                tracks=tuple(tracks),
                cover_path=cover_path,
                cover_sha256=cover_sha,
            )
        )
    return GeneratedLibrary(root=root, albums=tuple(albums))


# --------------------------------------------------------------------------- more formats
#
# M4A, Ogg Vorbis, Ogg Opus, WAV and JPEG, also written by hand, for the tagging tests:
#
# * **M4A**: ``ftyp`` + ``moov`` (one ALAC sound track; the sample table points into
#   ``mdat``) + ``mdat``. The ALAC frames are "escape" frames (uncompressed 16-bit samples),
#   the simplest frames every ALAC decoder reads; each track uses its own constant sample.
# * **Ogg Vorbis**: the three Vorbis headers (the setup header declares one two-entry
#   codebook, one floor 1 without partitions, one residue, one mapping and one short-block
#   mode) and one-byte audio packets whose floor is marked unused, so each decodes to
#   128 samples of silence; the unused bits of each packet carry a per-track pattern.
# * **Ogg Opus**: OpusHead, OpusTags and 20 ms CELT packets ``f8 ff fe``: digital silence.
# * **WAV** through the standard library's :mod:`wave`; **JPEG**: a baseline 8x8 grey
#   image with one-code Huffman tables, plus a comment that makes it unique.


class _BitWriter:
    """Packs values least-significant bit first, as Vorbis does."""

    def __init__(self) -> None:
        self._value = 0
        self._length = 0

    def put(self, value: int, bits: int) -> _BitWriter:
        self._value |= (value & ((1 << bits) - 1)) << self._length
        self._length += bits
        return self

    def to_bytes(self) -> bytes:
        return self._value.to_bytes((self._length + 7) // 8, "little")


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else crc << 1
    return crc


def _ogg_page(
    packets: list[bytes], *, serial: int, sequence: int, granule: int, flags: int = 0
) -> bytes:
    """One Ogg page holding whole ``packets`` (``flags``: 2 = first page, 4 = last page)."""
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    if len(lacing) > 255:
        raise ValueError("too many packets for one Ogg page")
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(packets))
    page[22:26] = struct.pack("<I", _ogg_crc(bytes(page)))
    return bytes(page)


def _ogg_stream(
    headers: list[list[bytes]], audio: list[bytes], granules: list[int], *, serial: int
) -> bytes:
    """Header pages (one list of packets each), then the audio in pages of 32 packets.

    :param granules: the granule position after each audio packet.
    """
    pages = [
        _ogg_page(packets, serial=serial, sequence=index, granule=0, flags=2 if index == 0 else 0)
        for index, packets in enumerate(headers)
    ]
    for start in range(0, len(audio), 32):
        end = min(start + 32, len(audio))
        pages.append(
            _ogg_page(
                audio[start:end],
                serial=serial,
                sequence=len(pages),
                granule=granules[end - 1],
                flags=4 if end == len(audio) else 0,
            )
        )
    return b"".join(pages)


def ogg_packets(data: bytes) -> list[bytes]:
    """Split an Ogg stream (one logical stream) back into its packets.

    :param data: the file's bytes.
    :returns: the packets in order, headers first.
    """
    packets: list[bytes] = []
    current = b""
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS":
            raise ValueError(f"no Ogg page at offset {pos}")
        count = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + count]
        pos += 27 + count
        for size in lacing:
            current += data[pos : pos + size]
            pos += size
            if size < 255:
                packets.append(current)
                current = b""
    return packets


_VORBIS_RATE = 8000
_VORBIS_SAMPLES_PER_PACKET = 128  # short blocks of 256: each packet after the first adds 128


def _vorbis_setup() -> bytes:
    bits = _BitWriter()
    bits.put(0, 8)  # one codebook
    bits.put(0x564342, 24).put(1, 16).put(2, 24)  # sync, dimensions 1, entries 2
    bits.put(0, 1).put(0, 1).put(0, 5).put(0, 5)  # not ordered, not sparse, lengths 1 and 1
    bits.put(0, 4)  # no lookup table
    bits.put(0, 6).put(0, 16)  # one time-domain transform, a placeholder 0
    bits.put(0, 6).put(1, 16)  # one floor, of type 1
    bits.put(0, 5).put(0, 2).put(7, 4)  # no partitions, multiplier 1, range bits 7
    bits.put(0, 6).put(0, 16)  # one residue, of type 0
    bits.put(0, 24).put(0, 24).put(0, 24)  # begin 0, end 0, partition size 1
    bits.put(0, 6).put(0, 8)  # one classification, class book 0
    bits.put(0, 3).put(0, 1)  # its cascade: no books
    bits.put(0, 6).put(0, 16)  # one mapping, of type 0
    bits.put(0, 1).put(0, 1).put(0, 2)  # one submap, no coupling, reserved
    bits.put(0, 8).put(0, 8).put(0, 8)  # submap 0: time (unused), floor 0, residue 0
    bits.put(0, 6).put(0, 1).put(0, 16).put(0, 16).put(0, 8)  # one mode: short, mapping 0
    bits.put(1, 1)  # framing
    return b"\x05vorbis" + bits.to_bytes()


def _vorbis_comment_packet(prefix: bytes, vendor: bytes, framing: bool) -> bytes:
    packet = prefix + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    return packet + (b"\x01" if framing else b"")


def ogg_vorbis_bytes(packets: int, *, seed: int) -> bytes:
    """Return a silent, untagged mono Ogg Vorbis stream (8 kHz).

    :param packets: how many audio packets, at least 2 (128 samples each after the first).
    :param seed: the stream's serial number and the pattern of the packets' unused bits.
    :returns: the file's bytes.
    """
    if packets < 2:
        raise ValueError("an Ogg Vorbis stream needs at least two audio packets")
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 1, _VORBIS_RATE, 0, 0, 0, 0xB8, 1)
    comment = _vorbis_comment_packet(b"\x03vorbis", b"ripstream tests", framing=True)
    # bit 0: an audio packet; bit 1: the channel's floor is unused; the rest is never read.
    audio = [bytes([((seed + index) * 4) & 0xFC]) for index in range(packets)]
    granules = [index * _VORBIS_SAMPLES_PER_PACKET for index in range(packets)]
    return _ogg_stream([[ident], [comment, _vorbis_setup()]], audio, granules, serial=seed)


_OPUS_SILENCE = b"\xf8\xff\xfe"  # CELT, full band, 20 ms, mono: digital silence
_OPUS_PRE_SKIP = 312


def ogg_opus_bytes(packets: int, *, seed: int) -> bytes:
    """Return a silent, untagged mono Ogg Opus stream of 20 ms packets.

    :param packets: how many audio packets, at least 1.
    :param seed: the stream's serial number.
    :returns: the file's bytes.
    """
    if packets < 1:
        raise ValueError("an Ogg Opus stream needs at least one audio packet")
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, _OPUS_PRE_SKIP, 48000, 0, 0)
    tags = _vorbis_comment_packet(b"OpusTags", b"ripstream tests", framing=False)
    granules = [(index + 1) * 960 for index in range(packets)]
    return _ogg_stream([[head], [tags]], [_OPUS_SILENCE] * packets, granules, serial=seed)


_ALAC_RATE = 8000
_ALAC_FRAME_LENGTH = 256


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, *parts: bytes, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", flags), *parts)


def _alac_frame(sample_value: int) -> bytes:
    """One uncompressed ("escape") ALAC frame of constant mono 16-bit samples."""
    bits = 0
    length = 0
    # element SCE, instance 0, 12 unused bits, not partial, no shift, escape; samples; END
    fields = [(0, 3), (0, 4), (0, 12), (0b0001, 4)]
    fields += [(sample_value & 0xFFFF, 16)] * _ALAC_FRAME_LENGTH
    fields.append((7, 3))
    for value, width in fields:  # most significant bit first
        bits = (bits << width) | value
        length += width
    padding = -length % 8
    return (bits << padding).to_bytes((length + padding) // 8, "big")


def m4a_bytes(frames: int, *, sample_value: int) -> bytes:
    """Return an untagged M4A (MP4 with one ALAC sound track) of constant-valued samples.

    The ``moov`` box comes before ``mdat``, so growing the tags moves the audio: the
    chunk offset in ``stco`` must follow it (see :func:`m4a_audio`).

    :param frames: how many 256-sample frames (32 ms each at 8 kHz), at least 1.
    :param sample_value: the signed 16-bit value of every sample; distinct per track.
    :returns: the file's bytes.
    """
    if frames < 1:
        raise ValueError("an M4A needs at least one frame")
    frame = _alac_frame(sample_value)
    duration = frames * _ALAC_FRAME_LENGTH
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    cookie = struct.pack(
        ">IBBBBBBHIII", _ALAC_FRAME_LENGTH, 0, 16, 40, 10, 14, 1, 255, len(frame), 0, _ALAC_RATE
    )
    entry = _box(
        b"alac",
        bytes(6) + struct.pack(">H", 1) + bytes(8),  # reserved, data reference 1, version...
        struct.pack(">HHHHI", 1, 16, 0, 0, _ALAC_RATE << 16),
        _full_box(b"alac", cookie),
    )

    def moov(chunk_offset: int) -> bytes:
        stbl = _box(
            b"stbl",
            _full_box(b"stsd", struct.pack(">I", 1), entry),
            _full_box(b"stts", struct.pack(">III", 1, frames, _ALAC_FRAME_LENGTH)),
            _full_box(b"stsc", struct.pack(">IIII", 1, 1, frames, 1)),
            _full_box(b"stsz", struct.pack(">II", len(frame), frames)),
            _full_box(b"stco", struct.pack(">II", 1, chunk_offset)),
        )
        minf = _box(
            b"minf",
            _full_box(b"smhd", bytes(4)),
            _box(b"dinf", _full_box(b"dref", struct.pack(">I", 1), _full_box(b"url ", flags=1))),
            stbl,
        )
        mdia = _box(
            b"mdia",
            _full_box(b"mdhd", struct.pack(">IIIIHH", 0, 0, _ALAC_RATE, duration, 0x55C4, 0)),
            _full_box(b"hdlr", bytes(4), b"soun", bytes(12), b"SoundHandler\x00"),
            minf,
        )
        tkhd = _full_box(
            b"tkhd",
            struct.pack(">IIIII", 0, 0, 1, 0, duration) + bytes(8),
            struct.pack(">hhHH", 0, 0, 0x0100, 0) + matrix + struct.pack(">II", 0, 0),
            flags=7,
        )
        mvhd = _full_box(
            b"mvhd",
            struct.pack(">IIIIIH", 0, 0, _ALAC_RATE, duration, 0x10000, 0x0100) + bytes(10),
            matrix + bytes(24) + struct.pack(">I", 2),
        )
        return _box(b"moov", mvhd, _box(b"trak", tkhd, mdia))

    ftyp = _box(b"ftyp", b"M4A ", struct.pack(">I", 0), b"M4A mp42isom")
    offset = len(ftyp) + len(moov(0)) + 8  # the audio starts after the mdat header
    return ftyp + moov(offset) + _box(b"mdat", frame * frames)


def m4a_audio(data: bytes) -> bytes:
    """Return the audio an M4A from :func:`m4a_bytes` plays: the bytes its ``stco`` and
    ``stsz`` point at, wherever the tags moved them.

    :param data: the file's bytes.
    """
    stco = data.index(b"stco")
    stsz = data.index(b"stsz")
    (offset,) = struct.unpack(">I", data[stco + 12 : stco + 16])
    size, count = struct.unpack(">II", data[stsz + 8 : stsz + 16])
    return data[offset : offset + size * count]


def wav_bytes(frames: int = 800, *, sample_value: int = 0) -> bytes:
    """Return a mono 16-bit 8 kHz WAV of ``frames`` constant-valued samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(struct.pack("<h", sample_value) * frames)
    return buffer.getvalue()


def jpeg_bytes(comment: str = "") -> bytes:
    """Return a valid baseline JPEG: 8x8 pixels of mid grey, with ``comment`` in a COM segment.

    Both Huffman tables hold one code (``0``): DC difference category 0, and end of block.
    """

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    text = comment.encode("utf-8") or b"ripstream"
    one_code = bytes([1]) + bytes(15) + b"\x00"  # one code of length 1, for symbol 0
    return (
        b"\xff\xd8"
        + segment(0xFE, text)
        + segment(0xDB, b"\x00" + bytes([1]) * 64)  # quantisation table 0, all ones
        + segment(0xC0, struct.pack(">BHHB", 8, 8, 8, 1) + b"\x01\x11\x00")  # 8x8 grey
        + segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)  # DC 0 and AC 0 tables
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")  # one component, tables 0/0
        + b"\x3f"  # DC "0", end of block "0", padded with ones
        + b"\xff\xd9"
    )
