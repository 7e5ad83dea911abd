# mypy: disable-error-code="no-untyped-call"
"""Tags written into downloaded tracks with mutagen (the ``ripstream[tags]`` extra).

Plugged into the engine as a post-processor (:class:`TagWriter`), it runs on a verified
``.part`` file just before its rename: :func:`tag_file` sniffs the format from
the bytes and writes FLAC and Ogg Vorbis/Opus comments, MP3 ID3v2.4 frames or MP4 iTunes
atoms (``trkn``, ``disk``), with the album cover as the front cover picture (FLAC PICTURE,
ID3 APIC, MP4 ``covr``, Ogg ``METADATA_BLOCK_PICTURE``). Anything else (WAV, an image, a
playlist) is left untouched. Tags are written into a copy that replaces the ``.part`` file
only once mutagen has saved it, so a tagging failure never damages the download: it becomes
a note for the result, never an exception.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["COVER_NAMES", "MAX_COVER_BYTES", "TagWriter", "tag_file"]

logger = logging.getLogger(__name__)

#: Cover files looked for beside the track, in this order.
COVER_NAMES = ("cover.jpg", "cover.jpeg", "cover.png", "folder.jpg", "folder.png")
#: Larger covers are skipped: 16 MiB, less room for the header of a FLAC picture block
#: (which holds at most 2**24 - 1 bytes).
MAX_COVER_BYTES = 16 * 1024 * 1024 - 4096
_INSTALL_NOTE = "tags not written: install ripstream[tags] (mutagen)"
_FRONT_COVER = 3  # the picture type shared by FLAC, ID3 and METADATA_BLOCK_PICTURE
#: Text fields: the Vorbis comment name, then its ID3 frame and MP4 atom.
_TEXT_FIELDS = {
    "title": ("TIT2", "\xa9nam"),
    "artist": ("TPE1", "\xa9ART"),
    "albumartist": ("TPE2", "aART"),
    "album": ("TALB", "\xa9alb"),
    "date": ("TDRC", "\xa9day"),
    "genre": ("TCON", "\xa9gen"),
}


@dataclass(slots=True)
class _Cover:
    data: bytes
    mime: str


@dataclass(slots=True)
class _Tags:
    """The values of one track, checked and normalised before the file is touched."""

    text: dict[str, list[str]] = field(default_factory=dict)
    track: tuple[int | None, int | None] = (None, None)
    disc: tuple[int | None, int | None] = (None, None)
    cover: _Cover | None = None
    cover_note: str | None = None


@dataclass(frozen=True, slots=True)
class TagWriter:
    """The engine post-processor that tags tracks (other content types are left alone).

    Picklable, so worker processes get one too. Thread-safe for distinct files.

    Example::

        manager = DownloadManager(config, post_processors=[TagWriter()])
    """

    def __call__(
        self, content: Any, part: Path, final: Path, values: Mapping[str, Any]
    ) -> str | None:
        if getattr(content.content_type, "value", None) != "track":
            return None
        return tag_file(part, final, values)


def tag_file(part: Path, final: Path, values: Mapping[str, Any]) -> str | None:
    """Write the tags in ``values`` (and the album cover) into ``part``.

    Example::

        note = tag_file(Path("01 - Intro.flac.part"), Path("01 - Intro.flac"),
                        {"title": "Intro", "artist": "Band", "tracknumber": "1/12"})

    :param part: the verified file, still under its temporary name; changed in place.
    :param final: the name it will have, whose folder is searched for a cover.
    :param values: naming values: ``title``, ``artist``, ``albumartist``, ``album``,
        ``date`` or ``year``, ``tracknumber`` and ``tracktotal`` (``3`` or ``"3/12"``),
        ``discnumber`` and ``disctotal``, ``genre``, optionally ``cover_path``.
    :returns: ``None`` when the tags were written or the file is not a taggable format;
        otherwise a short sentence for the result's message. Never raises for a tagging
        problem: the download is worth more than its tags. Thread-safe for distinct files.
    """
    try:
        import mutagen
    except ImportError:
        return _INSTALL_NOTE
    try:
        return _tag(part, final, values)
    except (mutagen.MutagenError, OSError, ValueError, TypeError) as exc:
        reason = str(exc) or type(exc).__name__
        logger.warning("%s: tags not written: %s", final.name, reason)
    except Exception as exc:  # a parser bug on untrusted bytes must not cost the file
        reason = f"{type(exc).__name__}: {exc}"
        logger.warning("%s: tags not written: %s", final.name, reason, exc_info=True)
    return f"tags not written: {reason[:200]}"


def _tag(part: Path, final: Path, values: Mapping[str, Any]) -> str | None:
    with open(part, "rb") as handle:
        opener = _opener(_head(handle))
    if opener is None:
        return None
    tags = _collect(values, final.parent)
    if tags.text or tags.track != (None, None) or tags.disc != (None, None) or tags.cover:
        _save(opener(part), part, tags)
    if tags.cover_note:
        logger.warning("%s: %s", final.name, tags.cover_note)
    return tags.cover_note


def _save(audio: Any, part: Path, tags: _Tags) -> None:
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    if audio.tags is None:
        audio.add_tags()
    if isinstance(audio.tags, ID3):
        _write_id3(audio.tags, tags)
    elif isinstance(audio.tags, MP4Tags):
        _write_mp4(audio.tags, tags)
    else:
        _write_vorbis(audio, tags)
    # mutagen rewrites files in place: work on a copy so a failure leaves the download whole.
    work = part.with_name(part.name + ".tagging")
    try:
        shutil.copyfile(part, work)
        audio.save(work)  # ID3 is saved as v2.4, mutagen's default
        os.replace(work, part)
    finally:
        work.unlink(missing_ok=True)


def _head(handle: BinaryIO) -> bytes:
    """The first bytes of the stream, past an ID3v2 tag that precedes a FLAC stream."""
    head = handle.read(64)
    if head.startswith(b"ID3") and len(head) >= 10:
        size = 10 + sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(head[6:10]))
        handle.seek(size + (10 if head[5] & 0x10 else 0))  # the footer flag
        after = handle.read(64)
        if after.startswith(b"fLaC"):
            return after
    return head


def _opener(head: bytes) -> Callable[[Path], Any] | None:
    """The mutagen class for the format ``head`` starts with, or ``None``."""
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis

    if head.startswith(b"fLaC"):
        return FLAC
    if head.startswith(b"ID3"):
        return MP3
    if head[4:8] == b"ftyp":
        return MP4
    if head.startswith(b"OggS") and len(head) > 27:
        first_packet = head[27 + head[26] :]  # after the page header and its lacing table
        if first_packet.startswith(b"\x01vorbis"):
            return OggVorbis
        if first_packet.startswith(b"OpusHead"):
            return OggOpus
        return None
    if len(head) >= 3 and head[0] == 0xFF and _mpeg_layer3(head[1], head[2]):
        return MP3
    return None


def _mpeg_layer3(second: int, third: int) -> bool:
    """Whether the bytes after ``0xFF`` make a valid MPEG audio Layer III frame header."""
    sync, version, layer = second >> 5, (second >> 3) & 3, (second >> 1) & 3
    bitrate, rate = third >> 4, (third >> 2) & 3
    return sync == 7 and version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def _collect(values: Mapping[str, Any], folder: Path) -> _Tags:
    """Check and normalise ``values``; :raises TypeError, ValueError: for a value unfit."""
    tags = _Tags()
    for key in _TEXT_FIELDS:
        raw = values.get(key)
        if key == "date" and raw in (None, ""):
            raw = values.get("year")
        texts = _texts(key, raw)
        if texts:
            tags.text[key] = texts
    tags.track = _pair(values, "tracknumber", "tracktotal")
    tags.disc = _pair(values, "discnumber", "disctotal")
    tags.cover, tags.cover_note = _find_cover(values.get("cover_path"), folder)
    return tags


def _texts(key: str, raw: object) -> list[str]:
    items = raw if isinstance(raw, list | tuple) else [raw]
    texts: list[str] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise TypeError(f"{key} is a {type(item).__name__}, not text")
        text = str(item).strip()
        if text:
            texts.append(text)
    return texts


def _pair(
    values: Mapping[str, Any], number_key: str, total_key: str
) -> tuple[int | None, int | None]:
    """``(number, total)`` from ``3``, ``"3"`` or ``"3/12"``; a separate total wins."""
    number, total = _number(number_key, values.get(number_key))
    own_total, _ = _number(total_key, values.get(total_key))
    return number, own_total if own_total is not None else total


def _number(key: str, raw: object) -> tuple[int | None, int | None]:
    if raw is None or raw == "":
        return None, None
    if isinstance(raw, int) and not isinstance(raw, bool):
        parts = [str(raw)]
    elif isinstance(raw, str):
        parts = [part.strip() for part in raw.split("/", 1)]
    else:
        raise TypeError(f"{key} is a {type(raw).__name__}, not a number")
    if not all(part.isascii() and part.isdigit() for part in parts if part) or not parts[0]:
        raise ValueError(f"{key} {raw!r} is not a number")
    numbers = [int(part) if part else None for part in parts]
    return numbers[0], numbers[1] if len(numbers) > 1 else None


def _find_cover(given: object, folder: Path) -> tuple[_Cover | None, str | None]:
    """The cover to embed, or why there is none (``None`` when there simply is no cover)."""
    if given is not None and given != "":
        if not isinstance(given, str | os.PathLike):
            raise TypeError(f"cover_path is a {type(given).__name__}, not a path")
        path: Path | None = folder / Path(given)  # an absolute path replaces the folder
    else:
        path = next((folder / name for name in COVER_NAMES if (folder / name).is_file()), None)
    if path is None:
        return None, None
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_COVER_BYTES + 1)
    except OSError as exc:
        return None, f"cover not embedded: cannot read {path.name} ({exc.strerror or exc})"
    if len(data) > MAX_COVER_BYTES:
        return None, f"cover not embedded: {path.name} is too large (16 MiB at most)"
    if data.startswith(b"\xff\xd8\xff"):
        return _Cover(data, "image/jpeg"), None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _Cover(data, "image/png"), None
    return None, f"cover not embedded: {path.name} is neither a JPEG nor a PNG image"


def _write_id3(id3: Any, tags: _Tags) -> None:
    from mutagen import id3 as frames

    for key, texts in tags.text.items():
        name = _TEXT_FIELDS[key][0]
        id3.setall(name, [getattr(frames, name)(encoding=3, text=texts)])
    for name, (number, total) in (("TRCK", tags.track), ("TPOS", tags.disc)):
        if number is not None:
            text = f"{number}/{total}" if total is not None else str(number)
            id3.setall(name, [getattr(frames, name)(encoding=3, text=[text])])
    if tags.cover is not None:
        for key in [
            k for k, frame in id3.items() if k.startswith("APIC") and frame.type == _FRONT_COVER
        ]:
            del id3[key]
        cover = tags.cover
        id3.add(frames.APIC(encoding=3, mime=cover.mime, type=3, desc="Cover", data=cover.data))


def _write_mp4(mp4: Any, tags: _Tags) -> None:
    from mutagen.mp4 import MP4Cover

    for key, texts in tags.text.items():
        mp4[_TEXT_FIELDS[key][1]] = texts
    for atom, (number, total) in (("trkn", tags.track), ("disk", tags.disc)):
        if number is not None or total is not None:
            mp4[atom] = [(number or 0, total or 0)]
    if tags.cover is not None:
        png = tags.cover.mime == "image/png"
        image_format = MP4Cover.FORMAT_PNG if png else MP4Cover.FORMAT_JPEG
        mp4["covr"] = [MP4Cover(tags.cover.data, imageformat=image_format)]


def _write_vorbis(audio: Any, tags: _Tags) -> None:
    """Vorbis comments, shared by FLAC, Ogg Vorbis and Ogg Opus."""
    from mutagen.flac import FLAC, Picture

    comments = audio.tags
    for key, texts in tags.text.items():
        comments[key] = texts
    for prefix, (number, total) in (("track", tags.track), ("disc", tags.disc)):
        if number is not None:
            comments[f"{prefix}number"] = [str(number)]
        if total is not None:
            comments[f"{prefix}total"] = [str(total)]
    if tags.cover is None:
        return
    picture = Picture()
    picture.type = _FRONT_COVER
    picture.mime = tags.cover.mime
    picture.desc = "Cover"
    picture.data = tags.cover.data
    if isinstance(audio, FLAC):
        others = [p for p in audio.pictures if p.type != _FRONT_COVER]
        audio.clear_pictures()
        for kept in [*others, picture]:
            audio.add_picture(kept)
        return
    # base64 of a picture type 3 (big-endian u32) and a mime length below 2**28
    blocks = [b for b in comments.get("metadata_block_picture", []) if b[:6] != "AAAAAw"]
    comments["metadata_block_picture"] = [*blocks, base64.b64encode(picture.write()).decode()]
