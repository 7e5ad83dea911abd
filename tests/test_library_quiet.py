"""The library as a script uses it (issue 11, problem 8): ``download_many`` takes URL strings,
and failures the caller handles print nothing, unless the application configures logging."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.httpserver import TestServer

ROOT = Path(__file__).resolve().parent.parent


def run_script(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )


def test_download_many_takes_url_strings_and_prints_nothing(
    server: TestServer, tmp_path: Path
) -> None:
    server.add("/a.bin", b"aaa")
    script = f"""
        from pathlib import Path
        from ripstream.downloader import DownloadConfig, DownloadError
        from ripstream.sources.http import HttpDownloader

        config = DownloadConfig(download_directory=Path("out"), max_concurrent_downloads=2)
        with HttpDownloader(config) as http:
            results = http.download_many(["{server.url("/a.bin")}", "{server.url("/gone")}"])
            print([r.status.value for r in results])
            try:
                http.download_many(["{server.url("/gone")}"], raise_on_error=True)
            except DownloadError as exc:
                print("caught:", type(exc).__name__)
    """
    run = run_script(script, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["['completed', 'failed']", "caught: ContentNotFoundError"]
    assert run.stderr == ""  # the caller handled the failures: nothing on stderr
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"aaa"


def test_failures_are_logged_once_the_application_asks(server: TestServer, tmp_path: Path) -> None:
    script = f"""
        import logging
        from pathlib import Path
        from ripstream.downloader import DownloadConfig
        from ripstream.sources.http import HttpDownloader

        logging.basicConfig(level=logging.INFO)
        with HttpDownloader(DownloadConfig(download_directory=Path("out"))) as http:
            http.download_many(["{server.url("/gone")}"])
    """
    run = run_script(script, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "INFO:ripstream" in run.stderr
    assert "does not exist" in run.stderr
