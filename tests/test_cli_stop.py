"""A run on a real terminal (a pseudo-terminal, tests/support/terminal.py) with progress bars
drawn: messages print on lines of their own above the bars, and Ctrl-C typed into the terminal
stops the run with the documented status (130) and honest counts. SIGHUP, sent or from a
terminal that goes away, stops as cleanly (129). Either way the unfinished download keeps its
``.part`` file, no file appears at its final path, and the next run resumes it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from ripstream.downloader.safefs import part_path
from tests.support.cli import cli, fast_config
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.terminal import CTRL_C, Terminal, lines_at_column_zero

SLOW = make_body(3_000_000, 1)


def serve_batch(server: TestServer) -> list[str]:
    """A small file, one that fails with 503 three times first, one that does not exist, and
    a slow one (500 kB/s) still running when the run is stopped."""
    server.add("/small.bin", make_body(10_000, 2))
    server.add("/flaky.bin", make_body(50_000, 3), faults=[Fault.status(503, times=3)])
    server.add("/slow.bin", SLOW, rate_limit_bps=500_000)
    return [server.url(p) for p in ("/small.bin", "/flaky.bin", "/gone.bin", "/slow.bin")]


def assert_resumes(server: TestServer, out: Path, kept: int) -> None:
    server.resource("/slow.bin").rate_limit_bps = None
    server.reset_stats()
    again = cli("-d", str(out), server.url("/slow.bin"))
    assert again.returncode == 0, again.stderr
    assert (out / "slow.bin").read_bytes() == SLOW
    assert [r.range_header for r in server.requests_for("/slow.bin")] == [f"bytes={kept}-"]


def test_ctrl_c_on_a_terminal_with_bars(server: TestServer, tmp_path: Path) -> None:
    urls = serve_batch(server)
    out = tmp_path / "out"
    config = fast_config(tmp_path)
    command = [sys.executable, "-m", "ripstream", "-v", "--config", str(config), "-d", str(out)]
    with Terminal([*command, *urls]) as term:
        # the three short ones settled (2 done, 1 failed) while the slow one is drawn
        term.wait_for(r"2 done, 1 failed")
        server.wait_until(lambda: server.bytes_sent("/slow.bin") >= 600_000, timeout=30)
        term.wait_for(r"slow\.bin: +[0-9]+%\|")
        term.type(CTRL_C)
        status = term.wait()
    screen = term.text
    assert status == 130, screen
    assert "Traceback" not in screen

    # messages (a failure, -v's retry lines) on lines of their own, above the bars
    failed = lines_at_column_zero(screen, "ripstream: failed: gone.bin")
    retries = lines_at_column_zero(screen, "INFO ripstream.downloader.retry")
    assert len(failed) == 1
    assert len(retries) == 3  # three 503s, each retried
    for before, line in failed + retries:
        assert before == "", (before, line)  # nothing of a bar before it on its line
        assert "%|" not in line, line  # and no bar glued after it
        assert "B/s]" not in line, line
    assert "retrying in 0 s (3/5): HTTP 503" in screen  # each retry shows on the file's bar

    # the stop: one line saying so, then the counts: what was done, failed and stopped
    assert "ripstream: interrupted; partial files are kept and resume on the next run" in screen
    assert "2 done, 1 failed, 1 stopped" in screen  # the overall bar's last state
    assert "2 downloaded, 0 already there, 1 failed, 1 cancelled (" in screen
    assert "2/4" in screen
    assert "4/4" not in screen

    assert (out / "small.bin").exists()
    assert (out / "flaky.bin").exists()
    assert not (out / "slow.bin").exists()
    kept = part_path(out / "slow.bin", ("http", urls[-1])).stat().st_size
    assert 0 < kept < len(SLOW)
    assert_resumes(server, out, kept)


def test_ctrl_c_counts_downloads_that_never_started_as_stopped_not_done(
    server: TestServer, tmp_path: Path
) -> None:
    for n in range(4):
        server.add(f"/s{n}.bin", SLOW, rate_limit_bps=500_000)
    out = tmp_path / "out"
    urls = [server.url(f"/s{n}.bin") for n in range(4)]
    with Terminal([sys.executable, "-m", "ripstream", "-j", "1", "-d", str(out), *urls]) as term:
        server.wait_until(lambda: server.bytes_sent("/s0.bin") >= 200_000, timeout=30)
        term.wait_for(r"s0\.bin: +[0-9]+%\|")
        term.type(CTRL_C)
        assert term.wait() == 130, term.text
    assert "0 done, 4 stopped" in term.text  # the overall bar: one running, three waiting
    assert "0 downloaded, 0 already there, 0 failed, 4 cancelled (" in term.text
    assert not list(out.glob("s*.bin"))
    assert part_path(out / "s0.bin", ("http", urls[0])).stat().st_size > 0


def test_sighup_stops_cleanly_with_a_message_and_the_next_run_resumes(
    server: TestServer, tmp_path: Path
) -> None:
    server.add("/slow.bin", SLOW, rate_limit_bps=500_000)
    out = tmp_path / "out"
    url = server.url("/slow.bin")
    process = subprocess.Popen(
        [sys.executable, "-m", "ripstream", "--no-progress", "-d", str(out), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.wait_until(lambda: server.bytes_sent("/slow.bin") >= 300_000, timeout=30)
        process.send_signal(signal.SIGHUP)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 129, stderr
    assert "ripstream: stopped by SIGHUP; partial files are kept and resume on the next run" in (
        stderr
    )
    assert "0 downloaded, 0 already there, 0 failed, 1 cancelled (" in stderr
    assert "Traceback" not in stderr + stdout
    assert not (out / "slow.bin").exists()
    kept = part_path(out / "slow.bin", ("http", url)).stat().st_size
    assert 0 < kept < len(SLOW)
    assert_resumes(server, out, kept)


def test_a_terminal_that_goes_away_stops_the_run_as_sighup(
    server: TestServer, tmp_path: Path
) -> None:
    """The window is closed (or the ssh session drops) while bars are drawn: the kernel sends
    SIGHUP and nothing can be printed any more; the run still stops cleanly."""
    server.add("/slow.bin", SLOW, rate_limit_bps=500_000)
    out = tmp_path / "out"
    url = server.url("/slow.bin")
    with Terminal([sys.executable, "-m", "ripstream", "-d", str(out), url]) as term:
        server.wait_until(lambda: server.bytes_sent("/slow.bin") >= 300_000, timeout=30)
        term.wait_for(r"slow\.bin: +[0-9]+%\|")
        term.hang_up()
        assert term.wait() == 129  # not 1: no exception escaped while nothing could be printed
    assert not (out / "slow.bin").exists()
    kept = part_path(out / "slow.bin", ("http", url)).stat().st_size
    assert 0 < kept < len(SLOW)
    assert_resumes(server, out, kept)
