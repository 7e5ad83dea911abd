"""A hostile server and a hostile output folder: exact bytes or a typed failure, nothing outside
the folder changed, nothing of the user's lost, and no hang.

Each test plants one thing (a symlink, a FIFO, a lying header, a planted resume state) and
checks what a user would see: the bytes at the final path, the files around it, the error.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import (
    DownloadError,
    DownloadResult,
    OverwritePolicy,
    ResultStatus,
)
from ripstream.downloader.exceptions import StorageError, TargetExistsError, TooLargeError
from ripstream.downloader.safefs import (
    PathLock,
    lock_path,
    make_dirs_inside,
    part_path,
    read_regular,
)
from ripstream.downloader.state import sidecar_path
from ripstream.sources.http import HttpDownloader
from tests.support.files import leftovers
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config

PATH = "/track.flac"
NAME = "track.flac"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(
    server: TestServer, out_dir: Path, path: str = PATH, **settings: Any
) -> DownloadResult:
    with HttpDownloader(make_config(out_dir, **settings)) as http:
        content = http.get_download_info(server.url(path))
        return http.download(content)


def key(server: TestServer, path: str = PATH) -> tuple[str, str]:
    return ("http", server.url(path))


# -- the server lies ------------------------------------------------------------------------------


def test_a_probe_that_runs_past_its_range_never_writes_the_extra_bytes(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(1_000_000)
    # the first answer (the segment probe) announces 64 KiB, then sends 4 KiB of garbage more,
    # with no Content-Length to give it away; it is cut at its range in the same attempt
    server.add(
        PATH, body, faults=[Fault.overrun_range(4096, times=1), Fault.no_content_length(times=1)]
    )
    result = download(server, out_dir, segments=4, min_segment_size=64 * 1024, max_retries=0)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)
    assert server.resource(PATH).fault_uses()[0] == 1  # the lie was told


@pytest.mark.parametrize("segments", [1, 4])
def test_content_length_together_with_chunked_is_never_a_file(
    server: TestServer, out_dir: Path, segments: int
) -> None:
    body = make_body(200_000)
    server.add(PATH, body, faults=[Fault.chunked(), Fault.header("Content-Length", "100")])
    result = download(server, out_dir, segments=segments, max_retries=1)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, DownloadError)
    assert "chunked" in str(result.error)
    assert not (out_dir / NAME).exists()


def test_a_content_length_of_unicode_digits_is_a_typed_failure(
    server: TestServer, out_dir: Path
) -> None:
    server.add(PATH, make_body(1000), faults=[Fault.header("Content-Length", "\u00b2")])
    result = download(server, out_dir, max_retries=0)
    assert result.status is ResultStatus.FAILED
    assert "Content-Length" in str(result.error)
    assert not (out_dir / NAME).exists()


def test_a_resume_answered_from_byte_zero_restarts_the_file(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(400_000)
    server.add(PATH, body, faults=[Fault.drop_after(150_000, times=1)])
    first = download(server, out_dir, max_retries=0)
    assert first.status is ResultStatus.FAILED
    # the server now answers "bytes=150000-" with an honest 206 of the whole file
    server.resource(PATH).faults = [Fault.wrong_range_start(-150_000, keep_end=True, honest=True)]
    second = download(server, out_dir, max_retries=3)
    requests = [(r.method, r.range_header) for r in server.requests_for(PATH)]
    assert second.status is ResultStatus.COMPLETED, (second.error, requests)
    assert sha((out_dir / NAME).read_bytes()) == sha(body)
    # the refused resume is followed by a fetch from zero, never by the same resume again
    assert requests[-1][1] is None, requests


def test_a_planted_all_done_resume_state_is_not_trusted(server: TestServer, out_dir: Path) -> None:
    body = make_body(300_000)
    server.add(PATH, body)
    part = part_path(out_dir / NAME, key(server))
    part.write_bytes(b"\0" * len(body))
    planted = {
        "source": "http",
        "content_id": server.url(PATH),
        "etag": '"planted"',
        "total": len(body),
        "segments": [[0, len(body), len(body)]],
    }
    sidecar_path(part).write_text(json.dumps(planted))
    result = download(server, out_dir, segments=2, min_segment_size=64 * 1024)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)  # not 300,000 zeros


# -- the folder is hostile ------------------------------------------------------------------------


def test_a_symlink_planted_at_the_temporary_name_is_never_followed(
    server: TestServer, tmp_path: Path
) -> None:
    out_dir, outside = tmp_path / "out", tmp_path / "precious.txt"
    out_dir.mkdir()
    outside.write_bytes(b"keep me")
    server.add(PATH, make_body(50_000))
    part = part_path(out_dir / NAME, key(server))
    part.symlink_to(outside)
    result = download(server, out_dir, max_retries=0)
    assert outside.read_bytes() == b"keep me"
    assert result.status is ResultStatus.FAILED
    error = result.error
    assert isinstance(error, StorageError)
    assert str(error) == f"refusing {str(part)!r}: it is a symlink"
    assert error.path == str(part)


def test_a_symlinked_folder_leading_outside_is_refused(server: TestServer, tmp_path: Path) -> None:
    out_dir, outside = tmp_path / "out", tmp_path / "elsewhere"
    out_dir.mkdir()
    outside.mkdir()
    (out_dir / "album").symlink_to(outside)
    server.add(PATH, make_body(10_000))
    with HttpDownloader(make_config(out_dir)) as http:
        result = http.download(http.get_download_info(server.url(PATH)), "album/new/track.flac")
    assert result.status is ResultStatus.FAILED
    error = result.error
    assert isinstance(error, StorageError)
    album = out_dir / "album"
    assert (
        str(error) == f"refusing {str(album)!r}: it is a symlink leading outside {str(out_dir)!r}"
    )
    assert error.path == str(album)
    assert list(outside.iterdir()) == []  # nothing was made or written outside


def test_new_folders_are_made_level_by_level_and_a_link_inside_is_followed(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(10_000, seed=47)
    server.add(PATH, body)
    (out_dir / "real").mkdir()
    (out_dir / "album").symlink_to(out_dir / "real")  # a link that stays inside the folder
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url(PATH))
        made = http.download(content, "new/deeper/track.flac")
        linked = http.download(content, "album/disc 1/track.flac")
    assert made.status is ResultStatus.COMPLETED, made.error
    assert (out_dir / "new" / "deeper" / "track.flac").read_bytes() == body
    assert linked.status is ResultStatus.COMPLETED, linked.error
    assert (out_dir / "real" / "disc 1" / "track.flac").read_bytes() == body


def test_a_symlink_planted_while_a_folder_is_being_made_is_refused(
    server: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir, outside = tmp_path / "out", tmp_path / "elsewhere"
    out_dir.mkdir()
    outside.mkdir()
    album = out_dir / "album"
    real_mkdir = os.mkdir

    def another_process_wins(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == album and not album.is_symlink():
            album.symlink_to(outside)  # planted between the check and the mkdir
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", another_process_wins)
    server.add(PATH, make_body(10_000))
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = http.download(http.get_download_info(server.url(PATH)), "album/new/track.flac")
    error = result.error
    assert isinstance(error, StorageError), error
    assert (error.path, str(error)) == (
        str(album),
        f"refusing {str(album)!r}: it is a symlink leading outside {str(out_dir)!r}",
    )
    assert list(outside.iterdir()) == []


def test_a_link_inside_the_folder_to_a_file_is_not_a_folder_level(tmp_path: Path) -> None:
    """The second guard of ``make_dirs_inside`` (a download's own path check refuses this
    first): a level that links to a file inside the folder is named as not a folder."""
    (tmp_path / "file.txt").write_text("a file")
    link = tmp_path / "album"
    link.symlink_to(tmp_path / "file.txt")
    with pytest.raises(StorageError) as info:
        make_dirs_inside(tmp_path, tmp_path / "album" / "disc 1")
    assert (info.value.path, str(info.value)) == (str(link), f"{str(link)!r} is not a folder")
    assert (tmp_path / "file.txt").read_text() == "a file"


def test_a_fifo_at_the_final_path_never_hangs(server: TestServer, out_dir: Path) -> None:
    body = make_body(10_000)
    server.add(PATH, body)
    os.mkfifo(out_dir / NAME)
    with HttpDownloader(make_config(out_dir)) as http:
        content = http.get_download_info(server.url(PATH))
        content.checksum = f"sha256:{sha(body)}"  # skip would read the file to compare
        result = http.download(content)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, TargetExistsError)
    assert "not a regular file" in str(result.error)


def test_a_fifo_at_the_temporary_name_never_hangs(server: TestServer, out_dir: Path) -> None:
    server.add(PATH, make_body(10_000))
    part = part_path(out_dir / NAME, key(server))
    os.mkfifo(part)
    result = download(server, out_dir, max_retries=0)
    assert result.status is ResultStatus.FAILED
    error = result.error
    assert isinstance(error, StorageError)
    assert str(error) == f"refusing {str(part)!r}: it is not a regular file (a FIFO)"
    assert error.path == str(part)


@pytest.mark.parametrize("policy", [OverwritePolicy.SKIP, OverwritePolicy.ERROR])
def test_a_folder_or_dangling_link_at_the_final_path_is_left_alone(
    server: TestServer, out_dir: Path, policy: OverwritePolicy
) -> None:
    server.add(PATH, make_body(10_000))
    server.add("/other.flac", make_body(10_000, seed=1))
    (out_dir / NAME).mkdir()
    (out_dir / "other.flac").symlink_to(out_dir / "missing")
    for path in (PATH, "/other.flac"):
        result = download(server, out_dir, path, overwrite=policy)
        assert result.status is ResultStatus.FAILED
        assert isinstance(result.error, TargetExistsError)
    assert (out_dir / NAME).is_dir()
    assert os.readlink(out_dir / "other.flac") == str(out_dir / "missing")


def test_rename_steps_around_a_dangling_link(server: TestServer, out_dir: Path) -> None:
    body = make_body(10_000)
    server.add(PATH, body)
    (out_dir / NAME).symlink_to(out_dir / "missing")
    result = download(server, out_dir, overwrite=OverwritePolicy.RENAME)
    assert result.file_path == out_dir / "track (1).flac"
    assert (out_dir / "track (1).flac").read_bytes() == body
    assert (out_dir / NAME).is_symlink()


def test_the_users_own_part_files_are_untouched(server: TestServer, out_dir: Path) -> None:
    body = make_body(20_000)
    server.add(PATH, body)
    (out_dir / f"{NAME}.part").write_bytes(b"mine")
    (out_dir / f"{NAME}.part.json").write_text('{"mine": true}')
    result = download(server, out_dir)
    assert result.status is ResultStatus.COMPLETED
    assert (out_dir / f"{NAME}.part").read_bytes() == b"mine"
    assert (out_dir / f"{NAME}.part.json").read_text() == '{"mine": true}'
    assert leftovers(out_dir) == []


@pytest.mark.parametrize("length", [232, 243])
def test_the_longest_names_download(server: TestServer, out_dir: Path, length: int) -> None:
    name = "n" * (length - len(".flac")) + ".flac"
    body = make_body(5_000)
    server.add(f"/{name}", body)
    result = download(server, out_dir, f"/{name}")
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / name).read_bytes() == body


# -- two runs at once -----------------------------------------------------------------------------


def test_a_path_locked_by_another_process_is_refused_with_a_clear_message(
    server: TestServer, out_dir: Path
) -> None:
    server.add(PATH, make_body(10_000))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from ripstream.downloader.safefs import PathLock\n"
            "lock = PathLock(pathlib.Path(sys.argv[1])); lock.acquire()\n"
            "print('held', flush=True); sys.stdin.read()\n",
            str(out_dir / NAME),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        result = download(server, out_dir, max_retries=0)
        assert result.status is ResultStatus.FAILED
        error = result.error
        assert isinstance(error, TargetExistsError)
        final = out_dir / NAME
        assert str(error) == (
            f"another RipStream process is writing {str(final)!r}; run again once it has finished"
        )
        assert error.path == str(final)
        assert not (out_dir / NAME).exists()
    finally:
        holder.communicate("", timeout=10)
    # the holder is gone: the next run gets the path, and leaves no lock behind
    again = download(server, out_dir)
    assert again.status is ResultStatus.COMPLETED
    assert leftovers(out_dir) == []


def test_a_lock_survives_its_file_being_replaced(tmp_path: Path) -> None:
    first = PathLock(tmp_path / "a.flac")
    first.acquire()
    with pytest.raises(TargetExistsError):
        PathLock(tmp_path / "a.flac").acquire()
    first.release()
    second = PathLock(tmp_path / "a.flac")
    second.acquire()
    second.release()
    assert list(tmp_path.iterdir()) == []


# -- bounds on what a peer controls ---------------------------------------------------------------


def test_half_a_gzip_stream_is_never_saved_as_complete(server: TestServer, out_dir: Path) -> None:
    body = make_body(300_000)
    server.add(
        PATH,
        body,
        faults=[Fault.gzip_encoding(), Fault.no_content_length(), Fault.drop_after(100_000)],
    )
    result = download(server, out_dir, max_retries=1)
    assert result.status is ResultStatus.FAILED
    assert "early" in str(result.error)
    assert not (out_dir / NAME).exists()


def test_a_gzip_body_is_decoded_exactly_when_whole(server: TestServer, out_dir: Path) -> None:
    body = make_body(300_000)
    server.add(PATH, body, faults=[Fault.gzip_encoding(), Fault.no_content_length()])
    result = download(server, out_dir)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)


def test_a_decompression_bomb_is_refused(server: TestServer, out_dir: Path) -> None:
    server.add(PATH, b"\0" * 20_000_000, faults=[Fault.gzip_encoding()])
    result = download(server, out_dir, max_retries=0)
    assert result.status is ResultStatus.FAILED
    assert "decompression bomb" in str(result.error)
    assert not (out_dir / NAME).exists()
    assert sum(p.stat().st_size for p in out_dir.iterdir()) < 4_000_000


@pytest.mark.parametrize("declared", [True, False])
def test_a_file_over_max_filesize_is_refused(
    server: TestServer, out_dir: Path, declared: bool
) -> None:
    faults = [] if declared else [Fault.no_content_length()]
    server.add(PATH, make_body(200_000), faults=faults)
    result = download(server, out_dir, max_filesize=50_000, max_retries=0)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, TooLargeError)
    assert not (out_dir / NAME).exists()
    if declared:  # refused from its Content-Length, before a byte was written
        assert leftovers(out_dir) == []


def test_an_endless_body_stops_before_the_disk_is_full(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    from ripstream.downloader.fetch import pump

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(pump, "_SPACE_STEP", 64 * 1024)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 1000, 1000))
    server.add(PATH, make_body(1_000_000), faults=[Fault.no_content_length()])
    result = download(server, out_dir, max_retries=0)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, StorageError)
    assert "nearly full" in str(result.error)
    assert not (out_dir / NAME).exists()


def test_a_content_range_total_of_2_to_the_63_is_a_typed_failure(
    server: TestServer, out_dir: Path
) -> None:
    server.add(PATH, make_body(200_000), faults=[Fault.wrong_range_total(total=str(2**63))])
    result = download(server, out_dir, segments=4, min_segment_size=32 * 1024, max_retries=0)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, DownloadError)
    assert not (out_dir / NAME).exists()
    assert sum(p.stat().st_size for p in out_dir.iterdir()) < 1_000_000  # no 2**63-byte file


# -- planted resume state, and the smallest body ------------------------------------------------


def test_a_fifo_at_the_resume_sidecar_never_hangs(server: TestServer, out_dir: Path) -> None:
    body = make_body(50_000, seed=43)
    server.add(PATH, body)
    part = part_path(out_dir / NAME, key(server))
    part.write_bytes(body[:10_000])
    os.mkfifo(sidecar_path(part))
    result = download(server, out_dir, max_retries=0)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)
    assert [r.range_header for r in server.requests_for(PATH)] == [None]  # nothing resumed


def test_a_resume_sidecar_that_is_a_symlink_is_not_trusted(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    body = make_body(200_000, seed=44)
    server.add(PATH, body)
    part = part_path(out_dir / NAME, key(server))
    part.write_bytes(body[:100_000])
    elsewhere = tmp_path / "elsewhere.json"
    state = {
        "source": "http",
        "content_id": server.url(PATH),
        "etag": server.resource(PATH).etag,
        "total": len(body),
    }
    elsewhere.write_text(json.dumps(state), encoding="utf-8")
    sidecar_path(part).symlink_to(elsewhere)  # a state that would hold, were links followed
    result = download(server, out_dir, max_retries=0)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)
    assert [r.range_header for r in server.requests_for(PATH)] == [None]
    assert result.resumed_from == 0
    assert json.loads(elsewhere.read_text(encoding="utf-8")) == state  # left as it was


def test_a_planted_file_is_read_only_when_regular_and_within_its_bound(tmp_path: Path) -> None:
    """``read_regular`` (how the resume sidecar is read): ``limit`` bytes are read whole, one
    more is refused, a symlink or FIFO is refused naming it, and a missing file is just missing."""
    planted = tmp_path / "state.json"
    planted.write_bytes(b"x" * 100)
    assert read_regular(planted, 100) == b"x" * 100
    planted.write_bytes(b"x" * 101)
    with pytest.raises(StorageError) as large:
        read_regular(planted, 100)
    assert (str(large.value), large.value.path) == (
        f"{str(planted)!r} is larger than 100 bytes",
        str(planted),
    )
    link = tmp_path / "link.json"
    link.symlink_to(planted)
    with pytest.raises(StorageError) as linked:
        read_regular(link, 1000)
    assert (str(linked.value), linked.value.path) == (
        f"cannot read {str(link)!r}: {os.strerror(errno.ELOOP)}",
        str(link),
    )
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(StorageError) as piped:
        read_regular(fifo, 1000)
    assert (str(piped.value), piped.value.path) == (
        f"refusing {str(fifo)!r}: it is not a regular file (a FIFO, device or folder)",
        str(fifo),
    )
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing.json", 1000)


def test_an_empty_body_makes_an_empty_file(server: TestServer, out_dir: Path) -> None:
    server.add(PATH, b"")
    result = download(server, out_dir, max_retries=0)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / NAME).read_bytes() == b""


def test_a_fifo_at_the_lock_name_is_refused_naming_it(server: TestServer, out_dir: Path) -> None:
    server.add(PATH, make_body(10_000, seed=45))
    lock = lock_path(out_dir / NAME)
    os.mkfifo(lock)
    result = download(server, out_dir, max_retries=0)
    error = result.error
    assert isinstance(error, StorageError), error
    assert str(error) == (
        f"refusing {str(lock)!r}: it is not a regular file (a FIFO, device or folder)"
    )
    assert error.path == str(lock)
    assert not (out_dir / NAME).exists()


def test_a_download_is_never_made_executable(server: TestServer, out_dir: Path) -> None:
    server.add(PATH, make_body(10_000, seed=46))
    result = download(server, out_dir, max_retries=0)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / NAME).stat().st_mode & 0o111 == 0


def test_a_lock_file_removed_while_it_is_taken_is_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "a.flac"
    real_flock = fcntl.flock
    removed: list[Path] = []

    def flock_after_the_holder_left(fd: int, operation: int) -> None:
        # the holder before us releases (and removes the file) between our open and our flock
        if not removed:
            lock_path(final).unlink()
            removed.append(lock_path(final))
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_holder_left)
    first = PathLock(final)
    first.acquire()
    monkeypatch.setattr(fcntl, "flock", real_flock)
    try:
        assert removed
        assert lock_path(final).exists()  # the lock held is on the file there now
        with pytest.raises(TargetExistsError):
            PathLock(final).acquire()  # so a second claim on the path is refused
    finally:
        first.release()


def test_the_lock_file_is_private_and_an_unheld_lock_releases_quietly(tmp_path: Path) -> None:
    final = tmp_path / "a.flac"
    PathLock(final).release()  # never taken (the claim failed): nothing to undo
    old = os.umask(0)
    try:
        lock = PathLock(final)
        lock.acquire()
    finally:
        os.umask(old)
    try:
        assert lock_path(final).stat().st_mode & 0o777 == 0o644
    finally:
        lock.release()
    assert list(tmp_path.iterdir()) == []


def test_a_lock_file_that_keeps_vanishing_is_a_typed_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "a.flac"
    real_flock = fcntl.flock

    def flock_after_a_removal(fd: int, operation: int) -> None:
        lock_path(final).unlink()  # every time, another holder removes the file first
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_removal)
    with pytest.raises(TargetExistsError) as info:
        PathLock(final).acquire()
    assert str(info.value) == f"cannot lock {str(final)!r}"
    assert info.value.path == str(final)


def test_a_file_where_a_folder_level_should_be_is_refused_naming_it(
    server: TestServer, out_dir: Path
) -> None:
    server.add(PATH, make_body(10_000, seed=49))
    album = out_dir / "album"
    album.write_bytes(b"not a folder")
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = http.download(http.get_download_info(server.url(PATH)), "album/track.flac")
    error = result.error
    assert isinstance(error, StorageError), error
    assert str(error) == f"{str(album)!r} is not a folder"
    assert error.path == str(album)
    assert album.read_bytes() == b"not a folder"


def test_a_symlink_planted_at_the_temporary_name_of_a_segmented_resume_is_never_followed(
    server: TestServer, tmp_path: Path
) -> None:
    # a resume state that matches the server's file, and the part's name a symlink to a file
    # of the same size: the parts must never be written through it
    out_dir, outside = tmp_path / "out", tmp_path / "precious.bin"
    out_dir.mkdir()
    body = make_body(300_000)
    resource = server.add(PATH, body)
    outside.write_bytes(b"k" * len(body))
    part = part_path(out_dir / NAME, key(server))
    part.symlink_to(outside)
    state = {
        "source": "http",
        "content_id": server.url(PATH),
        "etag": resource.etag,
        "total": len(body),
        "segments": [[0, 150_000, 0], [150_000, 300_000, 150_000]],
    }
    sidecar_path(part).write_text(json.dumps(state))
    result = download(server, out_dir, segments=2, min_segment_size=64 * 1024, max_retries=0)
    assert outside.read_bytes() == b"k" * len(body)
    assert result.status is ResultStatus.FAILED
    error = result.error
    assert isinstance(error, StorageError)
    assert str(error) == f"refusing {str(part)!r}: it is a symlink"
    assert not (out_dir / NAME).exists()


@pytest.mark.parametrize("segments", [1, 2])
def test_a_hard_link_planted_at_the_temporary_name_never_changes_the_other_file(
    server: TestServer, tmp_path: Path, segments: int
) -> None:
    # the part's name is another name of a file the user keeps: writing the part would
    # write that file, so the download is refused with the name, and the file is as it was
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    outside = out_dir / "precious.bin"
    body = make_body(300_000)
    server.add(PATH, body)
    outside.write_bytes(b"k" * 100_000)
    part = part_path(out_dir / NAME, key(server))
    os.link(outside, part)
    result = download(server, out_dir, segments=segments, min_segment_size=64 * 1024, max_retries=0)
    assert outside.read_bytes() == b"k" * 100_000
    assert result.status is ResultStatus.FAILED
    error = result.error
    assert isinstance(error, StorageError)
    assert str(error) == (
        f"refusing {str(part)!r}: it is a hard link, another name of a file "
        "that writing it would change"
    )
    assert error.path == str(part)
    assert not (out_dir / NAME).exists()


def test_a_kept_file_with_other_names_is_still_read_to_compare(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    # hard links are refused for writing only: a file already in place that a backup tool
    # also links elsewhere is read to compare with the checksum, and kept
    body = make_body(10_000)
    server.add(PATH, body)
    (out_dir / NAME).write_bytes(body)
    os.link(out_dir / NAME, tmp_path / "snapshot.flac")
    with HttpDownloader(make_config(out_dir)) as http:
        content = http.get_download_info(server.url(PATH))
        content.checksum = f"sha256:{sha(body)}"  # skip reads the file to compare
        result = http.download(content)
    assert result.status is ResultStatus.SKIPPED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)
    assert server.requests_for(PATH) == []
