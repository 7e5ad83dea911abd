"""Bandwidth throttling, timed with an injected clock: no test here sleeps for real."""

from __future__ import annotations

import json
from pathlib import Path

from ripstream.downloader import DownloadConfig, TokenBucket
from ripstream.downloader.safefs import part_path
from ripstream.downloader.state import sidecar_path
from ripstream.sources.http import HttpDownloader
from tests.support.clock import FakeClock
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import fast_settings


def downloader(
    directory: Path, bucket: TokenBucket, jobs: int = 1, **settings: object
) -> HttpDownloader:
    config = DownloadConfig(
        download_directory=directory,
        max_concurrent_downloads=jobs,
        default_settings=fast_settings(**settings),
    )
    return HttpDownloader(config, bandwidth=bucket)


def test_a_run_wide_limit_paces_the_bytes(server: TestServer, out_dir: Path) -> None:
    body = make_body(2_000_000)
    server.add("/a.bin", body)
    fake = FakeClock()
    rate = 500_000.0
    bucket = TokenBucket(rate, burst=64 * 1024, clock=fake.clock, sleep=fake.sleep)
    with downloader(out_dir, bucket) as http:
        result = http.download(http.get_download_info(server.url("/a.bin")))
    assert result.is_success
    assert (out_dir / "a.bin").read_bytes() == body
    # 2 MB at 500 kB/s, less the initial burst: about four simulated seconds
    expected = (len(body) - 64 * 1024) / rate
    assert abs(fake.slept - expected) < 0.05 * expected


def test_the_limit_is_shared_by_parallel_downloads(server: TestServer, out_dir: Path) -> None:
    bodies = {f"/f{n}.bin": make_body(400_000, n) for n in range(4)}
    for path, body in bodies.items():
        server.add(path, body)
    fake = FakeClock()
    rate = 1_000_000.0
    bucket = TokenBucket(rate, burst=1024, clock=fake.clock, sleep=fake.sleep)
    with downloader(out_dir, bucket, jobs=4) as http:
        results = http.download_many([http.get_download_info(server.url(p)) for p in bodies])
    assert all(r.is_success for r in results)
    total = sum(len(b) for b in bodies.values())
    # four threads reserving from one bucket: the simulated time is the total over the rate,
    # not a quarter of it; each thread's own sleeps overlap in time, so compare the clock
    assert fake.now >= 0.95 * (total - 1024) / rate
    for path, body in bodies.items():
        assert (out_dir / path.lstrip("/")).read_bytes() == body


def test_bytes_already_on_disk_do_not_count(server: TestServer, out_dir: Path) -> None:
    body = make_body(1_000_000)
    server.add("/a.bin", body)
    part = part_path(out_dir / "a.bin", ("http", server.url("/a.bin")))
    part.write_bytes(body[:800_000])
    etag = server.resource("/a.bin").etag
    sidecar_path(part).write_text(
        json.dumps(
            {"source": "http", "content_id": server.url("/a.bin"), "etag": etag, "total": len(body)}
        )
    )
    fake = FakeClock()
    rate = 100_000.0
    bucket = TokenBucket(rate, burst=1, clock=fake.clock, sleep=fake.sleep)
    with downloader(out_dir, bucket) as http:
        result = http.download(http.get_download_info(server.url("/a.bin")))
    assert result.is_success
    assert result.resumed_from == 800_000
    assert (out_dir / "a.bin").read_bytes() == body
    assert abs(fake.slept - 200_000 / rate) < 0.1  # only the 200 kB fetched were paced


def test_per_download_limit_setting(server: TestServer, out_dir: Path) -> None:
    body = make_body(300_000)
    server.add("/a.bin", body)
    config = DownloadConfig(
        download_directory=out_dir, default_settings=fast_settings(rate_limit="200k")
    )
    with HttpDownloader(config) as http:
        result = http.download(http.get_download_info(server.url("/a.bin")))
    assert result.is_success
    # one second's burst of 200 KiB, then the remaining ~92 KiB at 200 KiB/s: a lower bound
    # only (a slow machine can take longer, never shorter)
    assert result.elapsed >= (300_000 - 204_800) / 204_800 * 0.9
    assert (out_dir / "a.bin").read_bytes() == body
