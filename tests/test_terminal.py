"""Escape sequences from a server or from metadata never reach the terminal raw.

A hostile server puts ESC sequences (clear screen, set the window title), a C1 CSI and a bidi
override into its status line, and a URL names a file with them: the CLI's failure lines,
summary and JSON show them escaped (``\\x1b``), and tqdm bar titles do too.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from ripstream.downloader.progress import (
    DownloadProgress,
    ProgressState,
    TqdmProgress,
    printable,
)
from ripstream.terminal import Reporter
from tests.support.httpserver import Fault, TestServer

ROOT = Path(__file__).resolve().parents[1]
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\r")
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202egnp.exe"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ripstream", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


def test_printable_escapes_controls_and_bidi_overrides() -> None:
    assert printable(HOSTILE) == "\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202egnp.exe"
    assert printable("Café 日本 ok\u00e9") == "Café 日本 ok\u00e9"


def test_a_hostile_status_line_and_file_name_are_shown_escaped(
    server: TestServer, out_dir: Path
) -> None:
    status = f"HTTP/1.1 404 Not{HOSTILE}Found\r\nContent-Length: 0\r\n\r\n".encode()
    name = "%1B%5B2J%1B%5D0%3Bpwned%07%C2%9B31m%E2%80%AEgnp.exe"
    server.add(f"/x/{name}", b"", faults=[Fault.garbage_response(status)])
    run = cli("-d", str(out_dir), "--retries", "0", "--no-state", server.url(f"/x/{name}"))
    assert run.returncode == 1, run.stderr
    for raw in RAW:
        assert raw not in run.stderr, repr(run.stderr)
        assert raw not in run.stdout
    failure = [line for line in run.stderr.splitlines() if line.startswith("ripstream: failed:")]
    assert len(failure) == 1, run.stderr
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202egnp.exe" in failure[0]  # title and reason
    assert failure[0].count("\\x1b[2J") == 2


def test_json_lines_and_summary_carry_no_raw_controls(server: TestServer, out_dir: Path) -> None:
    server.add("/x", b"", faults=[Fault.status(404, times=None)])
    run = cli("-d", str(out_dir), "--json", "--no-state", server.url("/x/%1B%5B2Jsong.flac"))
    assert run.returncode == 1
    assert '"title": "\\u001b[2Jsong.flac"' in run.stdout
    assert "\x1b" not in run.stdout + run.stderr


def test_progress_bar_titles_are_escaped() -> None:
    stream = io.StringIO()
    bars = TqdmProgress(total_files=1, file=stream, disable=False)
    bars(
        "a",
        DownloadProgress(
            download_id="a",
            title=HOSTILE,
            downloaded_bytes=10,
            total_bytes=100,
            speed=1.0,
            elapsed=1.0,
            state=ProgressState.DOWNLOADING,
        ),
    )
    bars.close()
    text = stream.getvalue()
    assert "\\x1b[2J" in text
    assert "\x9b" not in text
    assert "\u202e" not in text
    assert "\x07" not in text


def test_the_reporter_escapes_what_it_prints() -> None:
    err = io.StringIO()
    Reporter(quiet=False, as_json=False, out=io.StringIO(), err=err, secrets=[]).error(
        f"bad {HOSTILE} https://u:pw@example.com/?token=T0KEN"
    )
    line = err.getvalue()
    assert line.count("\n") == 1
    assert "\x1b" not in line
    assert "T0KEN" not in line
    assert "u:pw" not in line
