"""Tags written into downloaded tracks with mutagen (the ``ripstream[tags]`` extra)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["tag_file"]

logger = logging.getLogger(__name__)

_FIELDS = ("title", "artist", "albumartist", "album", "date", "tracknumber", "discnumber", "genre")


def tag_file(part: Path, final: Path, values: Mapping[str, Any]) -> str | None:
    """Write the tags in ``values`` into ``part`` (the verified file before its rename).

    :returns: ``None`` when tags were written or the file is not a taggable audio format,
        otherwise a sentence saying why no tags were written.
    """
    try:
        import mutagen
    except ImportError:
        return "tags not written: install ripstream[tags] (mutagen)"
    try:
        audio = mutagen.File(part, easy=True)
    except mutagen.MutagenError as exc:
        logger.warning("%s: cannot read tags: %s", final.name, exc)
        return f"tags not written: {exc}"
    if audio is None:
        return None
    try:
        if audio.tags is None:
            audio.add_tags()
        for key in _FIELDS:
            value = values.get("year") if key == "date" else values.get(key)
            if value not in (None, ""):
                audio[key] = str(value)
        audio.save()
    except (mutagen.MutagenError, TypeError, KeyError, ValueError) as exc:
        logger.warning("%s: cannot write tags: %s", final.name, exc)
        return f"tags not written: {exc}"
    return None
