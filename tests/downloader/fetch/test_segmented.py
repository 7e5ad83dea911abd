"""SegmentedFetcher: ranged segments of one file against a real misbehaving server.

The fault suite (tests/support/fault_scenarios.py) runs here with four segments: every lie
about ranges falls back to one plain stream, and every scenario still lands the exact bytes or
a clean typed failure.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ripstream.downloader.fetch import plan_segments
from tests.support.fault_scenarios import (
    SCENARIO_IDS,
    SCENARIOS,
    Scenario,
    check_scenario,
    run,
    sha,
)
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import fast_settings

SEGMENTS = 4


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_fault(server: TestServer, out_dir: Path, scenario: Scenario) -> None:
    check_scenario(server, out_dir, scenario, segments=SEGMENTS)


def test_a_large_file_arrives_in_ranged_parts_that_cover_it_exactly(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(1_000_000, seed=8)
    server.add("/file.bin", body)
    result = run(server, out_dir, segments=SEGMENTS)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    ranges = [r.range_header for r in server.requests_for("/file.bin")]
    assert all(ranges), ranges  # never a plain full GET
    assert len(ranges) >= SEGMENTS  # the probe, then one request per part


def test_plan_splits_the_whole_file_into_contiguous_parts() -> None:
    settings = fast_settings(segments=4, min_segment_size=64 * 1024)
    parts = plan_segments(settings, 1_000_001)
    assert len(parts) == 4
    assert parts[0][0] == 0
    assert parts[-1][1] == 1_000_001
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    # a file smaller than two minimum segments is one part
    assert plan_segments(settings, 100_000) == [(0, 100_000)]
