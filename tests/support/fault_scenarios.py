"""The fault suite's scenarios: each misbehaviour of the test server, and what must come of it.

Shared by ``tests/downloader/fetch/test_stream.py`` (one plain stream) and
``tests/downloader/fetch/test_segmented.py`` (ranged segments). Each scenario ends either with
the exact bytes at the final path (sha256) or with a clean typed failure and nothing at the
final path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ripstream.downloader import DownloadResult, ResultStatus
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ContentNotFoundError,
    DownloadError,
    HTTPStatusError,
    RedirectError,
    RetryExhaustedError,
)
from ripstream.sources.http import HttpDownloader
from tests.support.files import leftovers
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config

__all__ = ["SCENARIOS", "SCENARIO_IDS", "SIZE", "Scenario", "check_scenario", "run", "sha"]

SIZE = 600_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Scenario:
    name: str
    faults: list[Fault]
    error: type[DownloadError] | None = None  # None: the exact bytes must land
    size: int = SIZE
    settings: dict[str, Any] = field(default_factory=dict)
    with_checksum: bool = False
    #: what the server serves after the first request, when the file changes
    final_body: bytes | None = None


_CHANGED = make_body(SIZE + 1000, 4242)

SCENARIOS = [
    Scenario("plain", []),
    Scenario("empty file", [], size=0),
    Scenario("one byte", [], size=1),
    Scenario("dropped twice mid-body", [Fault.drop_after(100_000, times=2)]),
    Scenario("reset mid-body", [Fault.drop_after(50_000, reset=True, times=1)]),
    Scenario(
        "stall then close",
        [Fault.stall_after(10_000, 3.0, then="close", times=1)],
        settings={"stall_timeout": 0.3, "timeout_seconds": 0.3},
    ),
    Scenario("Content-Length too large", [Fault.content_length_too_large(5000, times=1)]),
    Scenario(
        "Content-Length too small",
        [Fault.content_length_too_small(1000, times=1)],
        with_checksum=True,
    ),
    Scenario("no Content-Length", [Fault.no_content_length()]),
    Scenario("chunked", [Fault.chunked(4096)]),
    Scenario("truncated chunk", [Fault.broken_chunked("truncated", after_bytes=20_000, times=1)]),
    Scenario(
        "bad chunk size line", [Fault.broken_chunked("bad_size", after_bytes=20_000, times=1)]
    ),
    Scenario("gzip forced on identity", [Fault.gzip_encoding()]),
    Scenario("ranges ignored", [Fault.ignore_range()]),
    Scenario("ranges refused 403", [Fault.reject_range(403, times=None)]),
    Scenario("ranges refused 416", [Fault.reject_range(416, times=None)]),
    Scenario(
        "short 206",
        [Fault.short_range(times=2, on="range"), Fault.drop_after(200_000, times=1, on="full")],
    ),
    Scenario(
        "206 at the wrong offset",
        [
            Fault.wrong_range_start(-7, times=2, on="range"),
            Fault.drop_after(200_000, times=1, on="full"),
        ],
    ),
    Scenario(
        "206 with the wrong total",
        [
            Fault.wrong_range_total(3, times=2, on="range"),
            Fault.drop_after(200_000, times=1, on="full"),
        ],
    ),
    Scenario("multipart answer to a range", [Fault.multipart_byteranges(times=None, on="range")]),
    Scenario("503 twice", [Fault.status(503, times=2)]),
    Scenario("429 with Retry-After seconds", [Fault.status(429, retry_after=1, times=1)]),
    Scenario(
        "429 with Retry-After date",
        [Fault.status(429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", times=1)],
    ),
    Scenario(
        "500 502 408",
        [Fault.status(500, times=1), Fault.status(502, times=1), Fault.status(408, times=1)],
    ),
    Scenario("closed before answering", [Fault.close_before_response(times=1)]),
    Scenario("garbage instead of HTTP", [Fault.garbage_response(times=1)]),
    Scenario(
        "file changes between attempts",
        [Fault.drop_after(100_000, times=1), Fault.body_changes(_CHANGED, after=1)],
        final_body=_CHANGED,
    ),
    Scenario(
        "trickle under the speed floor",
        [Fault.trickle(20_000, after_bytes=1000, times=1)],
        settings={"min_speed": 100_000.0, "min_speed_window": 0.3},
    ),
    Scenario("404", [Fault.permanent_status(404)], error=ContentNotFoundError),
    Scenario("410", [Fault.permanent_status(410)], error=ContentNotFoundError),
    Scenario("401", [Fault.permanent_status(401)], error=AuthenticationError),
    Scenario("403", [Fault.permanent_status(403)], error=AuthenticationError),
    Scenario("400", [Fault.permanent_status(400)], error=HTTPStatusError),
    Scenario(
        "always dropped",
        [Fault.drop_after(0)],
        error=RetryExhaustedError,
        settings={"max_retries": 2},
    ),
    Scenario(
        "always 503",
        [Fault.status(503, times=None)],
        error=RetryExhaustedError,
        settings={"max_retries": 2},
    ),
    Scenario("redirect to ftp", [Fault.redirect("ftp://127.0.0.1/x")], error=RedirectError),
]
SCENARIO_IDS = [s.name for s in SCENARIOS]


def run(
    server: TestServer,
    directory: Path,
    *,
    checksum: str | None = None,
    path: str = "/file.bin",
    **settings: Any,
) -> DownloadResult:
    """Download ``path`` from ``server`` into ``directory`` with the http source."""
    config = make_config(directory, **settings)
    with HttpDownloader(config) as downloader:
        content = downloader.get_download_info(server.url(path))
        if checksum:
            content.checksum = checksum
        return downloader.download(content)


def check_scenario(server: TestServer, out_dir: Path, scenario: Scenario, segments: int) -> None:
    """Serve the scenario's body with its faults, download it, and check the outcome."""
    body = make_body(scenario.size, seed=len(scenario.name))
    server.add("/file.bin", body, faults=scenario.faults)
    if scenario.final_body is not None:
        body = scenario.final_body
    checksum = f"sha256:{sha(body)}" if scenario.with_checksum else None
    result = run(server, out_dir, checksum=checksum, segments=segments, **scenario.settings)
    final = out_dir / "file.bin"
    if scenario.error is None:
        assert result.error is None, result.error
        assert result.status is ResultStatus.COMPLETED
        assert sha(final.read_bytes()) == sha(body)
        assert leftovers(final.parent) == []
    else:
        assert isinstance(result.error, scenario.error), result.error
        assert result.status is ResultStatus.FAILED
        assert not final.exists()
    assert server.errors == []
