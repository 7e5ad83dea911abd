"""The CLI end to end, as a subprocess against a real local server."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ripstream import __version__
from ripstream.downloader.safefs import part_path
from tests.support.httpserver import TestServer, make_body

TIMEOUT = 60


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ripstream(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ripstream", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        check=False,
    )


def fast(*args: str) -> list[str]:
    """Flags that keep retries instant in tests."""
    return ["--no-progress", "--config", str(FAST_CONFIG), *args]


FAST_CONFIG = Path(tempfile.mkdtemp(prefix="ripstream-tests-")) / "fast_config.json"


@pytest.fixture(autouse=True, scope="module")
def _fast_config() -> Iterator[None]:
    FAST_CONFIG.write_text(
        json.dumps(
            {
                "default_settings": {
                    "retry_delay": 0,
                    "max_retry_delay": 0,
                    "retry_jitter": 0,
                    "max_retry_after": 0,
                    "min_segment_size": 65536,
                }
            }
        )
    )
    yield
    shutil.rmtree(FAST_CONFIG.parent, ignore_errors=True)


def test_urls_land_exact_bytes_including_an_empty_file(server: TestServer, out_dir: Path) -> None:
    bodies = {"/a.flac": make_body(300_000, 1), "/b.mp3": make_body(70_000, 2), "/empty.bin": b""}
    for path, body in bodies.items():
        server.add(path, body)
    run = ripstream(*fast("-d", str(out_dir), *(server.url(p) for p in bodies)))
    assert run.returncode == 0, run.stderr
    for path, body in bodies.items():
        assert sha((out_dir / path.lstrip("/")).read_bytes()) == sha(body)
    assert "3 downloaded" in run.stderr


def test_input_file_with_jobs_never_exceeds_the_limit(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    bodies = {f"/f{n:02d}.bin": make_body(200_000, n) for n in range(16)}
    for path, body in bodies.items():
        server.add(path, body, rate_limit_bps=2_000_000)
    listing = tmp_path / "list.txt"
    listing.write_text("# my list\n\n" + "".join(server.url(p) + "\n" for p in bodies))
    run = ripstream(*fast("-j", "3", "-d", str(out_dir), "-i", str(listing)))
    assert run.returncode == 0, run.stderr
    for path, body in bodies.items():
        assert sha((out_dir / path.lstrip("/")).read_bytes()) == sha(body)
    assert 2 <= server.max_concurrent_requests <= 3


def test_jobs_eight_from_stdin(server: TestServer, out_dir: Path) -> None:
    bodies = {f"/s{n}.bin": make_body(50_000, n) for n in range(20)}
    for path, body in bodies.items():
        server.add(path, body)
    run = ripstream(
        *fast("-j", "8", "-d", str(out_dir), "-i", "-"),
        stdin="".join(server.url(p) + "\n" for p in bodies),
    )
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith("."))
    assert names == sorted(p.lstrip("/") for p in bodies)
    assert server.max_concurrent_requests <= 8


def test_one_failing_url_gives_exit_1_and_the_others_land(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/good1.bin", make_body(1000, 1))
    server.add("/good2.bin", make_body(1000, 2))
    run = ripstream(
        *fast(
            "-d",
            str(out_dir),
            server.url("/good1.bin"),
            server.url("/missing"),
            server.url("/good2.bin"),
        )
    )
    assert run.returncode == 1
    assert (out_dir / "good1.bin").read_bytes() == make_body(1000, 1)
    assert (out_dir / "good2.bin").read_bytes() == make_body(1000, 2)
    assert not (out_dir / "missing").exists()
    assert "failed: missing" in run.stderr
    assert "404" in run.stderr
    assert "Traceback" not in run.stderr


def test_json_lines(server: TestServer, out_dir: Path) -> None:
    server.add("/a.bin", make_body(1234))
    run = ripstream(
        *fast("--json", "-q", "-d", str(out_dir), server.url("/a.bin"), server.url("/nope"))
    )
    assert run.returncode == 1
    records = [json.loads(line) for line in run.stdout.splitlines()]
    by_title = {r["title"]: r for r in records}
    assert by_title["a.bin"]["ok"] is True
    assert by_title["a.bin"]["bytes_downloaded"] == 1234
    assert by_title["a.bin"]["file_path"] == str(out_dir / "a.bin")
    assert by_title["nope"]["ok"] is False
    assert by_title["nope"]["error_type"] == "ContentNotFoundError"


def test_checksum_flag(server: TestServer, out_dir: Path) -> None:
    body = make_body(5000)
    server.add("/a.bin", body)
    good = ripstream(
        *fast(
            "-d", str(out_dir / "good"), "--checksum", f"sha256:{sha(body)}", server.url("/a.bin")
        )
    )
    assert good.returncode == 0, good.stderr
    bad = ripstream(
        *fast("-d", str(out_dir / "bad"), "--checksum", "md5:" + "1" * 32, server.url("/a.bin"))
    )
    assert bad.returncode == 1
    assert "md5" in bad.stderr
    assert "expected 1111" in bad.stderr
    assert not (out_dir / "bad" / "a.bin").exists()


def test_input_file_lines_may_carry_checksums(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    body = make_body(5000)
    server.add("/a.bin", body)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{server.url('/a.bin')} sha256:{sha(body)}\n")
    run = ripstream(*fast("-d", str(out_dir), "-i", str(listing)))
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://"], "malformed URL"),
        (["ftp://example.com/a.mp3"], "unsupported URL scheme 'ftp'"),
        (["not a url"], "no installed source handles"),
        (["-i", "/nonexistent/list.txt"], "input file '/nonexistent/list.txt' does not exist"),
        (["-j", "0", "http://127.0.0.1:9/a"], "--jobs must be >= 1"),
        (["-j", "many", "http://127.0.0.1:9/a"], "--jobs must be a whole number"),
        (["--segments", "x", "http://127.0.0.1:9/a"], "--segments must be a whole number"),
        (["--limit-rate", "fast", "http://127.0.0.1:9/a"], "rate 'fast' is not a rate"),
        (["--checksum", "sha256:abc", "http://127.0.0.1:9/a"], "64 hex digits"),
        (["--checksum", "crc32:abcd", "http://127.0.0.1:9/a"], "crc32"),
        (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
        ([], "no URLs given"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    run = ripstream("--no-progress", "-d", str(out), *args)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert message in lines[0]
    assert lines[0].startswith("ripstream: error:")
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"max_concurrent_downloads": 0}', "max_concurrent_downloads"),
        ('{"default_settings": {"max_retries": -1}}', "max_retries"),
        ('{"colour": "blue"}', "unknown config key 'colour'"),
    ],
)
def test_broken_config_file_is_exit_2(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(content)
    out = tmp_path / "out"
    run = ripstream("--config", str(config), "-d", str(out), "http://127.0.0.1:9/a")
    assert run.returncode == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_version_and_sources() -> None:
    version = ripstream("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"ripstream {__version__}"
    sources = ripstream("sources")
    assert sources.returncode == 0
    assert sources.stdout.startswith("http")


def test_demo_downloads_and_verifies_the_album(tmp_path: Path) -> None:
    run = ripstream("demo", "-o", str(tmp_path / "demo"))
    assert run.returncode == 0, run.stderr
    assert "8/8 files" in run.stdout
    assert "every file verified" in run.stdout
    assert len(list((tmp_path / "demo").iterdir())) == 8


def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(server: TestServer, out_dir: Path) -> None:
    body = make_body(3_000_000)
    server.add("/big.bin", body, rate_limit_bps=1_000_000)
    command = [sys.executable, "-m", "ripstream", *fast("-d", str(out_dir), server.url("/big.bin"))]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        server.wait_until(lambda: server.bytes_sent("/big.bin") >= 300_000, timeout=30)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert not (out_dir / "big.bin").exists()
    kept = part_path(out_dir / "big.bin", ("http", server.url("/big.bin"))).stat().st_size
    assert kept > 0
    server.resource("/big.bin").rate_limit_bps = None
    server.reset_stats()
    again = ripstream(*fast("-d", str(out_dir), server.url("/big.bin")))
    assert again.returncode == 0, again.stderr
    assert sha((out_dir / "big.bin").read_bytes()) == sha(body)
    # only the missing tail was asked for (bytes_sent may still count the killed connection)
    assert [r.range_header for r in server.requests_for("/big.bin")] == [f"bytes={kept}-"]


def test_segments_flag_uses_parallel_ranges(server: TestServer, out_dir: Path) -> None:
    body = make_body(2_000_000)
    server.add("/big.bin", body, rate_limit_bps=4_000_000)
    run = ripstream(*fast("--segments", "4", "-d", str(out_dir), server.url("/big.bin")))
    assert run.returncode == 0, run.stderr
    assert sha((out_dir / "big.bin").read_bytes()) == sha(body)
    ranges = [r.range_header for r in server.requests_for("/big.bin")]
    assert len(ranges) >= 4
    assert all(r and r.startswith("bytes=") for r in ranges)
    assert server.max_concurrent_requests >= 2


def test_interrupted_process_leaves_no_traceback_on_kill(server: TestServer, out_dir: Path) -> None:
    """SIGKILL mid-file, then the same command again: exact bytes, little refetched."""
    body = make_body(4_000_000)
    server.add("/big.bin", body, rate_limit_bps=2_000_000)
    command = [sys.executable, "-m", "ripstream", *fast("-d", str(out_dir), server.url("/big.bin"))]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server.wait_until(lambda: server.bytes_sent("/big.bin") >= 1_500_000, timeout=30)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (out_dir / "big.bin").exists()
    server.resource("/big.bin").rate_limit_bps = None
    server.reset_stats()
    again = ripstream(*fast("-d", str(out_dir), server.url("/big.bin")))
    assert again.returncode == 0, again.stderr
    assert sha((out_dir / "big.bin").read_bytes()) == sha(body)
    asked = [r.range_header for r in server.requests_for("/big.bin")]
    assert len(asked) == 1
    assert asked[0] is not None
    resumed_at = int(asked[0].removeprefix("bytes=").rstrip("-"))
    assert resumed_at >= 1_000_000  # well under the whole file was fetched again


def test_progress_bars_on_a_terminal_and_none_in_a_pipe(server: TestServer, out_dir: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    for n in range(3):
        server.add(f"/t{n}.bin", make_body(300_000, n), rate_limit_bps=3_000_000)
    urls = [server.url(f"/t{n}.bin") for n in range(3)]
    primary, secondary = pty.openpty()
    # a real terminal has a size; a bare pty is 0x0, which tqdm draws nothing into
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ripstream",
                "--config",
                str(FAST_CONFIG),
                "-d",
                str(out_dir / "tty"),
                *urls,
            ],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=secondary,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert process.wait(timeout=60) == 0
    finally:
        os.close(primary)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "total: 100%" in screen
    assert "3/3" in screen
    assert all(f"t{n}.bin" in screen for n in range(3))  # each file had its own bar
    piped = ripstream(*fast("-d", str(out_dir / "pipe"), *urls))
    assert piped.returncode == 0
    assert "%|" not in piped.stderr  # no bars when stderr is not a terminal
