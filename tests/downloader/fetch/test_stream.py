"""StreamFetcher: one plain stream against a real misbehaving server.

Every scenario of the fault suite (tests/support/fault_scenarios.py) ends with the exact bytes
at the final path (sha256) or with a clean typed failure and nothing at the final path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ripstream.downloader.exceptions import (
    RedirectError,
    RetryExhaustedError,
    ServerError,
    StallError,
)
from ripstream.downloader.safefs import part_path
from tests.support.fault_scenarios import (
    SCENARIO_IDS,
    SCENARIOS,
    Scenario,
    check_scenario,
    run,
    sha,
)
from tests.support.httpserver import Fault, TestServer, make_body


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_fault(server: TestServer, out_dir: Path, scenario: Scenario) -> None:
    check_scenario(server, out_dir, scenario, segments=1)


def test_redirect_chain_lands_exact_bytes(server: TestServer, out_dir: Path) -> None:
    body = make_body(200_000)
    server.add("/real.bin", body)
    server.add_redirect_chain("/file.bin", "/real.bin", 3)
    result = run(server, out_dir)
    assert result.is_success
    assert sha(result.file_path.read_bytes()) == sha(body)  # type: ignore[union-attr]


def test_redirect_loop_is_a_typed_failure(server: TestServer, out_dir: Path) -> None:
    server.add_redirect_loop("/file.bin")
    result = run(server, out_dir)
    assert isinstance(result.error, RedirectError)
    assert list(out_dir.iterdir()) == []


def test_persistent_503_reports_last_error(server: TestServer, out_dir: Path) -> None:
    server.add("/file.bin", b"x", faults=[Fault.status(503, times=None)])
    result = run(server, out_dir, max_retries=2)
    error = result.error
    assert isinstance(error, RetryExhaustedError)
    assert error.retry_count == 2
    assert isinstance(error.last_error, ServerError)
    assert error.last_error.status_code == 503
    assert len(server.requests_for("/file.bin")) == 3


def test_stall_is_detected_by_read_timeout(server: TestServer, out_dir: Path) -> None:
    server.add("/file.bin", make_body(100_000), faults=[Fault.stall_after(1000, 5.0)])
    result = run(server, out_dir, stall_timeout=0.2, timeout_seconds=0.2, max_retries=0)
    assert isinstance(result.error, StallError)
    assert not (out_dir / "file.bin").exists()
    # kept for resume
    assert part_path(out_dir / "file.bin", ("http", server.url("/file.bin"))).exists()


def test_a_dropped_stream_resumes_with_a_range_from_where_it_stopped(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(300_000, seed=3)
    server.add("/file.bin", body, faults=[Fault.drop_after(120_000, times=1)])
    result = run(server, out_dir)
    assert result.is_success
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    second = server.requests_for("/file.bin")[1]
    assert second.range_header == "bytes=120000-"
    assert result.resumed_from == 120_000
