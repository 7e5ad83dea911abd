"""Checksum, ContentType, DownloadableContent, DownloadResult."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ripstream.downloader import (
    Checksum,
    ContentType,
    DownloadableContent,
    DownloadResult,
    ResultStatus,
)
from ripstream.downloader.exceptions import ChecksumError, ConfigError, ContentNotFoundError

DATA = b"ripstream test payload\n"


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256", "sha512"])
def test_checksum_parse_accepts_each_algorithm(algorithm: str) -> None:
    digest = hashlib.new(algorithm, DATA).hexdigest()
    checksum = Checksum.parse(f"{algorithm.upper()}:{digest.upper()}")
    assert checksum.algorithm == algorithm
    assert checksum.hexdigest == digest  # normalised to lower case
    assert str(checksum) == f"{algorithm}:{digest}"
    hasher = checksum.new_hasher()
    hasher.update(DATA)
    assert hasher.hexdigest() == checksum.hexdigest


def test_checksum_parse_strips_surrounding_whitespace() -> None:
    digest = hashlib.md5(DATA).hexdigest()
    assert Checksum.parse(f"  md5:{digest}\n") == Checksum("md5", digest)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("crc32:deadbeef", "algorithm 'crc32'"),
        ("md5:" + "0" * 31, "32 hex digits"),
        ("md5:" + "0" * 33, "32 hex digits"),
        ("sha1:" + "0" * 32, "40 hex digits"),
        ("sha256:" + "g" * 64, "64 hex digits"),
        ("sha512:" + "0" * 64, "128 hex digits"),
        ("d41d8cd98f00b204e9800998ecf8427e", "ALGO:HEX"),
        ("", "ALGO:HEX"),
        ("md5:", "32 hex digits"),
    ],
)
def test_bad_checksums_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Checksum.parse(text)
    assert info.value.field == "checksum"
    assert fragment in str(info.value)


def _content(**changes: object) -> DownloadableContent:
    values: dict[str, object] = {
        "content_id": "track_123",
        "content_type": ContentType.TRACK,
        "source": "my_service",
        "title": "My Song",
        "url": "https://example.com/track_123.mp3",
        "file_extension": "mp3",
    }
    values.update(changes)
    return DownloadableContent(**values)  # type: ignore[arg-type]


def test_content_type_accepts_its_string_value() -> None:
    content = _content(content_type="album")
    assert content.content_type is ContentType.ALBUM


def test_bad_content_type_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        _content(content_type="song")
    assert info.value.field == "content_type"
    assert info.value.value == "song"
    assert "track" in str(info.value)  # lists the choices


def test_content_checksum_is_validated_and_parsed() -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    content = _content(checksum=f"sha256:{digest}")
    assert content.expected_checksum == Checksum("sha256", digest)
    assert _content().expected_checksum is None
    with pytest.raises(ConfigError) as info:
        _content(checksum="sha256:1234")
    assert info.value.field == "checksum"


def test_negative_size_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        _content(size=-1)
    assert (info.value.field, info.value.value) == ("size", -1)
    assert _content(size=0).size == 0


def test_content_json_round_trip() -> None:
    content = _content(
        artist="Artist",
        album="Album",
        filename="01 My Song.mp3",
        size=1234,
        checksum="md5:" + hashlib.md5(DATA).hexdigest(),
        headers={"Authorization": "Bearer s3cret"},
        metadata={"tracknumber": 1, "genres": ["rock", "pop"], "year": 1999},
    )
    text = content.to_json()
    assert json.loads(text)["content_type"] == "track"
    back = DownloadableContent.from_json(text)
    assert back == content
    assert back.content_type is ContentType.TRACK
    assert back.metadata["genres"] == ["rock", "pop"]


def test_repr_hides_header_values() -> None:
    content = _content(headers={"Authorization": "Bearer s3cret-token", "Cookie": "sid=abc123"})
    text = repr(content)
    assert "s3cret-token" not in text
    assert "abc123" not in text
    assert "Authorization" in text
    assert "Cookie" in text
    assert "track_123" in text


def test_successful_result() -> None:
    result = DownloadResult(
        content_id="c1",
        source="http",
        status=ResultStatus.COMPLETED,
        file_path=Path("/music/a.mp3"),
        url="https://example.com/a.mp3",
        bytes_downloaded=2048,
        total_bytes=2048,
        elapsed=1.23456789,
        attempts=1,
        checksum="md5:" + "0" * 32,
    )
    assert result.is_success
    assert result.error_message is None
    result.raise_for_error()  # does nothing on success
    record = result.to_record()
    assert record == {
        "content_id": "c1",
        "source": "http",
        "status": "completed",
        "ok": True,
        "file_path": str(Path("/music/a.mp3")),
        "url": "https://example.com/a.mp3",
        "bytes_downloaded": 2048,
        "total_bytes": 2048,
        "resumed_from": 0,
        "elapsed": 1.234568,
        "attempts": 1,
        "checksum": "md5:" + "0" * 32,
        "message": None,
        "error_type": None,
        "error": None,
        "worker": None,
    }
    assert json.loads(json.dumps(record)) == record


def test_skipped_result_counts_as_success() -> None:
    result = DownloadResult("c1", "http", ResultStatus.SKIPPED, file_path=Path("a.mp3"))
    assert result.is_success
    assert result.to_record()["ok"] is True
    assert result.to_record()["status"] == "skipped"


@pytest.mark.parametrize("status", [ResultStatus.FAILED, ResultStatus.CANCELLED])
def test_failed_result_re_raises_its_typed_error(status: ResultStatus) -> None:
    error = ContentNotFoundError(
        "HTTP 404 for https://example.com/x", url="https://example.com/x", status_code=404
    )
    result = DownloadResult("c1", "http", status, error=error, attempts=1)
    assert not result.is_success
    assert result.error_message == "HTTP 404 for https://example.com/x"
    with pytest.raises(ContentNotFoundError) as info:
        result.raise_for_error()
    assert info.value is error
    assert info.value.status_code == 404
    record = result.to_record()
    assert record["ok"] is False
    assert record["error_type"] == "ContentNotFoundError"
    assert record["error"] == "HTTP 404 for https://example.com/x"
    assert record["file_path"] is None


def test_checksum_failure_record_names_the_error_type() -> None:
    error = ChecksumError("digest mismatch", algorithm="md5", expected="0" * 32, actual="1" * 32)
    record = DownloadResult("c", "s", ResultStatus.FAILED, error=error).to_record()
    assert (record["error_type"], record["error"]) == ("ChecksumError", "digest mismatch")
