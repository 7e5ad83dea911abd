"""ResumeState, the sidecar that proves a ``.part`` file's bytes, and what it sends as If-Range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from ripstream.downloader.state import ResumeState, TransferResult, sidecar_path


def response_with(headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response.headers.update(headers)
    return response


def test_json_round_trip_keeps_every_field() -> None:
    state = ResumeState(
        "subsonic",
        "song-42",
        etag='"abc"',
        last_modified="Wed, 21 Oct 2015 07:28:00 GMT",
        total=1_000_000,
        segments=[[0, 500_000, 250_000], [500_000, 1_000_000, 1_000_000]],
    )
    text = state.to_json()
    assert json.loads(text)["segments"] == [[0, 500_000, 250_000], [500_000, 1_000_000, 1_000_000]]
    assert ResumeState.from_json(text) == state


def test_from_response_takes_the_validators_and_the_total() -> None:
    response = response_with({"ETag": '"v1"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"})
    state = ResumeState.from_response(("http", "u"), response, 1234)
    assert (state.source, state.content_id, state.total) == ("http", "u", 1234)
    assert state.etag == '"v1"'
    assert state.last_modified == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert state.segments == []


@pytest.mark.parametrize(
    ("etag", "last_modified", "validator"),
    [
        ('"strong"', "Wed, 21 Oct 2015 07:28:00 GMT", '"strong"'),  # strong ETag wins
        ('W/"weak"', "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ('W/"weak"', None, None),  # a weak ETag never validates a range
        (None, "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"),
        (None, None, None),
    ],
)
def test_validator_prefers_a_strong_etag_and_ignores_a_weak_one(
    etag: str | None, last_modified: str | None, validator: str | None
) -> None:
    state = ResumeState("s", "c", etag=etag, last_modified=last_modified)
    assert state.validator == validator


def test_matches_only_its_own_content_and_version() -> None:
    state = ResumeState("subsonic", "song-42")
    assert state.matches("subsonic", "song-42")
    assert not state.matches("subsonic", "song-43")
    assert not state.matches("http", "song-42")
    future = ResumeState("subsonic", "song-42", version=2)
    assert not future.matches("subsonic", "song-42")


def test_the_sidecar_sits_beside_the_part_file(tmp_path: Path) -> None:
    part = tmp_path / "song.flac.part"
    assert sidecar_path(part) == tmp_path / "song.flac.part.json"


def test_transfer_result_defaults() -> None:
    result = TransferResult(total=10, resumed_from=4, fetched=6)
    assert result.digest is None
