"""What a download may leave in a folder: RipStream's own temporary and lock files."""

from __future__ import annotations

from pathlib import Path

from ripstream.downloader.safefs import LOCK_SUFFIX, PART_SUFFIX


def leftovers(folder: Path) -> list[Path]:
    """Temporary ``.part`` files, their sidecars and lock files anywhere below ``folder``."""
    endings = (PART_SUFFIX, f"{PART_SUFFIX}.json", LOCK_SUFFIX)
    return sorted(path for path in folder.rglob("*") if path.name.endswith(endings))
