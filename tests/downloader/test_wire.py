"""wire.py: the Content-Range header a resumed or segmented response is checked by
(``parse_content_range``), the proof that a 206 is exactly what was asked (``check_range``),
and the framing headers (``content_length``, ``is_encoded``)."""

from __future__ import annotations

import gzip
import io
import random
import threading
import zlib
from pathlib import Path

import pytest
import requests
import urllib3
from hypothesis import given, settings
from hypothesis import strategies as st

from ripstream.downloader import ResultStatus
from ripstream.downloader.exceptions import IncompleteBodyError, ResponseMismatchError
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.wire import (
    BodyReader,
    ContentRange,
    Inflater,
    check_range,
    check_wire_length,
    content_length,
    is_encoded,
    parse_content_range,
)
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config


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


# -- the inflater: a compressed body, decoded with bounds --------------------------------------

SECRET_URL = "http://u:pw@h.example/a.flac?token=SECRET"
SHOWN_URL = "http://h.example/a.flac?token=***"


def compressed(body: bytes, encoding: str = "gzip", status: int = 200) -> requests.Response:
    """A streamed response as requests hands it over: ``body`` sent as it is on the wire,
    ``Content-Encoding: encoding`` (urllib3 would decode it, were it asked to)."""
    response = requests.Response()
    response.status_code = status
    response.url = SECRET_URL
    response.headers["Content-Encoding"] = encoding
    response.raw = urllib3.HTTPResponse(
        body=io.BytesIO(body),
        headers={"Content-Encoding": encoding},
        preload_content=False,
    )
    return response


def inflate_all(inflater: Inflater, want: int) -> bytes:
    out = bytearray()
    for _ in range(100_000):
        chunk = inflater.read(want)
        assert len(chunk) <= want
        if not chunk:
            return bytes(out)
        out += chunk
    raise AssertionError("the inflater never ended")


def some_body(size: int, seed: int = 1) -> bytes:
    """Bytes that compress about tenfold: a little noise in runs of zeros."""
    rng = random.Random(seed)
    return b"".join(rng.randbytes(100) + b"\0" * 900 for _ in range(size // 1000))


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", " GZIP ", "deflate", "DEFLATE"])
def test_each_accepted_encoding_decodes_exactly_in_small_reads(encoding: str) -> None:
    body = some_body(300_000)
    data = gzip.compress(body) if "gzip" in encoding.lower() else zlib.compress(body)
    assert inflate_all(Inflater(compressed(data, encoding), 100.0), 1000) == body


def test_a_body_of_many_wire_chunks_is_measured_by_all_of_them() -> None:
    body = some_body(3_000_000)
    data = gzip.compress(body)
    assert len(data) > 4 * 64 * 1024  # several reads from the wire
    assert inflate_all(Inflater(compressed(data), 20.0), 64 * 1024) == body


def test_a_body_past_the_ratio_is_refused_naming_it() -> None:
    with pytest.raises(ResponseMismatchError) as caught:
        inflate_all(Inflater(compressed(gzip.compress(b"\0" * 5_000_000)), 100.0), 64 * 1024)
    assert str(caught.value) == (
        f"{SHOWN_URL} sent gzip data that decodes to more than 100 times its size "
        "(a decompression bomb?)"
    )
    assert caught.value.url == SHOWN_URL


def test_an_unsupported_encoding_is_refused_naming_it() -> None:
    with pytest.raises(ResponseMismatchError) as caught:
        Inflater(compressed(b"x", "br", status=206), 100.0)
    assert str(caught.value) == f"{SHOWN_URL} sent its body in an unsupported encoding 'br'"
    assert (caught.value.url, caught.value.status_code) == (SHOWN_URL, 206)


def test_corrupt_data_is_refused_naming_the_encoding() -> None:
    with pytest.raises(ResponseMismatchError) as caught:
        inflate_all(Inflater(compressed(b"\x1f\x8b\x08\x00garbage" * 10), 100.0), 1000)
    assert str(caught.value).startswith(f"{SHOWN_URL} sent corrupt gzip data: ")
    assert caught.value.url == SHOWN_URL


def test_a_stream_without_its_end_is_an_incomplete_body() -> None:
    data = gzip.compress(some_body(100_000))[:5_000]
    with pytest.raises(IncompleteBodyError) as caught:
        inflate_all(Inflater(compressed(data, "gzip"), 100.0), 1000)
    assert str(caught.value) == f"{SHOWN_URL} ended its gzip stream early (no end marker)"
    assert caught.value.url == SHOWN_URL


def test_every_gzip_member_of_a_body_is_kept(server: TestServer, out_dir: Path) -> None:
    # RFC 1952: members one after another decode to one body (zlib alone stops after one)
    first, second = some_body(50_000, 1), some_body(50_000, 2)
    server.add(
        "/two.bin",
        gzip.compress(first) + gzip.compress(second),
        headers={"Content-Encoding": "gzip"},
    )
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = http.download(http.get_download_info(server.url("/two.bin")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "two.bin").read_bytes() == first + second


def test_bytes_after_the_end_of_a_gzip_stream_are_refused() -> None:
    data = gzip.compress(some_body(20_000)) + b"trailing junk"
    with pytest.raises(ResponseMismatchError, match="sent corrupt gzip data"):
        inflate_all(Inflater(compressed(data), 100.0), 1000)


# -- exact words and fields of a refused range or length ---------------------------------------

SHOWN_206 = "http://127.0.0.1:1/song.flac?token=***"


def test_a_refused_range_names_the_url_and_the_header() -> None:
    bad = response_206({"Content-Range": "bytes x-y/z", "Content-Length": "10"})
    with pytest.raises(ResponseMismatchError) as caught:
        check_range(bad, 100, 199, None)
    assert (
        str(caught.value) == f"{SHOWN_206} sent a 206 with an unusable Content-Range 'bytes x-y/z'"
    )
    assert caught.value.url == SHOWN_206


def test_a_range_from_byte_zero_is_measured_from_zero() -> None:
    whole = response_206({"Content-Range": "bytes 0-99/200", "Content-Length": "100"})
    assert check_range(whole, 0, 99, 200) == ContentRange(0, 99, 200)
    short = response_206({"Content-Range": "bytes 0-99/200", "Content-Length": "99"})
    with pytest.raises(ResponseMismatchError) as caught:
        check_range(short, 0, 99, 200)
    assert str(caught.value) == (
        f"{SHOWN_206} sent Content-Length 99 that disagrees with Content-Range 'bytes 0-99/200'"
    )


def test_the_first_lie_is_the_one_named_when_the_length_disagrees_too() -> None:
    both = response_206({"Content-Range": "bytes 93-199/1000", "Content-Length": "5"})
    with pytest.raises(ResponseMismatchError) as caught:
        check_range(both, 100, 199, None)
    assert str(caught.value) == f"{SHOWN_206} sent bytes from 93 when 100 was asked"


def test_an_unusable_length_names_the_url_and_status() -> None:
    with pytest.raises(ResponseMismatchError) as caught:
        content_length(response_206({"Content-Length": "12, 13"}))
    assert str(caught.value) == f"{SHOWN_206} sent an unusable Content-Length '12, 13'"
    assert (caught.value.url, caught.value.status_code) == (SHOWN_206, 206)
    framed = response_206({"Content-Length": "12", "Transfer-Encoding": "chunked"})
    with pytest.raises(ResponseMismatchError) as both:
        content_length(framed)
    assert str(both.value) == f"{SHOWN_206} sent both Content-Length and chunked framing"


def test_a_body_longer_than_its_content_length_is_refused(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/long.bin", make_body(50_000, 3), faults=[Fault.content_length_too_small(1000)])
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = http.download(http.get_download_info(server.url("/long.bin")))
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, ResponseMismatchError)
    url = server.url("/long.bin")
    assert str(result.error) == f"{url} sent more bytes than its Content-Length declares"
    assert result.error.url == url
    assert not (out_dir / "long.bin").exists()


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_read_to_its_end_gives_the_connection_back(
    server: TestServer, out_dir: Path, chunked: bool
) -> None:
    bodies = {f"/k{n}.bin": make_body(40_000 + n, n) for n in range(3)}
    for path, body in bodies.items():
        server.add(path, body, faults=[Fault.chunked()] if chunked else [])
    with HttpDownloader(make_config(out_dir, jobs=1)) as http:
        for path in bodies:
            result = http.download(http.get_download_info(server.url(path)))
            assert result.status is ResultStatus.COMPLETED, result.error
    for path, body in bodies.items():
        assert (out_dir / path.lstrip("/")).read_bytes() == body
    assert len({request.connection_id for request in server.requests}) == 1


# -- run 3 of the mutation tests: bounds, framings and the backstop no other test reached -------


def test_the_ratio_bound_keeps_a_body_exactly_at_it_and_refuses_one_byte_more() -> None:
    # zeros decode to about a thousand times their gzip size, far past the MiB of slack, so
    # the bound is max_ratio times the wire size; with max_ratio = decoded / wire it is exact
    size = 2 * 1024 * 1024
    at_bound = gzip.compress(b"\0" * size, mtime=0)
    over = gzip.compress(b"\0" * (size + 1), mtime=0)
    assert len(over) == len(at_bound)  # the same wire size: one more byte decoded
    ratio = size / len(at_bound)
    assert len(at_bound) * ratio == size
    assert inflate_all(Inflater(compressed(at_bound), ratio), 64 * 1024) == b"\0" * size
    with pytest.raises(ResponseMismatchError, match="decompression bomb"):
        inflate_all(Inflater(compressed(over), ratio), 64 * 1024)


def test_an_inflater_for_a_body_without_an_encoding_is_refused_naming_none() -> None:
    response = compressed(b"plain")
    del response.headers["Content-Encoding"]
    with pytest.raises(ResponseMismatchError) as caught:
        Inflater(response, 100.0)
    assert str(caught.value) == f"{SHOWN_URL} sent its body in an unsupported encoding ''"


def test_the_wire_length_check_names_what_arrived_of_what_was_declared() -> None:
    # urllib3 raises first on a short body it reads itself; this is the backstop for a
    # response read without that check, as a custom transport may hand over
    response = requests.Response()
    response.status_code = 200
    response.url = SECRET_URL
    response.headers["Content-Length"] = "20"
    response.raw = urllib3.HTTPResponse(
        body=io.BytesIO(b"x" * 12), preload_content=False, enforce_content_length=False
    )
    assert response.raw.read() == b"x" * 12
    with pytest.raises(IncompleteBodyError) as caught:
        check_wire_length(SECRET_URL, response, "http")
    error = caught.value
    assert str(error) == f"{SHOWN_URL} ended after 12 of 20 encoded bytes"
    assert (error.url, error.source, error.expected, error.received) == (SHOWN_URL, "http", 20, 12)
    response.headers["Content-Length"] = "12"
    check_wire_length(SECRET_URL, response, "http")  # all of it: no error
    del response.headers["Content-Length"]
    check_wire_length(SECRET_URL, response, "http")  # no declared length: nothing to check


def test_a_body_without_an_http_client_response_beneath_is_read_in_the_sizes_asked() -> None:
    # a transport other than urllib3's sockets (a mock, a file adapter) hands over a body
    # whose reads go through urllib3; each read still returns at most what was asked
    body = make_body(10_000, 4)
    response = requests.Response()
    response.status_code = 200
    response.url = SECRET_URL
    response.raw = urllib3.HTTPResponse(body=io.BytesIO(body), preload_content=False)
    reader = BodyReader(response, 4096)
    pieces = [bytes(reader.read(3000)) for _ in range(5)]
    assert [len(piece) for piece in pieces] == [3000, 3000, 3000, 1000, 0]
    assert b"".join(pieces) == body


def test_a_chunked_body_is_handed_over_as_it_arrives(server: TestServer, out_dir: Path) -> None:
    # the server holds the rest of the body until the client has reported the first bytes:
    # a read that waited for a full buffer would wait for the pause, and time out
    body = make_body(200_000, 5)
    release = threading.Event()
    server.add(
        "/c.bin", body, faults=[Fault.chunked(), Fault.pause_after(40_000, release, timeout=30.0)]
    )
    tracker = ProgressTracker(min_interval=0)
    tracker.add_callback(lambda _id, progress: release.set() if progress.downloaded_bytes else None)
    config = make_config(out_dir, max_retries=0)  # a read that waits times out after 5 s
    with HttpDownloader(config, progress_tracker=tracker) as http:
        result = http.download(http.get_download_info(server.url("/c.bin")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "c.bin").read_bytes() == body


def test_a_resume_answered_with_an_unknown_total_completes(
    server: TestServer, out_dir: Path
) -> None:
    # the first answer (chunked: no length) breaks; the resume's 206 says 'bytes N-M/*' with
    # a Content-Length: the body is read to that length and ends there
    body = make_body(120_000, 6)
    server.add(
        "/u.bin",
        body,
        faults=[
            Fault.broken_chunked("truncated", after_bytes=50_000, times=1),
            Fault.wrong_range_total(total="*", on="range"),
        ],
    )
    with HttpDownloader(make_config(out_dir, max_retries=1)) as http:
        result = http.download(http.get_download_info(server.url("/u.bin")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "u.bin").read_bytes() == body
    ranges = [request.headers.get("Range") for request in server.requests_for("/u.bin")]
    assert ranges[-1] is not None
    assert ranges[-1] != "bytes=0-"


def test_a_body_delimited_by_the_close_stays_ended(server: TestServer) -> None:
    # no Content-Length: the end is the closed connection; asking again after it gives nothing
    body = make_body(30_000, 7)
    server.add("/close.bin", body, faults=[Fault.no_content_length()])
    with requests.get(server.url("/close.bin"), stream=True, timeout=5) as response:
        reader = BodyReader(response, 64 * 1024)
        received = bytearray()
        while chunk := reader.read(8192):
            received += chunk
        assert bytes(received) == body
        assert bytes(reader.read(8192)) == b""


def test_a_body_of_known_length_takes_a_buffer_of_its_size(server: TestServer) -> None:
    body = make_body(65_536, 8)
    server.add("/small.bin", body)
    server.add("/empty.bin", b"")
    server.add("/open.bin", body, faults=[Fault.no_content_length()])
    server.add("/gz.bin", body, faults=[Fault.gzip_encoding()])  # decoded: read in chunks
    sizes = {"/small.bin": len(body), "/empty.bin": 1, "/open.bin": 2**20, "/gz.bin": 2**20}
    for path, capacity in sizes.items():
        with requests.get(server.url(path), stream=True, timeout=5) as response:
            reader = BodyReader(response, 2**20)
            assert reader.capacity == capacity  # not the whole chunk size for every file
            received = bytearray()
            while chunk := reader.read(2**20):
                received += chunk
        assert bytes(received) == (b"" if path == "/empty.bin" else body)
