"""parse_content_range: the Content-Range header a resumed or segmented response is checked by."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ripstream.downloader.wire import ContentRange, parse_content_range


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
