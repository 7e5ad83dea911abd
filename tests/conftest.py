"""Shared fixtures: a real HTTP server on 127.0.0.1 and an output folder.

Helpers that tests import (``fast_settings``, ``make_config``) live in tests/support/settings.py.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from tests.support.httpserver import TestServer


@pytest.fixture
def server() -> Iterator[TestServer]:
    """A real HTTP/1.1 server on 127.0.0.1 (see tests/support/httpserver/).

    After the test, a garbage collection: a connection the test left open (a session never
    closed) then warns in the test that leaked it, not in whichever test runs next.
    """
    with TestServer() as running:
        yield running
    gc.collect()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty output folder."""
    path = tmp_path / "out"
    path.mkdir()
    return path


# Hypothesis keeps nothing in the checkout (no example database, no .hypothesis/ folder):
# the test run leaves it as it was.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "ripstream-tests-hypothesis"))
settings.register_profile("ripstream", database=None)
settings.load_profile("ripstream")
