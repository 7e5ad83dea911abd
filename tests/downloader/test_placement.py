"""Placement: path claims within a run, the overwrite decision, and the no-clobber move."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from ripstream.downloader import placement
from ripstream.downloader.config import OverwritePolicy
from ripstream.downloader.content import Checksum
from ripstream.downloader.exceptions import StorageError, TargetExistsError
from ripstream.downloader.placement import (
    Claim,
    PathClaims,
    Skip,
    WriteTo,
    decide_existing,
    discard_part,
    file_digest,
    move_into_place,
)
from ripstream.downloader.safefs import lock_path
from ripstream.downloader.state import sidecar_path
from tests.support.clock import FakeClock
from tests.support.settings import fast_settings


def checksum_of(data: bytes) -> Checksum:
    return Checksum.parse(f"sha256:{hashlib.sha256(data).hexdigest()}")


def test_a_path_is_claimed_once_per_run(tmp_path: Path) -> None:
    claims = PathClaims()
    path = tmp_path / "a.flac"
    claims.claim(path, source="http")
    with pytest.raises(TargetExistsError, match="another download in this run") as info:
        claims.claim(path, source="other")
    assert info.value.source == "other"
    claims.move(path, tmp_path / "b.flac")
    assert claims.snapshot() == {tmp_path / "b.flac"}
    claims.claim(path)  # released by the move
    claims.release(path)
    claims.release(path)  # twice is fine
    assert claims.snapshot() == {tmp_path / "b.flac"}


def test_a_missing_file_is_written(tmp_path: Path) -> None:
    final = tmp_path / "new.flac"
    assert decide_existing(final, fast_settings(), None, set()) == WriteTo(final)


def test_policies_for_an_existing_file(tmp_path: Path) -> None:
    final = tmp_path / "song.flac"
    final.write_bytes(b"mine")
    decide = decide_existing
    assert decide(final, fast_settings(), None, set()) == Skip(final, "already exists", 4)
    assert decide(final, fast_settings(), checksum_of(b"mine"), set()) == Skip(
        final, "already exists", 4
    )
    with pytest.raises(TargetExistsError, match="different content"):
        decide(final, fast_settings(), checksum_of(b"other"), set())
    overwrite = fast_settings(overwrite=OverwritePolicy.OVERWRITE)
    assert decide(final, overwrite, None, set()) == WriteTo(final)
    rename = fast_settings(overwrite=OverwritePolicy.RENAME)
    renamed = decide(final, rename, None, {tmp_path / "song (1).flac"})
    assert renamed == WriteTo(tmp_path / "song (2).flac")  # the claimed name is avoided too
    with pytest.raises(TargetExistsError, match="already exists"):
        decide(final, fast_settings(overwrite=OverwritePolicy.ERROR), None, set())


def test_the_move_never_clobbers_a_file_that_appeared(tmp_path: Path) -> None:
    part, final = tmp_path / "song.flac.part", tmp_path / "song.flac"
    part.write_bytes(b"downloaded")
    sidecar_path(part).write_text("{}")
    final.write_bytes(b"the user's")
    with pytest.raises(TargetExistsError, match="appeared while downloading"):
        move_into_place(part, final, fast_settings())
    assert final.read_bytes() == b"the user's"
    assert part.read_bytes() == b"downloaded"  # kept
    move_into_place(part, final, fast_settings(overwrite=OverwritePolicy.OVERWRITE))
    assert final.read_bytes() == b"downloaded"
    assert not part.exists()
    assert not sidecar_path(part).exists()


def test_a_plain_move_with_fsync(tmp_path: Path) -> None:
    part, final = tmp_path / "a.part", tmp_path / "a"
    part.write_bytes(b"x" * 10)
    move_into_place(part, final, fast_settings(fsync=True))
    assert final.read_bytes() == b"x" * 10


def test_discard_part_removes_the_part_and_its_sidecar(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    part.write_bytes(b"x")
    sidecar_path(part).write_text("{}")
    discard_part(part)
    discard_part(part)  # nothing left: no error
    assert list(tmp_path.iterdir()) == []


def test_file_digest(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    assert file_digest(path, checksum_of(b"hello")) == hashlib.sha256(b"hello").hexdigest()
    md5 = Checksum.parse("md5:" + "0" * 32)
    assert file_digest(path, md5) == hashlib.md5(b"hello").hexdigest()


# -- what each refusal says, and claims given back -------------------------------------------


def _refusal(final: Path, policy: OverwritePolicy, expected: Checksum | None = None) -> str:
    with pytest.raises(TargetExistsError) as caught:
        decide_existing(final, fast_settings(overwrite=policy), expected, set(), source="src")
    assert caught.value.path == str(final)
    if not final.is_dir():  # a folder is refused before the source is known
        assert caught.value.source == "src"
    return str(caught.value)


def test_each_refusal_names_the_path_and_what_to_do(tmp_path: Path) -> None:
    folder = tmp_path / "song.flac"
    folder.mkdir()
    assert _refusal(folder, OverwritePolicy.SKIP) == (
        f"{str(folder)!r} is a folder; choose another name or rename"
    )
    link = tmp_path / "link.flac"
    link.symlink_to(tmp_path / "elsewhere")
    assert _refusal(link, OverwritePolicy.SKIP) == (
        f"{str(link)!r} is a symlink; it is left alone (choose rename or overwrite)"
    )
    fifo = tmp_path / "pipe.flac"
    os.mkfifo(fifo)
    assert _refusal(fifo, OverwritePolicy.SKIP) == (
        f"{str(fifo)!r} is not a regular file; it is left alone (choose rename or overwrite)"
    )
    assert decide_existing(fifo, fast_settings(overwrite=OverwritePolicy.OVERWRITE), None, set())
    mine = tmp_path / "mine.flac"
    mine.write_bytes(b"mine")
    assert _refusal(mine, OverwritePolicy.SKIP, checksum_of(b"other")) == (
        f"{str(mine)!r} exists with different content; keep it, or choose overwrite or rename"
    )
    assert _refusal(mine, OverwritePolicy.ERROR) == f"{str(mine)!r} already exists"


def test_a_file_that_appeared_is_named_and_a_failed_move_is_a_storage_error(
    tmp_path: Path,
) -> None:
    part, final = tmp_path / "song.part", tmp_path / "song.flac"
    part.write_bytes(b"downloaded")
    final.write_bytes(b"the user's")
    with pytest.raises(TargetExistsError) as caught:
        move_into_place(part, final, fast_settings())
    assert str(caught.value) == (
        f"{str(final)!r} appeared while downloading; the new file is kept as {str(part)!r}"
    )
    assert caught.value.path == str(final)
    gone = tmp_path / "gone.part"
    with pytest.raises(StorageError) as failed:
        move_into_place(gone, tmp_path / "new.flac", fast_settings())
    assert failed.value.path == str(tmp_path / "new.flac")
    assert str(failed.value).startswith(f"cannot write {str(tmp_path / 'new.flac')!r}: ")


def test_a_claim_is_given_back_on_every_way_out(tmp_path: Path) -> None:
    claims, base = PathClaims(), tmp_path / "out"
    first, second = base / "a" / "b" / "one.flac", base / "a" / "two.flac"
    with Claim(claims, first, "src", base) as claim:
        assert first.parent.is_dir()  # the folders are made, two levels deep
        with pytest.raises(TargetExistsError) as taken:
            claims.claim(first, source="other")
        assert str(taken.value) == f"another download in this run also writes {str(first)!r}"
        assert (taken.value.path, taken.value.source) == (str(first), "other")
        claim.move(second)
        assert claims.snapshot() == {second}
    assert claims.snapshot() == set()
    outside = tmp_path / "elsewhere" / "x" / "three.flac"
    with Claim(claims, outside, "src", base):
        assert outside.parent.is_dir()  # an absolute path the caller chose is theirs
    blocked = base / "file"
    blocked.write_text("not a folder")
    with pytest.raises(StorageError) as failed:
        Claim(claims, blocked / "sub" / "four.flac", "src", base)
    assert claims.snapshot() == set()
    assert failed.value.path is not None


def test_a_symlink_below_the_output_folder_never_leads_a_write_outside(tmp_path: Path) -> None:
    claims, base, outside = PathClaims(), tmp_path / "out", tmp_path / "outside"
    base.mkdir()
    outside.mkdir()
    (base / "link").symlink_to(outside)
    with pytest.raises(StorageError) as caught:
        Claim(claims, base / "link" / "album" / "song.flac", "src", base)
    assert str(caught.value) == (
        f"refusing {str(base / 'link')!r}: it is a symlink leading outside {str(base)!r}"
    )
    assert list(outside.iterdir()) == []  # not even a folder was made there
    assert claims.snapshot() == set()


def test_an_output_folder_that_cannot_be_made_is_a_storage_error_naming_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("not a folder")
    base = tmp_path / "file" / "out"
    with pytest.raises(StorageError) as caught:
        Claim(PathClaims(), base / "song.flac", "src", base)
    assert caught.value.path == str(base)


def test_a_claim_that_cannot_follow_a_new_name_keeps_the_old_one(tmp_path: Path) -> None:
    claims, base = PathClaims(), tmp_path / "out"
    (base / "blocked").mkdir(parents=True)
    (base / "blocked" / "sub").write_text("a file where a folder should be")
    with Claim(claims, base / "song.flac", "src", base) as claim:
        with pytest.raises(StorageError):
            claim.move(base / "blocked" / "sub" / "song.flac")
        assert claims.snapshot() == {base / "song.flac"}
        with pytest.raises(TargetExistsError) as taken:
            claims.move(base / "other.flac", base / "song.flac", source="src2")
        assert taken.value.source == "src2"
        with pytest.raises(TargetExistsError) as again:
            Claim(claims, base / "song.flac", "src3", base)
        assert again.value.source == "src3"
        claims.claim(base / "busy.flac")
        with pytest.raises(TargetExistsError) as busy:
            claim.move(base / "busy.flac")
        assert busy.value.source == "src"
        claims.release(base / "busy.flac")
    assert claims.snapshot() == set()


def test_a_folder_made_lately_is_made_again_when_it_went_away(tmp_path: Path) -> None:
    claims, base = PathClaims(clock=FakeClock()), tmp_path / "out"
    album = base / "artist" / "album"
    with Claim(claims, album / "one.flac", "src", base):
        assert claims.folder_ready(album)
    shutil.rmtree(base)  # the user cleaned up while the run went on
    with Claim(claims, album / "two.flac", "src", base):
        assert album.is_dir()
    assert claims.snapshot() == set()


def test_a_folder_is_checked_again_once_its_check_is_old(tmp_path: Path) -> None:
    clock = FakeClock()
    claims, base, outside = PathClaims(clock=clock), tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    with Claim(claims, base / "album" / "one.flac", "src", base):
        pass
    clock.now += placement.FOLDER_FRESH
    assert not claims.folder_ready(base / "album")
    shutil.rmtree(base / "album")
    (base / "album").symlink_to(outside)  # planted between two files of the run
    with pytest.raises(StorageError) as caught:
        Claim(claims, base / "album" / "two.flac", "src", base)
    assert "symlink leading outside" in str(caught.value)
    assert list(outside.iterdir()) == []
    assert claims.snapshot() == set()


def test_a_lock_failure_other_than_a_missing_folder_is_the_error(tmp_path: Path) -> None:
    claims, base = PathClaims(clock=FakeClock()), tmp_path / "out"
    with Claim(claims, base / "one.flac", "src", base):
        pass
    lock_path(base / "two.flac").mkdir()  # where the lock file goes: not a regular file
    with pytest.raises(StorageError) as caught:
        Claim(claims, base / "two.flac", "src", base)
    assert (
        str(caught.value) == f"cannot write {str(lock_path(base / 'two.flac'))!r}: Is a directory"
    )
    assert claims.snapshot() == set()


def test_a_folder_that_cannot_be_made_is_named_where_it_failed(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    base = tmp_path / "file" / "out"  # the output folder cannot be made: a file is its parent
    with pytest.raises(StorageError) as below:
        Claim(PathClaims(), base / "artist" / "album" / "song.flac", "src", base)
    assert below.value.path == str(base)  # the output folder, not the album below it
    outside = tmp_path / "file" / "elsewhere"  # an absolute path the caller chose
    with pytest.raises(StorageError) as chosen:
        Claim(PathClaims(), outside / "song.flac", "src", tmp_path / "out")
    assert chosen.value.path == str(outside)  # its own folder, not the output folder
