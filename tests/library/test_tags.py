# mypy: disable-error-code="no-untyped-call"
"""tag_file on real FLAC, MP3, M4A, Ogg Vorbis and Ogg Opus files, and through a download."""

from __future__ import annotations

import base64
import logging
import os
import random
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, ID3, TIT2
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

from ripstream.downloader import BaseDownloader, ContentType, DownloadableContent, TrackMetadata
from ripstream.downloader.content import ResultStatus
from ripstream.library.tags import MAX_COVER_BYTES, TagWriter, tag_file
from tests.support.audio import (
    flac_bytes,
    jpeg_bytes,
    m4a_audio,
    m4a_bytes,
    mp3_bytes,
    ogg_opus_bytes,
    ogg_packets,
    ogg_vorbis_bytes,
    png_bytes,
    sha256_hex,
    wav_bytes,
)
from tests.support.httpserver import TestServer
from tests.support.settings import make_config

VALUES: dict[str, Any] = {
    "title": "Dawn Chorus",
    "artist": "The Test Tones feat. Guest",
    "albumartist": "The Test Tones",
    "album": "First Light",
    "year": 2021,
    "tracknumber": "3/12",
    "discnumber": 1,
    "disctotal": "2",
    "genre": "Ambient",
    "ext": "flac",
}
COVER = jpeg_bytes("front cover")


def expected(cover: bytes | None = COVER, mime: str = "image/jpeg") -> dict[str, Any]:
    """What ``read`` gives for a file tagged with VALUES and ``cover``."""
    return {
        "title": ["Dawn Chorus"],
        "artist": ["The Test Tones feat. Guest"],
        "albumartist": ["The Test Tones"],
        "album": ["First Light"],
        "date": ["2021"],
        "genre": ["Ambient"],
        "track": (3, 12),
        "disc": (1, 2),
        "covers": [] if cover is None else [(3, mime, cover)],
    }


# --------------------------------------------------------------------------- readers


def _pair(text: str) -> tuple[int, int | None]:
    number, _, total = text.partition("/")
    return int(number), int(total) if total else None


def read_vorbis(audio: Any) -> dict[str, Any]:
    tags = audio.tags
    if isinstance(audio, FLAC):
        pictures = audio.pictures
    else:
        blocks = tags.get("metadata_block_picture", [])
        pictures = [Picture(base64.b64decode(block)) for block in blocks]
    return {
        **{key: tags[key] for key in ("title", "artist", "albumartist", "album", "date", "genre")},
        "track": (int(tags["tracknumber"][0]), int(tags["tracktotal"][0])),
        "disc": (int(tags["discnumber"][0]), int(tags["disctotal"][0])),
        "covers": [(p.type, p.mime, p.data) for p in pictures],
    }


def read_id3(path: Path) -> dict[str, Any]:
    tags = ID3(path)
    assert tags.version == (2, 4, 0)
    frames = {
        "title": "TIT2",
        "artist": "TPE1",
        "albumartist": "TPE2",
        "album": "TALB",
        "date": "TDRC",
        "genre": "TCON",
    }
    return {
        **{key: [str(text) for text in tags[name].text] for key, name in frames.items()},
        "track": _pair(tags["TRCK"].text[0]),
        "disc": _pair(tags["TPOS"].text[0]),
        "covers": [(f.type, f.mime, f.data) for f in tags.getall("APIC")],
    }


def read_mp4(path: Path) -> dict[str, Any]:
    tags = MP4(path).tags
    assert tags is not None
    atoms = {
        "title": "\xa9nam",
        "artist": "\xa9ART",
        "albumartist": "aART",
        "album": "\xa9alb",
        "date": "\xa9day",
        "genre": "\xa9gen",
    }
    mimes = {MP4Cover.FORMAT_JPEG: "image/jpeg", MP4Cover.FORMAT_PNG: "image/png"}
    return {
        **{key: tags[atom] for key, atom in atoms.items()},
        "track": tags["trkn"][0],
        "disc": tags["disk"][0],
        "covers": [(3, mimes[c.imageformat], bytes(c)) for c in tags.get("covr", [])],
    }


# --------------------------------------------------------------------------- the audio


def flac_frames(data: bytes) -> tuple[bytes, bytes]:
    """STREAMINFO and the audio frames after the last metadata block."""
    assert data[:4] == b"fLaC"
    pos, streaminfo = 4, b""
    while True:
        last, kind = data[pos] & 0x80, data[pos] & 0x7F
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        if kind == 0:
            streaminfo = data[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if last:
            return streaminfo, data[pos:]


def mpeg_frames(data: bytes) -> bytes:
    """The MPEG frames after the ID3v2 tag (and its padding)."""
    if data[:3] != b"ID3":
        return data
    size = sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(data[6:10]))
    return data[10 + size :]


def ogg_audio(data: bytes) -> list[bytes]:
    """Every packet but the comment header (the second packet), setup header included."""
    return [packet for index, packet in enumerate(ogg_packets(data)) if index != 1]


@dataclass(frozen=True)
class Format:
    name: str
    make: Callable[[], bytes]
    #: the mutagen class that reads the format
    kind: Any
    #: what must not change: the audio, without the tags
    audio: Callable[[bytes], object]

    def read(self, path: Path) -> dict[str, Any]:
        if self.kind is MP3:
            return read_id3(path)
        return read_mp4(path) if self.kind is MP4 else read_vorbis(self.kind(path))

    def length(self, path: Path) -> float:
        return float(self.kind(path).info.length)


FORMATS = [
    Format("flac", lambda: flac_bytes(3, sample_value=77), FLAC, flac_frames),
    Format("mp3", lambda: mp3_bytes(30, seed=3), MP3, mpeg_frames),
    Format("m4a", lambda: m4a_bytes(8, sample_value=-5), MP4, m4a_audio),
    Format("ogg", lambda: ogg_vorbis_bytes(40, seed=9), OggVorbis, ogg_audio),
    Format("opus", lambda: ogg_opus_bytes(25, seed=11), OggOpus, ogg_audio),
]
BY_NAME = {fmt.name: fmt for fmt in FORMATS}


def part_file(folder: Path, name: str, data: bytes) -> tuple[Path, Path]:
    """Write ``data`` as ``folder/name.part``; return (part, final)."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    part = folder / f"{name}.part"
    part.write_bytes(data)
    return part, final


def assert_untouched(part: Path, data: bytes) -> None:
    assert sha256_hex(part.read_bytes()) == sha256_hex(data)
    assert sorted(p.name for p in part.parent.iterdir() if p.name.startswith(part.name)) == [
        part.name
    ]


# --------------------------------------------------------------------------- each format


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_tags_and_cover_are_written_and_the_audio_is_unchanged(fmt: Format, tmp_path: Path) -> None:
    (tmp_path / "cover.jpg").write_bytes(COVER)
    data = fmt.make()
    part, final = part_file(tmp_path, f"03 - Dawn Chorus.{fmt.name}", data)
    length = fmt.length(part)

    assert tag_file(part, final, VALUES) is None

    assert fmt.read(part) == expected()
    assert fmt.audio(part.read_bytes()) == fmt.audio(data)
    assert fmt.length(part) == length
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "03 - Dawn Chorus." + fmt.name + ".part",
        "cover.jpg",
    ]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_tagging_twice_replaces_values_and_the_front_cover(fmt: Format, tmp_path: Path) -> None:
    part, final = part_file(tmp_path, f"song.{fmt.name}", fmt.make())
    (tmp_path / "cover.jpg").write_bytes(jpeg_bytes("an older cover"))
    assert tag_file(part, final, {**VALUES, "title": "Old title"}) is None
    (tmp_path / "cover.jpg").write_bytes(COVER)

    assert tag_file(part, final, VALUES) is None

    assert fmt.read(part) == expected()


@pytest.mark.parametrize("name", ["flac", "ogg"])
def test_other_pictures_are_kept_when_the_front_cover_is_replaced(
    name: str, tmp_path: Path
) -> None:
    fmt = BY_NAME[name]
    part, final = part_file(tmp_path, f"song.{name}", fmt.make())
    back = Picture()
    back.type, back.mime, back.data = 4, "image/png", png_bytes((1, 2, 3))
    audio: Any = FLAC(part) if name == "flac" else OggVorbis(part)
    if name == "flac":
        audio.add_picture(back)
    else:
        audio["metadata_block_picture"] = [base64.b64encode(back.write()).decode()]
    audio.save()

    assert (
        tag_file(part, final, {**VALUES, "cover_path": _write(tmp_path / "a.jpg", COVER)}) is None
    )

    assert fmt.read(part)["covers"] == [(4, "image/png", back.data), (3, "image/jpeg", COVER)]


def test_existing_id3_tags_are_upgraded_and_other_frames_kept(tmp_path: Path) -> None:
    part, final = part_file(tmp_path, "song.mp3", mp3_bytes(30, seed=4))
    old = ID3()
    old.add(TIT2(encoding=1, text="Old"))
    old.add(APIC(encoding=3, mime="image/png", type=4, desc="Back", data=png_bytes((9, 9, 9))))
    old.save(part, v2_version=3)

    assert (
        tag_file(part, final, {**VALUES, "cover_path": _write(tmp_path / "c.jpg", COVER)}) is None
    )

    tags = ID3(part)
    assert tags["TIT2"].text == ["Dawn Chorus"]
    assert sorted((f.type, f.mime) for f in tags.getall("APIC")) == [
        (3, "image/jpeg"),
        (4, "image/png"),
    ]
    assert mpeg_frames(part.read_bytes()) == mp3_bytes(30, seed=4)


def test_a_flac_behind_an_id3_tag_gets_vorbis_comments(tmp_path: Path) -> None:
    data = flac_bytes(2, sample_value=12)
    part, final = part_file(tmp_path, "song.flac", data)
    stray = ID3()
    stray.add(TIT2(encoding=3, text="written by a careless tool"))
    stray.save(part)
    assert part.read_bytes()[:3] == b"ID3"

    assert (
        tag_file(part, final, {**VALUES, "cover_path": _write(tmp_path / "c.jpg", COVER)}) is None
    )

    assert read_vorbis(FLAC(part)) == expected()
    assert flac_frames(mpeg_frames(part.read_bytes())) == flac_frames(data)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("changes", "track", "disc"),
    [
        ({"tracknumber": 3, "tracktotal": 12}, (3, 12), (1, 2)),
        ({"tracknumber": "03", "tracktotal": "12"}, (3, 12), (1, 2)),
        ({"tracknumber": "3/10", "tracktotal": 12}, (3, 12), (1, 2)),
        ({"discnumber": "1/2", "disctotal": None}, (3, 12), (1, 2)),
        ({"tracknumber": "5", "discnumber": None, "disctotal": None}, (5, 0), None),
    ],
)
def test_numbers_are_read_from_ints_and_slashed_strings(
    changes: dict[str, Any], track: tuple[int, int], disc: tuple[int, int] | None, tmp_path: Path
) -> None:
    part, final = part_file(tmp_path, "song.m4a", m4a_bytes(4, sample_value=1))
    assert tag_file(part, final, {**VALUES, **changes}) is None
    tags = MP4(part).tags
    assert tags is not None
    assert (tags["trkn"][0], tags.get("disk", [None])[0]) == (track, disc)


def test_date_wins_over_year_and_lists_give_several_values(tmp_path: Path) -> None:
    part, final = part_file(tmp_path, "song.flac", flac_bytes(2, sample_value=5))
    values = {**VALUES, "date": "2021-06-01", "artist": ["Alpha", "Beta"]}
    assert tag_file(part, final, values) is None
    tags = read_vorbis(FLAC(part))
    assert (tags["date"], tags["artist"]) == (["2021-06-01"], ["Alpha", "Beta"])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"title": {"a": 1}}, "title is a dict, not text"),
        ({"artist": True}, "artist is a bool, not text"),
        ({"tracknumber": "A1"}, "tracknumber 'A1' is not a number"),
        ({"discnumber": 1.5}, "discnumber is a float, not a number"),
        ({"cover_path": 42}, "cover_path is a int, not a path"),
    ],
)
def test_unfit_values_leave_the_file_unchanged_with_a_note(
    changes: dict[str, Any], reason: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = flac_bytes(2, sample_value=6)
    part, final = part_file(tmp_path, "song.flac", data)
    with caplog.at_level(logging.WARNING, logger="ripstream.library.tags"):
        assert tag_file(part, final, {**VALUES, **changes}) == f"tags not written: {reason}"
    assert_untouched(part, data)
    assert [r.getMessage() for r in caplog.records] == [f"song.flac: tags not written: {reason}"]


def test_no_values_and_no_cover_leave_the_file_unchanged(tmp_path: Path) -> None:
    data = flac_bytes(2, sample_value=7)
    part, final = part_file(tmp_path, "song.flac", data)
    assert tag_file(part, final, {"ext": "flac", "title": "  ", "album": None}) is None
    assert_untouched(part, data)


# --------------------------------------------------------------------------- covers


def test_the_first_cover_name_found_wins_and_its_type_is_sniffed(tmp_path: Path) -> None:
    png = png_bytes((10, 20, 30))
    (tmp_path / "folder.jpg").write_bytes(jpeg_bytes("folder"))
    (tmp_path / "cover.png").write_bytes(jpeg_bytes("cover.png holds a JPEG"))
    (tmp_path / "cover.jpeg").write_bytes(png)  # a PNG under a JPEG name
    part, final = part_file(tmp_path, "song.m4a", m4a_bytes(4, sample_value=2))
    assert tag_file(part, final, VALUES) is None
    assert read_mp4(part)["covers"] == [(3, "image/png", png)]


def test_cover_path_wins_over_the_folder_and_may_be_relative(tmp_path: Path) -> None:
    (tmp_path / "cover.jpg").write_bytes(jpeg_bytes("not this one"))
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "front.jpg").write_bytes(COVER)
    part, final = part_file(tmp_path, "song.mp3", mp3_bytes(10, seed=1))
    assert tag_file(part, final, {**VALUES, "cover_path": "art/front.jpg"}) is None
    assert read_id3(part) == expected()


@pytest.mark.parametrize(
    ("content", "note"),
    [
        (None, "cover not embedded: cover.jpg is too large (16 MiB at most)"),
        (
            b"<html>not an image</html>",
            "cover not embedded: cover.jpg is neither a JPEG nor a PNG image",
        ),
    ],
)
def test_an_unusable_cover_is_skipped_but_the_tags_are_written(
    content: bytes | None, note: str, tmp_path: Path
) -> None:
    cover = tmp_path / "cover.jpg"
    if content is None:  # a sparse file just over the limit, starting like a JPEG
        cover.write_bytes(COVER)
        os.truncate(cover, MAX_COVER_BYTES + 1)
    else:
        cover.write_bytes(content)
    part, final = part_file(tmp_path, "song.flac", flac_bytes(2, sample_value=8))
    assert tag_file(part, final, VALUES) == note
    assert read_vorbis(FLAC(part)) == expected(cover=None)


def test_a_missing_cover_path_is_a_note(tmp_path: Path) -> None:
    part, final = part_file(tmp_path, "song.opus", ogg_opus_bytes(5, seed=2))
    note = tag_file(part, final, {**VALUES, "cover_path": str(tmp_path / "gone.jpg")})
    assert note is not None
    assert note.startswith("cover not embedded: cannot read gone.jpg")
    assert read_vorbis(OggOpus(part)) == expected(cover=None)


# --------------------------------------------------------------------------- left alone


def _ogg_flac_page() -> bytes:
    """An Ogg page whose first packet is Ogg FLAC: Ogg, but not Vorbis or Opus."""
    data = bytearray(ogg_vorbis_bytes(2, seed=1))
    data[28:35] = b"\x7fFLAC\x01\x00"
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        wav_bytes(),
        random.Random(7).randbytes(4096),
        COVER,
        png_bytes((1, 1, 1)),
        b"#EXTM3U\n#EXTINF:3,Song\nsong.mp4\nother.ogg ftyp OggS fLaC\n",
        b"",
        _ogg_flac_page(),
        b"\xff\xf1\x50\x80" + bytes(200),  # ADTS AAC, not MPEG Layer III
    ],
    ids=["wav", "random", "jpeg", "png", "playlist", "empty", "ogg-flac", "adts"],
)
def test_other_files_are_left_byte_for_byte(data: bytes, tmp_path: Path) -> None:
    (tmp_path / "cover.jpg").write_bytes(COVER)
    part, final = part_file(tmp_path, "track.flac", data)
    assert tag_file(part, final, VALUES) is None
    assert_untouched(part, data)


@pytest.mark.parametrize(
    "data",
    [
        b"fLaC" + random.Random(1).randbytes(300),
        flac_bytes(2, sample_value=3)[:30],
        b"ID3\x04\x00\x00\x00\x00\x00\x00",
        b"\x00\x00\x00\x10ftypM4A " + random.Random(2).randbytes(100),
        ogg_vorbis_bytes(3, seed=4)[:60],
    ],
    ids=["flac-garbage", "flac-truncated", "id3-only", "mp4-garbage", "ogg-truncated"],
)
def test_a_corrupt_file_gives_a_note_and_stays_unchanged(
    data: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cover.jpg").write_bytes(COVER)
    part, final = part_file(tmp_path, "track.bin", data)
    with caplog.at_level(logging.WARNING, logger="ripstream.library.tags"):
        note = tag_file(part, final, VALUES)
    assert note is not None
    assert note.startswith("tags not written: ")
    assert_untouched(part, data)
    assert any("tags not written" in r.getMessage() for r in caplog.records)


def test_a_failure_while_saving_never_damages_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_save(self: FLAC, filething: Any = None, **kwargs: Any) -> None:
        Path(filething).write_bytes(b"half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(FLAC, "save", broken_save)
    data = flac_bytes(2, sample_value=9)
    part, final = part_file(tmp_path, "song.flac", data)
    with caplog.at_level(logging.WARNING, logger="ripstream.library.tags"):
        assert tag_file(part, final, VALUES) == "tags not written: RuntimeError: disk on fire"
    assert_untouched(part, data)
    assert caplog.records[-1].exc_info is not None


def test_without_mutagen_the_note_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mutagen", None)
    data = flac_bytes(2, sample_value=10)
    part, final = part_file(tmp_path, "song.flac", data)
    assert tag_file(part, final, VALUES) == "tags not written: install ripstream[tags] (mutagen)"
    assert_untouched(part, data)


def test_ripstream_imports_without_mutagen() -> None:
    code = (
        "import sys; sys.modules['mutagen'] = None\n"
        "import ripstream, ripstream.downloader, ripstream.library.tags, ripstream.cli\n"
        "assert not any(name.startswith('mutagen.') for name in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- end to end


class AlbumSource(BaseDownloader):
    """Serves one album's tracks from the test server, with tags in the metadata."""

    def __init__(self, *args: Any, base_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_url = base_url

    @property
    def source_name(self) -> str:
        return "album"

    @property
    def supported_content_types(self) -> list[ContentType]:
        return [ContentType.TRACK]

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        return DownloadableContent(
            content_id=content_id,
            content_type=ContentType.TRACK,
            source=self.source_name,
            title="Dawn Chorus",
            artist="The Test Tones feat. Guest",
            album="First Light",
            url=f"{self.base_url}/stream/{content_id}",
            file_extension="flac",
            # the seed's plain mapping still works (turned into TrackMetadata)
            metadata=TrackMetadata.from_mapping(
                {
                    "albumartist": "The Test Tones",
                    "year": 2021,
                    "tracknumber": 3,
                    "tracktotal": 12,
                    "discnumber": "1/2",
                    "genre": "Ambient",
                }
            ),
        )


def test_a_downloaded_track_lands_tagged_beside_its_cover(
    server: TestServer, out_dir: Path
) -> None:
    body = flac_bytes(4, sample_value=1000)
    server.add("/stream/t3", body, content_type="audio/flac")
    album = out_dir / "The Test Tones" / "First Light"
    album.mkdir(parents=True)
    (album / "cover.jpg").write_bytes(COVER)
    config = make_config(out_dir)
    config.filename_template = "{albumartist}/{album}/{tracknumber} - {title}.{ext}"

    with AlbumSource(config, base_url=server.base_url, post_processors=[TagWriter()]) as source:
        result = source.download(source.get_download_info("t3"))

    assert result.status is ResultStatus.COMPLETED, result.error_message
    assert result.message is None
    assert result.file_path == album / "3 - Dawn Chorus.flac"
    assert read_vorbis(FLAC(result.file_path)) == expected()
    assert flac_frames(result.file_path.read_bytes()) == flac_frames(body)
    assert sorted(p.name for p in album.iterdir()) == ["3 - Dawn Chorus.flac", "cover.jpg"]


def test_tags_off_keeps_the_downloaded_bytes(server: TestServer, out_dir: Path) -> None:
    body = flac_bytes(2, sample_value=2000)
    server.add("/stream/t1", body)
    (out_dir / "cover.jpg").write_bytes(COVER)
    config = make_config(out_dir)
    with AlbumSource(config, base_url=server.base_url) as source:  # no tag writer plugged in
        result = source.download(source.get_download_info("t1"))
    assert result.file_path is not None
    assert sha256_hex(result.file_path.read_bytes()) == sha256_hex(body)
