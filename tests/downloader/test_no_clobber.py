"""A file that appears at the final path while a download runs is the user's: it survives.

The overwrite policy (default ``skip``) is applied before the download starts; a file created
after that (by the user, another program, another run) must not be replaced when the finished
download moves into place. The download then fails with ``TargetExistsError`` and keeps the
new bytes aside.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from ripstream.downloader import DownloadResult, OverwritePolicy, ResultStatus
from ripstream.downloader.exceptions import TargetExistsError
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config

TIMEOUT = 10.0
USERS_FILE = b"the user's own recording, not to be lost\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_that_appears_during_the_download_is_kept(server: TestServer, out_dir: Path) -> None:
    body = make_body(300_000, seed=11)
    release = threading.Event()
    server.add("/song.flac", body, faults=[Fault.pause_after(100_000, release, timeout=TIMEOUT)])
    config = make_config(out_dir)
    assert config.default_settings.overwrite is OverwritePolicy.SKIP
    results: list[DownloadResult] = []

    def run() -> None:
        with HttpDownloader(config) as downloader:
            info = downloader.get_download_info(server.url("/song.flac"))
            results.append(downloader.download(info))

    worker = threading.Thread(target=run, name="download")
    worker.start()
    try:
        # the download has passed its overwrite check and is receiving the body
        server.wait_until(lambda: server.bytes_sent("/song.flac") >= 100_000, TIMEOUT)
        (out_dir / "song.flac").write_bytes(USERS_FILE)
    finally:
        release.set()
        worker.join(TIMEOUT)
    assert not worker.is_alive()

    (result,) = results
    assert (out_dir / "song.flac").read_bytes() == USERS_FILE, "the user's file was replaced"
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, TargetExistsError), result.error
    kept = {p.name: sha(p.read_bytes()) for p in out_dir.iterdir() if p.is_file()}
    assert sha(body) in kept.values(), f"the downloaded bytes were not kept aside: {kept}"
