"""What was synced to the disk: ``os.fsync`` recorded, and still done."""

from __future__ import annotations

import os

import pytest


def recorded_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, every ``os.fsync`` appends the path of its file (or folder) to the list
    this returns, then syncs as usual."""
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return synced
