"""The seed's examples, translated to sync, run as written: each script in examples/ is run
as a user would run it (a subprocess), and what it downloaded is hashed against what the
local server served."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ripstream.demo import DemoFile, make_album, serve
from ripstream.downloader import DownloadConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 60

ALBUM = make_album()
TRACK_1, TRACK_2, TRACK_3 = ALBUM[:3]


def by_name(name: str) -> DemoFile:
    return next(item for item in ALBUM if item.path.rsplit("/", 1)[-1] == name)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def worktree_env() -> dict[str, str]:
    """The environment of a child Python that imports this checkout's ripstream, not an
    installed one (an editable install may point at another checkout)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONWARNINGS", None)
    return env


def run_example(
    script: str, *args: str, allow_warnings: bool = False
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=ROOT,
        env=worktree_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{script} exited {completed.returncode}\n"
        f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    assert "Traceback" not in completed.stderr, completed.stderr
    if not allow_warnings:
        assert "Warning" not in completed.stderr, completed.stderr
    return completed


def no_leftovers(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if p.name.endswith((".part", ".part.json"))]
    assert leftovers == []


def load_local_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "examples_local_server", EXAMPLES / "_local_server.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_basic_downloader(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = run_example("basic_downloader.py", "--output", str(out))

    templated = out / "The Loopbacks" / "Demo Album" / "01 Overture.wav"
    joined = out / "segmented" / "01 Overture.wav"
    assert sha256(templated) == TRACK_1.sha256
    assert sha256(joined) == TRACK_1.sha256
    assert f"sha256 of both files: {TRACK_1.sha256}" in completed.stdout
    no_leftovers(out)


def test_basic_downloader_second_run_keeps_the_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_example("basic_downloader.py", "--output", str(out))
    completed = run_example("basic_downloader.py", "--output", str(out))

    assert completed.stdout.count("skipped") == 2
    assert sha256(out / "segmented" / "01 Overture.wav") == TRACK_1.sha256


def test_basic_downloader_uses_the_given_base_url(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with serve(load_local_server().catalogue()) as base_url:
        completed = run_example("basic_downloader.py", "--base-url", base_url, "--output", str(out))

    assert f"resolved track_123 -> {base_url}/album/01%20Overture.wav" in completed.stdout
    assert sha256(out / "The Loopbacks" / "Demo Album" / "01 Overture.wav") == TRACK_1.sha256


def test_using_the_downloader(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = run_example("using_the_downloader.py", "--output", str(out))

    assert sha256(out / "01 Overture.wav") == TRACK_1.sha256
    assert "Resolved: The Loopbacks - Overture (66194 bytes)" in completed.stdout
    assert f"Downloaded: {out / '01 Overture.wav'}" in completed.stdout
    assert f"checksum {TRACK_1.sha256}" in completed.stdout


def test_without_output_a_temporary_folder_is_used_and_removed() -> None:
    completed = run_example("using_the_downloader.py")

    line = next(x for x in completed.stdout.splitlines() if x.startswith("Downloaded: "))
    written = Path(line.removeprefix("Downloaded: "))
    assert written.name == "01 Overture.wav"
    assert not written.parent.exists()


def test_progress_callbacks(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = run_example("progress_callbacks.py", "--output", str(out))

    for item in (TRACK_1, TRACK_2, TRACK_3):
        assert sha256(out / item.path.rsplit("/", 1)[-1]) == item.sha256
    lines = completed.stdout.splitlines()
    for track_id in ("track_123", "track_456", "track_789"):
        mine = [x for x in lines if x.startswith(f"Download my_service:{track_id}: ")]
        assert mine[0].startswith(f"Download my_service:{track_id}: 0.0% - ")
        assert mine[-1].startswith(f"Download my_service:{track_id}: 100.0% - ")
        assert all(x.endswith("B/s") for x in mine)
    assert (
        "finished: Loopback Blues (completed), Overture (completed), Range Request (completed)"
        in lines
    )


def test_queue_management(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = run_example("queue_management.py", "--output", str(out), allow_warnings=True)

    expected = {
        "my_song.wav": TRACK_1.sha256,
        "02 Loopback Blues.wav": TRACK_2.sha256,
        "cover.png": by_name("cover.png").sha256,
        "Demo Album.m3u": by_name("Demo Album.m3u").sha256,
    }
    for run in ("loop", "manager"):
        files = {p.name: sha256(p) for p in (out / run).iterdir()}
        assert files == expected, run  # neither the 404 bonus track nor its booklet

    starts = [x.strip() for x in completed.stdout.splitlines() if x.startswith("  start ")]
    assert starts == [
        "start Cover (priority 10)",
        "start My Song (priority 0)",
        "start Loopback Blues (priority 0)",
        "start Playlist (priority 5)",
        "start Bonus Track (priority 0)",
    ]
    assert "  cancelled Bonus Booklet" in completed.stdout
    counts = "  counts: {'completed': 4, 'failed': 1, 'cancelled': 1}"
    assert completed.stdout.count(counts) == 2


def test_queue_management_prints_no_warnings(tmp_path: Path) -> None:
    completed = run_example("queue_management.py", "--output", str(tmp_path / "out"))

    assert "Warning" not in completed.stderr


def test_configuration(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = run_example("configuration.py", "--output", str(out))

    saved = json.loads((out / "ripstream.json").read_text())
    assert saved["source_settings"] == {
        "spotify": {"max_retries": 5},
        "deezer": {"timeout_seconds": 60.0},
        "my_service": {"requests_per_period": 5},
    }
    config = DownloadConfig.load(out / "ripstream.json")
    assert config.max_concurrent_downloads == 3
    assert config.get_behavior_for_source("spotify").max_retries == 5
    assert config.get_behavior_for_source("deezer").timeout_seconds == 60.0
    assert config.get_behavior_for_source("other").max_retries == 3
    assert sha256(out / "downloads" / "01 Overture.wav") == TRACK_1.sha256

    stdout = completed.stdout
    assert "  spotify          max_retries=5 timeout_seconds=30.0" in stdout
    assert "  deezer           max_retries=3 timeout_seconds=60.0" in stdout
    assert "loaded back: equal" in stdout
    assert stdout.count("ConfigError field=") == 4


def test_error_handling(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = run_example("error_handling.py", "--output", str(out))

    assert {p.name: sha256(p) for p in out.iterdir()} == {
        "01 Overture.wav": TRACK_1.sha256,
        "busy.wav": TRACK_2.sha256,
    }
    stdout = completed.stdout
    assert "  Authentication failed - check credentials" in stdout
    assert "  Rate limited - retry after 30.0 seconds" in stdout
    assert "  Network error: 404 (ContentNotFoundError: " in stdout
    assert "  Download failed after 2 retries; last error: ServerError(" in stdout
    assert "busy.wav after 2 attempt(s)" in stdout
    assert "every branch was taken as expected" in stdout


def test_notebook_walkthrough(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = run_example("notebook_walkthrough.py", "--output", str(out))

    files = {p.name: sha256(p) for p in (out / "Demo Album").iterdir()}
    assert files == {item.path.rsplit("/", 1)[-1]: item.sha256 for item in ALBUM}
    assert "8/8 files verified by sha256" in completed.stdout
    # stderr is a pipe here, not a terminal: TqdmProgress draws nothing, no escape codes
    assert "\x1b" not in completed.stderr
    assert "total:" not in completed.stderr


def test_examples_against_a_standalone_server(tmp_path: Path) -> None:
    """The workflow the examples' docstring describes: one long-running server for all."""
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "_local_server.py")],
        cwd=ROOT,
        env=worktree_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], TIMEOUT)
        assert ready, "the example server printed nothing"
        first = server.stdout.readline()
        base_url = first.split(" on ", 1)[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:")

        out = tmp_path / "out"
        completed = run_example(
            "using_the_downloader.py", "--base-url", base_url, "--output", str(out)
        )
        assert sha256(out / "01 Overture.wav") == TRACK_1.sha256
        assert "Downloaded: " in completed.stdout
    finally:
        server.send_signal(signal.SIGINT)
        stdout, _ = server.communicate(timeout=TIMEOUT)
    assert server.returncode == 0
    assert "stopped" in stdout


def test_monitoring(tmp_path: Path) -> None:
    out = tmp_path / "out"
    completed = run_example("monitoring.py", "--output", str(out))
    for item in (TRACK_1, TRACK_2, TRACK_3):
        assert sha256(out / item.path.rsplit("/", 1)[-1]) == item.sha256
    lines = completed.stdout.splitlines()
    assert any(line.startswith("stats: ") and " 1 active" in line for line in lines)
    total = sum(
        (out / item.path.rsplit("/", 1)[-1]).stat().st_size for item in (TRACK_1, TRACK_2, TRACK_3)
    )
    assert f"done: 3 completed, 0 failed, {total} bytes" in lines
    assert 'ripstream_downloads_total{source="my_service",status="completed"} 3.0' in lines
