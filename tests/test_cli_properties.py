"""Property tests: whatever the arguments, the CLI ends with 0, 1 or 2, never a traceback, and
a usage error is one line naming what was wrong."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ripstream.cli import main

FLAGS_WITH_VALUES = [
    "-j",
    "--jobs",
    "--segments",
    "--limit-rate",
    "--retries",
    "--checksum",
    "--on-exists",
    "--timeout",
    "--config",
    "-i",
    "--template",
    "--state",
]
FLAGS = [
    "-q",
    "--quiet",
    "--no-progress",
    "--json",
    "--no-state",
    "--no-archive",
    "--no-tags",
    "--fsync",
    "--bogus",
]
# a closed port on loopback: connections are refused at once, no traffic leaves the machine
URLS = [
    "http://127.0.0.1:9/a.mp3",
    "https://127.0.0.1:9/b",
    "ftp://127.0.0.1/x",
    "http://",
    "not a url",
    "http://[::1",
    "http://127.0.0.1:99999/x",
    "subsonic://h/album/1",
    "",
]

values = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "1",
            "8",
            "10M",
            "fast",
            "sha256:abc",
            "md5:" + "0" * 32,
            "skip",
            "rename",
            "{title",
            "{title}.{ext}",
            "/nonexistent/file",
            "-",
        ]
    ),
    st.text(max_size=12),
)
argument = st.one_of(
    st.tuples(st.sampled_from(FLAGS_WITH_VALUES), values).map(list),
    st.sampled_from(FLAGS).map(lambda flag: [flag]),
    st.sampled_from(URLS).map(lambda url: [url]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(argument, max_size=5))
def test_any_arguments_end_in_a_documented_exit_status(parts: list[list[str]]) -> None:
    argv = [piece for part in parts for piece in part]
    # relative paths among the arguments (--state sha256:abc) land in a scratch folder, never
    # in the checkout the tests run from
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        out = Path(tmp) / "out"
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main(
            ["-d", str(out), "--retries", "0", "--no-progress", *argv],
            stdin=io.StringIO(""),
            stdout=stdout,
            stderr=stderr,
        )
        assert code in (0, 1, 2), (argv, code)
        assert "Traceback" not in stderr.getvalue()
        if code == 2:
            lines = stderr.getvalue().strip().splitlines()
            assert len(lines) == 1, (argv, lines)
            assert lines[0].startswith("ripstream: error:")
            assert not out.exists(), argv


@pytest.mark.parametrize(
    "argv",
    [
        ["--state", "\x00", "http://127.0.0.1:9/a.mp3"],
        ["-i", "\x00"],
        ["--config", "a\x00b", "http://127.0.0.1:9/a.mp3"],
    ],
)
def test_a_nul_character_in_an_argument_is_one_line_exit_2(argv: list[str]) -> None:
    """Found by the property test above: a NUL in a path made os.open raise ValueError."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        stderr = io.StringIO()
        code = main(
            ["-d", str(out), *argv], stdin=io.StringIO(""), stdout=io.StringIO(), stderr=stderr
        )
        assert code == 2
        assert stderr.getvalue() == (
            "ripstream: error: an argument holds a NUL character, which no path or URL can\n"
        )
        assert not out.exists()
