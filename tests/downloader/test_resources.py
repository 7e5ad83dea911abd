"""Closing: everything that holds connections, files or databases is a context manager."""

from __future__ import annotations

import pytest

from ripstream.downloader.resources import Closing


class Held(Closing):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_leaving_the_block_closes_even_on_error() -> None:
    with Held() as held:
        assert held.closed == 0
    assert held.closed == 1
    other = Held()
    with pytest.raises(RuntimeError), other:
        raise RuntimeError("boom")
    assert other.closed == 1


def test_close_is_abstract() -> None:
    with pytest.raises(TypeError):
        Closing()  # type: ignore[abstract]
