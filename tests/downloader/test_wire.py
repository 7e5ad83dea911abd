"""wire.py: the Content-Range header a resumed or segmented response is checked by
(``parse_content_range``), the proof that a 206 is exactly what was asked (``check_range``),
and the framing headers (``content_length``, ``is_encoded``)."""

from __future__ import annotations

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from ripstream.downloader.exceptions import ResponseMismatchError
from ripstream.downloader.wire import (
    ContentRange,
    check_range,
    content_length,
    is_encoded,
    parse_content_range,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes 0-499/1234", ContentRange(0, 499, 1234)),
        ("bytes 500-1233/1234", ContentRange(500, 1233, 1234)),
        ("BYTES 0-0/1", ContentRange(0, 0, 1)),
        ("  bytes 10-19/*  ", ContentRange(10, 19, None)),
        ("bytes */1234", ContentRange(None, None, 1234)),
    ],
)
def test_valid_ranges(header: str, expected: ContentRange) -> None:
    assert parse_content_range(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes */*",  # says nothing
        "bytes 500-499/1000",  # end before start
        "bytes 0-1000/1000",  # end past the last byte
        "bytes 0-499",  # no total
        "items 0-4/10",
        "bytes -5-10/20",
        "bytes 1-2/3/4",
        "bytes a-b/c",
        "0-499/1234",
    ],
)
def test_malformed_or_impossible_ranges_are_none(header: str | None) -> None:
    assert parse_content_range(header) is None


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda a, b, t: f"bytes {a}-{b}/{t}",
            st.integers(min_value=0, max_value=10**12),
            st.integers(min_value=0, max_value=10**12),
            st.one_of(st.integers(min_value=0, max_value=10**12).map(str), st.just("*")),
        ),
    )
)
def test_parse_never_raises_and_ranges_are_consistent(header: str) -> None:
    parsed = parse_content_range(header)
    if parsed is None:
        return
    if parsed.start is None:
        assert parsed.end is None
        assert parsed.total is not None
        return
    assert parsed.end is not None
    assert 0 <= parsed.start <= parsed.end
    if parsed.total is not None:
        assert parsed.end < parsed.total


@given(st.integers(min_value=1, max_value=10**15), st.data())
def test_every_real_range_round_trips(total: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(min_value=0, max_value=total - 1))
    end = data.draw(st.integers(min_value=start, max_value=total - 1))
    assert parse_content_range(f"bytes {start}-{end}/{total}") == ContentRange(start, end, total)


def response_206(headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = 206
    response.url = "http://127.0.0.1:1/song.flac?token=SECRET"
    response.headers.update(headers)
    return response


def test_check_range_accepts_exactly_what_was_asked() -> None:
    response = response_206({"Content-Range": "bytes 100-199/1000", "Content-Length": "100"})
    assert check_range(response, 100, 199, 1000) == ContentRange(100, 199, 1000)
    to_end = response_206({"Content-Range": "bytes 900-999/1000", "Content-Length": "100"})
    assert check_range(to_end, 900, None, None) == ContentRange(900, 999, 1000)


@pytest.mark.parametrize(
    ("content_range", "length", "start", "end", "known", "problem"),
    [
        ("bytes 93-199/1000", "107", 100, 199, None, "bytes from 93 when 100 was asked"),
        ("bytes 100-150/1000", "51", 100, 199, None, "ending at 150 when 199 was asked"),
        ("bytes 100-500/1000", "401", 100, None, None, "before the end of the file"),
        ("bytes 100-1002/1003", "903", 100, None, 1000, "1003 bytes where 1000 was known"),
        ("bytes 100-199/1000", "50", 100, 199, None, "Content-Length 50 that disagrees"),
        ("bytes */1000", "0", 100, None, None, "unusable Content-Range"),
    ],
)
def test_check_range_names_the_first_lie(
    content_range: str, length: str, start: int, end: int | None, known: int | None, problem: str
) -> None:
    response = response_206({"Content-Range": content_range, "Content-Length": length})
    with pytest.raises(ResponseMismatchError, match=problem) as info:
        check_range(response, start, end, known, source="http")
    assert info.value.status_code == 206
    assert info.value.source == "http"
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in (info.value.url or "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1234", 1234), ("0", 0), (" 12 ", 12), ("12, 12", 12)],
)
def test_content_length_trusts_only_plain_numbers(value: str, expected: int) -> None:
    assert content_length(response_206({"Content-Length": value})) == expected
    assert content_length(response_206({})) is None


@pytest.mark.parametrize("value", ["-1", "abc", "\u00b2", "12, 13", "1e3", ""])
def test_an_unusable_content_length_is_a_mismatch(value: str) -> None:
    with pytest.raises(ResponseMismatchError, match="Content-Length"):
        content_length(response_206({"Content-Length": value}))


def test_content_length_with_chunked_framing_is_a_mismatch() -> None:
    headers = {"Content-Length": "10", "Transfer-Encoding": "chunked"}
    with pytest.raises(ResponseMismatchError, match="chunked"):
        content_length(response_206(headers))


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [("", False), ("identity", False), (" Identity ", False), ("gzip", True), ("br", True)],
)
def test_is_encoded(encoding: str, encoded: bool) -> None:
    assert is_encoded(response_206({"Content-Encoding": encoding})) is encoded
