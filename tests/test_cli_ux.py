"""What a new user hits on the command line (issue 11): a closed stdout, unreachable hosts,
visible retries, SIGTERM, curl/wget-style flags and honest naming. Each test runs the CLI as a
subprocess against a local server, as a user would."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from ripstream.downloader.safefs import part_path
from tests.support.cli import TIMEOUT, cli, closed_port, fast_config
from tests.support.httpserver import Fault, TestServer, make_body


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- 3: a closed stdout ---------------------------------------------------------------------


def test_a_closed_stdout_ends_the_run_quietly_and_the_rerun_finishes(
    server: TestServer, tmp_path: Path
) -> None:
    bodies = {f"/f{n:03d}.bin": make_body(20_000, n) for n in range(60)}
    for path, body in bodies.items():
        server.add(path, body, rate_limit_bps=400_000)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(server.url(p) + "\n" for p in bodies))
    out = tmp_path / "out"
    script = (
        f"{sys.executable} -m ripstream --no-progress --json -j 2 -d {out} -i {listing} "
        "| head -1; echo ${PIPESTATUS[0]} >&2"
    )
    run = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert len(run.stdout.splitlines()) == 1
    assert json.loads(run.stdout)["status"] == "completed"
    assert "Traceback" not in run.stderr
    assert "BrokenPipe" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == "141"  # as a Unix tool stopped by SIGPIPE
    finished = [p for p in out.iterdir() if p.suffix == ".bin"]
    assert len(finished) < len(bodies)  # it stopped, it did not plough on
    again = cli("-d", str(out), "-i", str(listing))
    assert again.returncode == 0, again.stderr
    for path, body in bodies.items():
        assert sha((out / path.lstrip("/")).read_bytes()) == sha(body)


# -- 4: fail fast, say it plainly, show retries ---------------------------------------------


def test_a_refused_connection_fails_within_seconds_in_one_plain_line(tmp_path: Path) -> None:
    port = closed_port()
    started = time.monotonic()
    run = cli("-d", str(tmp_path / "out"), f"http://127.0.0.1:{port}/song.flac")
    elapsed = time.monotonic() - started
    assert run.returncode == 1
    assert elapsed < 10, elapsed  # default settings: a short bounded retry, not 32 s
    failures = [line for line in run.stderr.splitlines() if line.startswith("ripstream: failed")]
    assert len(failures) == 1
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in failures[0]
    assert "HTTPConnectionPool" not in run.stderr
    assert "urllib3" not in run.stderr
    assert len(failures[0]) < 160


def test_a_name_that_does_not_resolve_fails_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    run = cli("-d", str(tmp_path / "out"), "http://nosuch.invalid/song.flac")
    assert run.returncode == 1
    assert time.monotonic() - started < 20
    assert "cannot resolve nosuch.invalid" in run.stderr
    assert "retrying" not in run.stderr  # a typo is not retried
    assert "NameResolutionError" not in run.stderr


def test_every_retry_is_visible_while_it_waits(server: TestServer, tmp_path: Path) -> None:
    server.add("/flaky.flac", make_body(5000), faults=[Fault.status(503, times=2)])
    out = tmp_path / "out"
    run = cli("--config", str(fast_config(tmp_path)), "-d", str(out), server.url("/flaky.flac"))
    assert run.returncode == 0, run.stderr
    assert "retrying in 0 s (1/5): HTTP 503" in run.stderr
    assert "retrying in 0 s (2/5): HTTP 503" in run.stderr
    assert (out / "flaky.flac").read_bytes() == make_body(5000)


# -- 5: conventions of curl, wget, aria2c and yt-dlp ----------------------------------------


def test_sigterm_stops_cleanly_with_a_message_and_the_next_run_resumes(
    server: TestServer, tmp_path: Path
) -> None:
    body = make_body(3_000_000)
    server.add("/big.bin", body, rate_limit_bps=1_000_000)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "ripstream", "--no-progress", "-d", str(out)]
    process = subprocess.Popen(
        [*command, server.url("/big.bin")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.wait_until(lambda: server.bytes_sent("/big.bin") >= 300_000, timeout=30)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr
    assert "Traceback" not in stderr
    kept = part_path(out / "big.bin", ("http", server.url("/big.bin"))).stat().st_size
    assert kept > 0
    server.resource("/big.bin").rate_limit_bps = None
    server.reset_stats()
    again = cli("-d", str(out), server.url("/big.bin"))
    assert again.returncode == 0, again.stderr
    assert sha((out / "big.bin").read_bytes()) == sha(body)
    assert [r.range_header for r in server.requests_for("/big.bin")] == [f"bytes={kept}-"]


def test_dash_o_names_the_file_and_dash_d_the_folder(server: TestServer, tmp_path: Path) -> None:
    server.add("/x/track01.flac", b"flac bytes")
    out = tmp_path / "music"
    run = cli("-d", str(out), "-o", "song.flac", server.url("/x/track01.flac"))
    assert run.returncode == 0, run.stderr
    assert (out / "song.flac").read_bytes() == b"flac bytes"
    assert not (out / "song.flac").is_dir()
    wget_style = cli("-P", str(tmp_path / "p"), server.url("/x/track01.flac"))
    assert wget_style.returncode == 0, wget_style.stderr
    assert (tmp_path / "p" / "track01.flac").read_bytes() == b"flac bytes"


def test_the_old_dash_o_folder_still_works_with_a_deprecation_line(
    server: TestServer, tmp_path: Path
) -> None:
    server.add("/a.bin", b"a")
    server.add("/b.bin", b"b")
    out = tmp_path / "old"
    out.mkdir()
    run = cli("-o", str(out), server.url("/a.bin"), server.url("/b.bin"))
    assert run.returncode == 0, run.stderr
    assert "deprecated: use -d" in run.stderr
    assert (out / "a.bin").read_bytes() == b"a"
    ambiguous = cli("-o", "name.bin", server.url("/a.bin"), server.url("/b.bin"))
    assert ambiguous.returncode == 2
    assert "names one file but 2 URLs were given" in ambiguous.stderr


def test_title_never_carries_the_extension_and_unknown_fields_are_exit_2(
    server: TestServer, tmp_path: Path
) -> None:
    server.add("/track01.flac", b"one")
    server.add("/track02.flac", b"two")
    out = tmp_path / "out"
    urls = [server.url("/track01.flac"), server.url("/track02.flac")]
    run = cli("-d", str(out), "-o", "{title}.{ext}", *urls)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "track01.flac",
        "track02.flac",
    ]
    bad = cli("-d", str(tmp_path / "new"), "--template", "{nope}", urls[0])
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown field {nope}" in lines[0]
    assert "{title}" in lines[0]
    assert "{tracknumber}" in lines[0]
    assert not (tmp_path / "new").exists()


def test_a_bare_host_and_path_means_https(tmp_path: Path) -> None:
    port = closed_port()
    run = cli("--json", "--retries", "0", "-d", str(tmp_path), f"127.0.0.1:{port}/a.flac")
    assert run.returncode == 1  # nothing listens there, but it was tried, as https
    assert json.loads(run.stdout)["url"] == f"https://127.0.0.1:{port}/a.flac"


def test_http_flags_reach_the_server(server: TestServer, tmp_path: Path) -> None:
    server.add("/a.bin", b"data")
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc123\n"
    )
    run = cli(
        "-d",
        str(tmp_path / "out"),
        "--header",
        "X-Trace: 42",
        "--user-agent",
        "my-agent/1.0",
        "--referer",
        "https://example.org/page",
        "--cookies",
        str(cookies),
        server.url("/a.bin"),
    )
    assert run.returncode == 0, run.stderr
    (request,) = server.requests_for("/a.bin")
    assert request.headers.get("X-Trace") == "42"
    assert request.headers.get("User-Agent") == "my-agent/1.0"
    assert request.headers.get("Referer") == "https://example.org/page"
    assert "session=abc123" in (request.headers.get("Cookie") or "")


def test_bad_http_flags_are_one_line_exit_2(tmp_path: Path) -> None:
    for args, message in [
        (["--header", "no colon"], "--header wants 'Name: value'"),
        (["--proxy", "ftp://x:1"], "--proxy wants"),
        (["--cookies", str(tmp_path / "missing.txt")], "does not exist"),
    ]:
        run = cli("-d", str(tmp_path / "out"), *args, "http://127.0.0.1:9/a")
        assert run.returncode == 2, (args, run.stderr)
        assert message in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_folder_is_named_as_such(server: TestServer, tmp_path: Path) -> None:
    server.add("/a.bin", b"data")
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    run = cli("-d", str(blocker / "music"), server.url("/a.bin"))
    assert run.returncode == 2
    assert "cannot write to the output folder" in run.stderr
    assert "state file" not in run.stderr


def test_checksum_count_is_said_in_english(tmp_path: Path) -> None:
    run = cli(
        "-d",
        str(tmp_path),
        "--checksum",
        "md5:" + "0" * 32,
        "http://127.0.0.1:9/a",
        "http://127.0.0.1:9/b",
    )
    assert run.returncode == 2
    assert "--checksum was given 1 time for 2 URLs" in run.stderr
