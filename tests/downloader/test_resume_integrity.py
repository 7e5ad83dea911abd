"""A resumed file is the server's file, byte for byte, or a typed failure: never a splice.

Each scenario lies in exactly one way, so that exactly one check of a 206 answer stands between
the user and a corrupt file: its ``Content-Range`` start, its total against the one recorded in
the resume sidecar, or (for segments) the ``If-Range`` that makes a changed file come back whole.
The faults keep everything else consistent (end, total, ``Content-Length``), so no other check
catches the lie first; each scenario runs on the single-stream path and on the segmented one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ripstream.downloader import DownloadError, DownloadResult, ResultStatus
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, Resource, TestServer, make_body
from tests.support.settings import make_config

SIZE = 600_000
PATH = "/song.flac"
NAME = "song.flac"
EARLY = -7  # the 206 starts this many bytes before the asked offset


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(server: TestServer, out_dir: Path, **settings: int) -> DownloadResult:
    with HttpDownloader(make_config(out_dir, **settings)) as downloader:
        return downloader.download(downloader.get_download_info(server.url(PATH)))


def files_beside(out_dir: Path) -> set[str]:
    """Names in the output folder other than the final file (the resume state, if any)."""
    return {p.name for p in out_dir.iterdir() if p.name != NAME}


def interrupt(server: TestServer, out_dir: Path, *, segments: int) -> None:
    """A first run that ends early (no retries), leaving a partial file and its resume state."""
    result = download(server, out_dir, segments=segments, max_retries=0)
    assert result.status is ResultStatus.FAILED, result
    assert not (out_dir / NAME).exists()
    assert files_beside(out_dir), "the interrupted run left nothing to resume from"


def assert_exactly(result: DownloadResult, out_dir: Path, body: bytes) -> None:
    """The new file exactly, or a typed failure with nothing at the final path."""
    final = out_dir / NAME
    if result.status is ResultStatus.COMPLETED:
        assert sha(final.read_bytes()) == sha(body), "the file on disk is not the server's file"
    else:
        assert isinstance(result.error, DownloadError), result
        assert not final.exists()


def used(resource: Resource, index: int) -> int:
    return resource.fault_uses()[index]


# -- the start of a 206 -----------------------------------------------------------------------


def test_single_stream_resume_refuses_a_206_that_starts_early(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(SIZE, seed=1)
    # the first GET is cut; the resuming 206 then starts 7 bytes early but ends at the end,
    # with the right total and a Content-Length that fits the range it names
    resource = server.add(
        PATH,
        body,
        faults=[
            Fault.drop_after(200_000, times=1, on="full"),
            Fault.wrong_range_start(EARLY, keep_end=True, times=1, on="range"),
        ],
    )

    result = download(server, out_dir)

    assert used(resource, 1) == 1, "the early 206 was never sent"
    early = server.requests_for(PATH)[1]
    assert early.range_header == "bytes=200000-"
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)


def test_segments_refuse_a_206_that_starts_early(server: TestServer, out_dir: Path) -> None:
    body = make_body(SIZE, seed=2)
    # every range after the first probe (which starts at 0 and cannot start earlier) comes
    # back 7 bytes early, ending where asked; a plain GET is answered honestly
    resource = server.add(
        PATH, body, faults=[Fault.wrong_range_start(EARLY, keep_end=True, on="range")]
    )

    result = download(server, out_dir, segments=4)

    ranges = [r.range_header for r in server.requests_for(PATH) if r.range_header]
    assert len(ranges) >= 2, f"no segment was asked for: {ranges}"
    assert used(resource, 0) >= 2
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)


# -- the total of a 206 against the resume state ------------------------------------------------


def test_single_stream_resume_refuses_a_206_of_a_file_that_grew(
    server: TestServer, out_dir: Path
) -> None:
    old = make_body(SIZE, seed=3)
    new = make_body(SIZE + 1000, seed=4)
    resource = server.add(PATH, old, faults=[Fault.drop_after(200_000, times=1)])
    interrupt(server, out_dir, segments=1)
    # the file grows between runs, and the server answers the resume with a 206 despite the
    # If-Range: start and end fit the asked range, only the total differs from the sidecar's
    resource.set_body(new)
    resource.set_faults([Fault.ignore_if_range()])

    result = download(server, out_dir)

    resumed = server.requests_for(PATH)[1]
    assert resumed.range_header == "bytes=200000-"
    assert used(resource, 0) >= 1, "the server never ignored an If-Range"
    assert_exactly(result, out_dir, new)


def test_segments_refuse_a_206_of_a_file_that_grew(server: TestServer, out_dir: Path) -> None:
    old = make_body(SIZE, seed=5)
    new = make_body(SIZE + 1000, seed=6)
    resource = server.add(PATH, old, faults=[Fault.drop_after(20_000, reset=True, on="range")])
    interrupt(server, out_dir, segments=4)
    resource.set_body(new)
    resource.set_faults([Fault.ignore_if_range()])
    server.reset_stats()

    result = download(server, out_dir, segments=4)

    assert server.requests_for(PATH)[0].range_header not in (None, "bytes=0-65535"), (
        "the second run did not resume the segments"
    )
    assert used(resource, 0) >= 1
    assert_exactly(result, out_dir, new)


# -- If-Range on segment requests ---------------------------------------------------------------


def test_segments_resume_of_a_changed_file_is_the_new_file(
    server: TestServer, out_dir: Path
) -> None:
    old = make_body(SIZE, seed=7)
    new = make_body(SIZE, seed=8)  # same size: only the validators tell the files apart
    resource = server.add(PATH, old, faults=[Fault.drop_after(20_000, reset=True, on="range")])
    interrupt(server, out_dir, segments=4)
    resource.set_body(new)  # a new ETag and Last-Modified; If-Range is honoured
    resource.set_faults([])
    server.reset_stats()

    result = download(server, out_dir, segments=4)

    first = server.requests_for(PATH)[0]
    assert first.range_header not in (None, "bytes=0-65535"), "the segments were not resumed"
    assert_exactly(result, out_dir, new)
    assert result.status is ResultStatus.COMPLETED, result.error


def test_the_total_alone_refuses_a_file_that_grew_under_an_unchanged_etag(
    server: TestServer, out_dir: Path
) -> None:
    # a server whose ETag does not follow the content (stale validators), and which ignores
    # If-Range: only the total recorded in the resume state shows the file is another one
    old = make_body(SIZE, seed=13)
    new = make_body(SIZE + 1000, seed=14)
    resource = server.add(PATH, old, faults=[Fault.drop_after(200_000, times=1)])
    interrupt(server, out_dir, segments=1)
    resource.set_body(new, etag=resource.etag)
    resource.set_faults([Fault.ignore_if_range()])

    result = download(server, out_dir)

    assert server.requests_for(PATH)[1].range_header == "bytes=200000-"
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(new)
