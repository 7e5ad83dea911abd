"""Safe names, Content-Disposition, naming templates, path containment, atomic writes."""

from __future__ import annotations

import errno
import os
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ripstream.downloader import files
from ripstream.downloader.exceptions import ConfigError, StorageError
from ripstream.downloader.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_template,
    filename_from_content_disposition,
    filename_from_url,
    rename_no_clobber,
    render_template,
    resolve_inside,
    safe_filename,
    storage_error,
    template_fields,
    unique_path,
)
from ripstream.downloader.safefs import lock_path, open_binary, part_path
from tests.support.syncs import recorded_fsyncs

WINDOWS_RESERVED = {
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
    "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³",
}  # fmt: skip


def _is_windows_reserved(name: str) -> bool:
    return name.split(".", maxsplit=1)[0].rstrip(" ").upper() in WINDOWS_RESERVED


# -- safe_filename --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CON", "_CON"),
        ("con", "_con"),
        ("nul.txt", "_nul.txt"),
        ("COM1.mp3", "_COM1.mp3"),
        ("lpt9.tar.gz", "_lpt9.tar.gz"),
        ("aux .flac", "_aux .flac"),
        ("../../etc/passwd", "etc_passwd"),
        ("..\\..\\windows\\system32", "windows_system32"),
        ("a/b\\c", "a_b_c"),
        ('what? <a>|"b":*', "what_ _a_b"),
        ("tab\there\nnewline\x00nul\x7fdel", "tab_here_newline_nul_del"),
        (".hidden", "hidden"),
        ("trailing. . .", "trailing"),
        ("  spaced  ", "spaced"),
        ("Song (Live).mp3", "Song (Live).mp3"),
        ("Ünïcödé \u2013 ök.flac", "Ünïcödé \u2013 ök.flac"),
        ("CONSOLE.txt", "CONSOLE.txt"),  # only the exact device names are reserved
    ],
)
def test_safe_filename_examples(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


@pytest.mark.parametrize("name", ["", ".", "..", "...", " ", "/", "\\", "\x00", "_._", "._.", "_"])
def test_names_with_nothing_left_fall_back(name: str) -> None:
    assert safe_filename(name) == "download"
    assert safe_filename(name, fallback="track") == "track"


def test_leading_dots_behind_underscores_are_removed() -> None:
    # "_.CON" must not turn into a hidden ".CON" once the underscores are trimmed
    result = safe_filename("_.CON")
    assert not result.startswith(".")
    assert not _is_windows_reserved(result)


def test_c1_control_characters_are_replaced() -> None:
    result = safe_filename("a\x85b\x9bc.mp3")
    assert result == "a_b_c.mp3"


def test_decomposed_unicode_is_normalised_to_nfc() -> None:
    assert safe_filename("Cafe\u0301.mp3") == "Caf\u00e9.mp3"


def test_long_ascii_name_keeps_its_extension() -> None:
    result = safe_filename("x" * 300 + ".flac")
    assert result.endswith(".flac")
    assert len(result.encode("utf-8")) <= 255 - len(".resume.json")
    assert result.startswith("xxxx")


def test_long_multibyte_name_is_cut_on_a_character_boundary() -> None:
    name = "日本語の歌" * 40 + ".mp3"  # 3 bytes per character
    result = safe_filename(name)
    encoded = result.encode("utf-8")
    assert len(encoded) <= 243
    assert encoded.decode("utf-8") == result
    assert result.endswith(".mp3")
    assert result[:-4] == name[: len(result) - 4]  # a prefix of the original stem


def test_long_extension_is_not_kept_as_an_extension() -> None:
    result = safe_filename("a" * 300 + "." + "b" * 40)
    assert len(result.encode("utf-8")) <= 243
    assert result == ("a" * 300)[:243]


_name_chars = st.characters(codec="utf-8")


@settings(max_examples=400)
@given(st.text(_name_chars, max_size=300))
@example("_._")
@example("_.CON")
@example("\x85")
@example("CON" + "." + "x" * 300)
@example("é" * 200 + ".mp3")
def test_safe_filename_properties(name: str) -> None:
    result = safe_filename(name)
    assert result not in ("", ".", "..")
    assert "/" not in result
    assert "\\" not in result
    assert "\x00" not in result
    assert not any(unicodedata.category(ch) == "Cc" for ch in result), ascii(result)
    assert not result.startswith(".")
    assert not result.endswith((".", " "))
    assert not _is_windows_reserved(result), result
    encoded = result.encode("utf-8")
    assert len(encoded) <= 255
    assert encoded.decode("utf-8") == result
    # sanitising twice changes nothing
    assert safe_filename(result) == result


@given(
    st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=400),
    st.text(st.characters(categories=["Ll", "Nd"], max_codepoint=127), min_size=1, max_size=5),
)
def test_safe_filename_keeps_a_short_extension(stem: str, ext: str) -> None:
    result = safe_filename(f"{stem}.{ext}")
    assert result.endswith(f".{ext}")
    assert len(result.encode("utf-8")) <= 255


def test_surrogates_do_not_crash() -> None:
    # JSON metadata can carry lone surrogates ("\\ud800"); they cannot become a file name
    result = safe_filename("a\ud800b.mp3")
    assert result.encode("utf-8")
    assert result.endswith(".mp3")


# -- Content-Disposition ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="song.mp3"', "song.mp3"),
        ("attachment; filename=song.mp3", "song.mp3"),
        ('inline; filename="my song (live).flac"', "my song (live).flac"),
        ("attachment; filename*=UTF-8''%E2%82%AC%20rates.txt", "€ rates.txt"),
        ("attachment; filename*=iso-8859-1''%E9t%E9.mp3", "été.mp3"),
        ("attachment; filename*=utf-8'en'na%C3%AFve.ogg", "naïve.ogg"),
        # both present: filename* wins (RFC 6266 section 4.3), whichever comes first
        ("attachment; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC.txt", "€.txt"),
        ("attachment; filename*=UTF-8''%E2%82%AC.txt; filename=\"fallback.txt\"", "€.txt"),
        # hostile names keep only their last component
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="..\\..\\boot.ini"', "boot.ini"),
        ("attachment; filename*=UTF-8''..%2F..%2F.bashrc", ".bashrc"),
        ('attachment; filename="/abs/path/x.bin"', "x.bin"),
        ("attachment", None),
        ("", None),
        (None, None),
        ('attachment; filename=""', None),
        ('attachment; filename="dir/"', None),
        # bytes that are not text in the declared charset: no name rather than a mangled one
        ("attachment; filename*=UTF-8''%FF%FE.flac", None),
    ],
)
def test_content_disposition(header: str | None, expected: str | None) -> None:
    assert filename_from_content_disposition(header) == expected


_header_text = st.text(st.characters(max_codepoint=0xFF), max_size=60)


@settings(max_examples=300)
@given(
    st.one_of(
        _header_text,
        st.builds(lambda v: f'attachment; filename="{v}"', _header_text),
        st.builds(
            lambda cs, v: f"attachment; filename*={cs}''{v}",
            st.sampled_from(["UTF-8", "utf-8", "iso-8859-1", "idna", "rot13", "bogus", ""]),
            _header_text,
        ),
        st.builds(
            lambda a, b: f"attachment; filename*0*={a}; filename*1*={b}", _header_text, _header_text
        ),
    )
)
def test_content_disposition_never_raises(header: str) -> None:
    name = filename_from_content_disposition(header)
    assert name is None or (name and "/" not in name and "\\" not in name)


# -- filename_from_url ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/music/track%2001.mp3", "track 01.mp3"),
        ("https://example.com/music/track.mp3?token=abc#frag", "track.mp3"),
        ("https://example.com/music/album/", "album"),
        ("https://example.com/", None),
        ("https://example.com", None),
        ("https://example.com/%E6%97%A5%E6%9C%AC.flac", "日本.flac"),
    ],
)
def test_filename_from_url(url: str, expected: str | None) -> None:
    assert filename_from_url(url) == expected


# -- render_template --------------------------------------------------------------------------


def test_template_renders_each_component() -> None:
    path = render_template(
        "{albumartist}/{album} ({year})/{tracknumber:02d} {title}.{ext}",
        {"albumartist": "Artist", "album": "Album", "year": 1999, "tracknumber": 7,
         "title": "Song", "ext": "flac"},
    )  # fmt: skip
    assert path == Path("Artist", "Album (1999)", "07 Song.flac")


def test_values_cannot_add_directories() -> None:
    path = render_template(
        "{artist}/{album}/{title}.mp3",
        {"artist": "AC/DC", "album": "../../..", "title": "../../etc/passwd"},
    )
    # the album level stays (with a neutral name); nothing climbs out of it
    assert path == Path("AC_DC", "download", "etc_passwd.mp3")
    assert ".." not in path.parts
    assert not path.is_absolute()


def test_missing_fields_render_empty_and_empty_parts_vanish() -> None:
    path = render_template("{artist}/{album} ({year})/{title}.{ext}",
                           {"title": "Song", "ext": "mp3"})  # fmt: skip
    assert path == Path("Song.mp3")
    path = render_template("{tracknumber:02d} - {title}", {"title": "Song"})
    assert path == Path("- Song")


def test_format_spec_that_does_not_fit_the_value_falls_back_to_text() -> None:
    assert render_template("{tracknumber:02d} {title}", {"tracknumber": "7", "title": "x"}) == Path(
        "7 x"
    )


def test_nothing_left_renders_the_fallback_name() -> None:
    assert render_template("{missing}", {}) == Path("download")
    assert render_template("/../", {}) == Path("download")


def test_absolute_template_stays_relative() -> None:
    path = render_template("/etc/{title}", {"title": "x"})
    assert path == Path("etc", "x")


@pytest.mark.parametrize("template", ["{title", "{0}", "{title.missing}", "{title!z}"])
def test_malformed_template_is_a_config_error(template: str) -> None:
    with pytest.raises(ConfigError) as info:
        render_template(template, {"title": "x"})
    assert info.value.field == "filename_template"
    assert template in str(info.value)


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["artist", "album", "title", "ext"]),
                       st.text(max_size=40), max_size=4))  # fmt: skip
def test_rendered_paths_always_stay_inside_the_output_folder(values: dict[str, str]) -> None:
    path = render_template("{artist}/{album}/{title}.{ext}", values)
    assert not path.is_absolute()
    assert all(part not in ("", ".", "..") for part in path.parts)
    assert len(path.parts) <= 3
    base = Path("/srv/music")
    assert resolve_inside(base, path).is_relative_to(base)


# -- resolve_inside, unique_path, part_path, atomic_write_text ------------------------------


def test_resolve_inside_joins_normal_paths(tmp_path: Path) -> None:
    assert resolve_inside(tmp_path, "a/b.mp3") == tmp_path.resolve() / "a" / "b.mp3"
    assert resolve_inside(tmp_path, Path("x/../y.mp3")) == tmp_path.resolve() / "y.mp3"


@pytest.mark.parametrize("relative", ["../evil.sh", "a/../../evil.sh", "/etc/passwd", ".", ""])
def test_resolve_inside_refuses_escapes(tmp_path: Path, relative: str) -> None:
    with pytest.raises(StorageError) as info:
        resolve_inside(tmp_path / "out", relative)
    assert info.value.path == relative


def test_resolve_inside_refuses_a_symlink_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path)
    with pytest.raises(StorageError):
        resolve_inside(out, "link/x.mp3")


def test_unique_path(tmp_path: Path) -> None:
    target = tmp_path / "song.mp3"
    assert unique_path(target) == target
    target.write_bytes(b"x")
    assert unique_path(target) == tmp_path / "song (1).mp3"
    (tmp_path / "song (1).mp3").write_bytes(b"x")
    assert unique_path(target) == tmp_path / "song (2).mp3"
    # names already promised to another download count as taken
    assert unique_path(target, {tmp_path / "song (2).mp3"}) == tmp_path / "song (3).mp3"
    assert unique_path(tmp_path / "new.mp3", {tmp_path / "new.mp3"}) == tmp_path / "new (1).mp3"


def test_part_path_is_beside_the_final_file_and_owned_by_ripstream(tmp_path: Path) -> None:
    part = part_path(tmp_path / "a.mp3", ("http", "https://host/a.mp3"))
    assert part.parent == tmp_path
    # a leading dot (safe_filename never makes one) and our suffix: no user's or server's name
    assert part.name.startswith(".a.mp3.")
    assert part.name.endswith(".ripstream-part")
    assert part == part_path(tmp_path / "a.mp3", ("http", "https://host/a.mp3"))  # resumable
    assert part != part_path(tmp_path / "a.mp3", ("http", "https://host/b.mp3"))
    assert safe_filename(part.name) != part.name


def test_temporary_names_of_the_longest_final_name_fit_the_file_system(tmp_path: Path) -> None:
    final = tmp_path / safe_filename("é" * 200 + ".flac")
    part = part_path(final, ("s", "id"))
    for name in (part.name, part.name + ".json", lock_path(final).name):
        assert len(name.encode("utf-8")) <= 255
        (tmp_path / name).write_bytes(b"x")  # the file system takes it


def test_atomic_write_text(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "state.json"
    atomic_write_text(target, "first ✓\n")
    assert target.read_text(encoding="utf-8") == "first ✓\n"
    atomic_write_text(target, "second\n", fsync=False)
    assert target.read_text(encoding="utf-8") == "second\n"
    assert os.listdir(target.parent) == ["state.json"]  # no temporary left behind


def test_an_atomic_write_is_synced_by_default_under_a_hidden_name_beside_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    target.write_text("old", encoding="utf-8")
    seen: list[tuple[list[str], str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # what a power cut at the sync would leave
        seen.append((sorted(os.listdir(tmp_path)), target.read_text(encoding="utf-8")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_text(target, "new")
    ((names, content),) = seen  # synced once, by default, before the rename
    assert content == "old"
    (temporary,) = [name for name in names if name != "state.json"]
    assert temporary.startswith(".state.json.")
    assert temporary.endswith(".tmp")
    assert target.read_text(encoding="utf-8") == "new"
    assert os.listdir(tmp_path) == ["state.json"]


def test_an_atomic_write_syncs_only_when_asked_and_takes_the_mode_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = recorded_fsyncs(monkeypatch)
    target = tmp_path / "state.json"
    atomic_write_text(target, "not synced", fsync=False)
    atomic_write_bytes(target, b"\x00raw", fsync=False, mode=0o640)
    assert synced == []
    assert target.read_bytes() == b"\x00raw"
    assert target.stat().st_mode & 0o777 == 0o640  # as asked (a copy keeps its file's mode)
    atomic_write_bytes(target, b"synced")
    (temporary,) = synced  # by default, once, under the temporary name
    assert Path(temporary).name.startswith(".state.json.")
    assert target.read_bytes() == b"synced"
    assert target.stat().st_mode & 0o777 == 0o600  # no mode asked: private
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_new_part_that_cannot_be_created_is_the_storage_error_of_its_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # creating a new part fails for a reason other than "something is there": that reason
    # is the error, naming the part, with no second (careful) open that could succeed
    part = tmp_path / "song.flac.part"
    real = os.open

    def read_only(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(path) == str(part) and flags & os.O_EXCL:  # the creation of a new file
            raise OSError(errno.EROFS, "Read-only file system")
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(StorageError) as info:
        open_binary(part, write=True)
    assert str(info.value) == f"cannot write {str(part)!r}: the file system is read-only"
    assert info.value.path == str(part)
    assert not part.exists()


def test_a_temporary_that_cannot_be_removed_does_not_hide_the_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    def busy(*args: object) -> None:
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))

    monkeypatch.setattr(os, "replace", refuse)  # the rename fails ...
    monkeypatch.setattr(os, "unlink", busy)  # ... and so does the cleanup
    with pytest.raises(PermissionError) as caught:
        atomic_write_text(tmp_path / "state.json", "new")
    assert caught.value.errno == errno.EACCES
    assert not (tmp_path / "state.json").exists()


def test_atomic_write_failure_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "bad \ud800 text")
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["state.json"]


def test_rename_no_clobber_moves_and_never_replaces(tmp_path: Path) -> None:
    source, taken, free = tmp_path / "new.part", tmp_path / "mine.flac", tmp_path / "free.flac"
    source.write_bytes(b"new bytes")
    taken.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError):
        rename_no_clobber(source, taken)
    assert taken.read_bytes() == b"the user's file"
    assert source.read_bytes() == b"new bytes"  # still there, to be kept or retried
    rename_no_clobber(source, free)
    assert free.read_bytes() == b"new bytes"
    assert not source.exists()


# -- the moves and writes when the system differs --------------------------------------------


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on another file system than ``tmp_path`` (tmpfs), removed afterwards."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system")
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder)


@pytest.fixture
def no_renameat2(monkeypatch: pytest.MonkeyPatch) -> None:
    """A system without ``renameat2`` (macOS, old glibc): the link-and-unlink fallback."""
    monkeypatch.setattr(files, "_renameat2", lambda: None)


@pytest.mark.parametrize("fallback", [False, True])
def test_a_move_onto_an_existing_file_says_which_and_moves_nothing(
    tmp_path: Path, fallback: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fallback:
        monkeypatch.setattr(files, "_renameat2", lambda: None)
    source, taken = tmp_path / "new.part", tmp_path / "mine.flac"
    source.write_bytes(b"new bytes")
    taken.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError) as caught:
        rename_no_clobber(source, taken)
    named = f"{str(source)!r} -> {str(taken)!r}" if fallback else repr(str(taken))
    assert str(caught.value) == f"[Errno {errno.EEXIST}] {os.strerror(errno.EEXIST)}: {named}"
    assert taken.read_bytes() == b"the user's file"
    assert source.read_bytes() == b"new bytes"


@pytest.mark.usefixtures("no_renameat2")
def test_without_renameat2_a_move_still_lands_whole(tmp_path: Path) -> None:
    source, target = tmp_path / "new.part", tmp_path / "song.flac"
    source.write_bytes(b"new bytes")
    rename_no_clobber(source, target)
    assert target.read_bytes() == b"new bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.flac"]


def test_a_move_of_a_missing_file_names_the_target(tmp_path: Path) -> None:
    target = tmp_path / "song.flac"
    with pytest.raises(OSError) as caught:
        rename_no_clobber(tmp_path / "gone.part", target)
    assert (caught.value.errno, caught.value.filename) == (errno.ENOENT, str(target))
    assert caught.value.strerror == os.strerror(errno.ENOENT)
    # not a FileExistsError: the caller would report "a file appeared at the target"
    assert type(caught.value) is FileNotFoundError


def test_a_move_between_relative_paths_is_relative_to_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("new.part").write_bytes(b"new bytes")
    rename_no_clobber(Path("new.part"), Path("song.flac"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.flac"]
    assert (tmp_path / "song.flac").read_bytes() == b"new bytes"


@pytest.fixture
def no_hard_links(no_renameat2: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount without hard links that refuses a link before it looks at the name (some
    FUSE and network file systems): ``link`` fails with EPERM even onto an existing name."""

    def refuse(source: object, target: object) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(source))

    monkeypatch.setattr(os, "link", refuse)


@pytest.mark.usefixtures("no_hard_links")
def test_without_hard_links_a_move_never_clobbers_and_says_the_target_exists(
    tmp_path: Path,
) -> None:
    source, taken = tmp_path / "new.part", tmp_path / "mine.flac"
    source.write_bytes(b"new bytes")
    taken.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError) as caught:
        rename_no_clobber(source, taken)
    error = caught.value
    assert (error.errno, error.strerror, error.filename) == (
        errno.EEXIST,
        os.strerror(errno.EEXIST),
        str(taken),
    )
    assert taken.read_bytes() == b"the user's file"
    assert source.read_bytes() == b"new bytes"
    free = tmp_path / "free.flac"
    rename_no_clobber(source, free)  # a free name: a plain rename
    assert free.read_bytes() == b"new bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["free.flac", "mine.flac"]


@pytest.mark.usefixtures("no_renameat2")
def test_without_renameat2_a_move_across_file_systems_never_clobbers(
    tmp_path: Path, other_fs: Path
) -> None:
    source, taken = other_fs / "new.part", tmp_path / "mine.flac"
    source.write_bytes(b"new bytes")
    taken.write_bytes(b"the user's file")
    with pytest.raises(FileExistsError):
        rename_no_clobber(source, taken)
    assert taken.read_bytes() == b"the user's file"
    free = tmp_path / "free.flac"
    with pytest.raises(OSError) as crossing:  # no link, no rename across file systems
        rename_no_clobber(source, free)
    assert crossing.value.errno == errno.EXDEV
    assert source.read_bytes() == b"new bytes"


def test_an_atomic_write_works_when_the_temporary_folder_is_elsewhere(
    tmp_path: Path, other_fs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(other_fs))  # TMPDIR on another file system
    target = tmp_path / "state.json"
    atomic_write_text(target, "whole\n")
    assert target.read_text(encoding="utf-8") == "whole\n"
    assert os.listdir(other_fs) == []


# -- names from URLs, templates, storage errors ------------------------------------------------


def test_a_url_name_ending_in_x_is_kept_whole() -> None:
    assert filename_from_url("http://h/mixes/MIX") == "MIX"
    assert filename_from_url("http://h/a/b/c.flac/") == "c.flac"


def test_template_rendering_collapses_blanks_and_empty_brackets() -> None:
    values = {"artist": "A  B", "title": "Song", "year": None}
    assert render_template("{artist}\\{title} [{year}] ({year})", values) == Path("A B/Song")
    assert render_template("{artist}/[{year}]/{title}", values) == Path("A B/Song")
    assert render_template("--/{title}", values) == Path("Song")


def test_a_malformed_template_is_a_config_error_naming_it() -> None:
    for template in ("{title", "{title!x}"):
        with pytest.raises(ConfigError) as caught:
            render_template(template, {"title": "t"})
        assert (caught.value.field, caught.value.value) == ("filename_template", template)
        with pytest.raises(ConfigError) as checked:
            check_template(template)
        assert (checked.value.field, checked.value.value) == ("filename_template", template)
        assert str(checked.value).startswith(f"filename template {template!r} is malformed: ")


def test_an_unknown_template_field_is_named_with_the_valid_ones() -> None:
    check_template("{albumartist}/{album} ({year})/{tracknumber:02d} {title}.{ext}")
    with pytest.raises(ConfigError) as caught:
        check_template("{artist}/{tilte}.{ext}", known=("artist", "ext", "title"))
    assert str(caught.value) == (
        "unknown field {tilte} in the naming template '{artist}/{tilte}.{ext}'; "
        "valid fields: {artist}, {ext}, {title}"
    )
    assert (caught.value.field, caught.value.value) == (
        "filename_template",
        "{artist}/{tilte}.{ext}",
    )
    with pytest.raises(ConfigError, match=r"unknown field \{\} \(an empty field\)"):
        check_template("{}/{title}")
    assert template_fields("{a}/{b:02d} {c.x}{d[0]} {{e}}") == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("code", "what"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EDQUOT, "the disk is full"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
        (errno.EPERM, "permission denied"),
        (errno.EFBIG, "the file is larger than this file system or limit allows"),
        (errno.ENAMETOOLONG, "the name is too long"),
        (errno.EIO, os.strerror(errno.EIO)),
    ],
)
def test_a_write_failure_says_what_happened_in_words(code: int, what: str) -> None:
    error = storage_error(OSError(code, os.strerror(code)), Path("/music/a.flac"), url="http://h/a")
    assert str(error) == f"cannot write '/music/a.flac': {what}"
    assert (error.path, error.url) == ("/music/a.flac", "http://h/a")
    assert str(storage_error(OSError("odd"), Path("/x"))) == "cannot write '/x': odd"


# -- the edges of safe_filename, resolve_inside and unique_path --------------------------------

LIMIT = 255 - len(".resume.json")  # room left for the longest temporary suffix


def test_a_name_of_exactly_the_limit_is_kept_whole() -> None:
    name = "a" * (LIMIT - 4) + ".mp3"
    assert safe_filename(name) == name
    assert safe_filename("b" + name) == "b" + "a" * (LIMIT - 5) + ".mp3"  # one over: trimmed


def test_a_trimmed_name_keeps_an_extension_of_up_to_16_bytes_and_only_the_last() -> None:
    assert safe_filename("x" * 300 + "." + "e" * 16).endswith("x." + "e" * 16)
    assert safe_filename("x" * 300 + "." + "e" * 17) == ("x" * 300 + "." + "e" * 17)[:LIMIT]
    kept = safe_filename("x" * 300 + ".tar.gz")
    assert kept == "x" * (LIMIT - 3) + ".gz"
    long_ext = safe_filename("a." + "b" * 300)
    assert long_ext == ("a." + "b" * 300)[:LIMIT]


def test_a_trim_never_leaves_a_space_or_dot_before_the_extension() -> None:
    assert safe_filename("a" * (LIMIT - 5) + " " + "b" * 50 + ".mp3") == "a" * (LIMIT - 5) + ".mp3"


def test_a_long_reserved_name_keeps_its_guard() -> None:
    kept = safe_filename("CON." + "x" * 300 + ".mp3")
    assert kept.startswith("_CON.x")
    assert kept.endswith("x.mp3")
    assert len(kept.encode("utf-8")) == LIMIT


def test_double_dots_inside_a_name_become_one_underscore() -> None:
    assert safe_filename("a..b.mp3") == "a_b.mp3"
    assert safe_filename("a_.._b....c.flac") == "a_b_c.flac"
    assert safe_filename("CON\u00a0.mp3") == "CON\u00a0.mp3"  # Windows trims only ASCII spaces


def test_an_output_folder_reached_through_a_symlink_is_used_as_it_is(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "album").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert resolve_inside(link, "album/a.flac") == real / "album" / "a.flac"


def test_dot_dot_is_refused_even_through_a_link_back_inside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (tmp_path / "back").symlink_to(out / "sub")  # outside, pointing back in
    with pytest.raises(StorageError) as caught:
        resolve_inside(out, "../back/a.flac")
    assert str(caught.value) == f"refusing to write '../back/a.flac': it is outside {str(out)!r}"
    assert caught.value.path == "../back/a.flac"
    with pytest.raises(StorageError) as itself:
        resolve_inside(out, "sub/..")
    assert str(itself.value) == "'sub/..' names the output folder itself, not a file"


def test_a_name_with_ten_thousand_copies_taken_is_a_storage_error(tmp_path: Path) -> None:
    final = tmp_path / "song.flac"
    taken = {final} | {tmp_path / f"song ({n}).flac" for n in range(1, 10_000)}
    with pytest.raises(StorageError) as caught:
        unique_path(final, taken)
    assert str(caught.value) == f"no free name for {str(final)!r}"
    assert caught.value.path == str(final)


def test_a_folder_named_only_with_letters_x_is_kept() -> None:
    assert render_template("{artist}/{title}", {"artist": "XX", "title": "Song"}) == Path("XX/Song")


_FIELD_NAMES = [
    "title",
    "album",
    "tracknumber",
    "year",
    "missing",
    "título",
    "0",
    "",
    "a.b",
    "a[0]",
]
_template_piece = st.lists(
    st.one_of(
        st.text(alphabet="ab -_().", max_size=4),
        st.just("{{"),
        st.just("}}"),
        st.builds(
            lambda name, conversion, spec: (
                "{" + name + conversion + (":" + spec if spec else "") + "}"
            ),
            st.sampled_from(_FIELD_NAMES),
            st.sampled_from(["", "!s", "!r", "!x"]),
            st.sampled_from(["", ">4", "02d", ".2", "x<3", "{year}", ".2f"]),
        ),
    ),
    max_size=4,
).map("".join)


def _reference(piece: str, values: dict[str, object]) -> str | type[Exception]:
    """The formatter itself, as names were rendered before they were parsed once."""
    try:
        return files._Template().format(piece, **values)
    except Exception as exc:  # noqa: BLE001 - the kind of error is compared
        return type(exc)


@settings(max_examples=300, deadline=None)
@example("{title:>{year}}", {"title": "ab", "year": 5})  # a nested spec: the whole formatter
@example("{title!r:.3}-{album}", {"title": "abcdef", "album": None})
@given(
    _template_piece,
    st.dictionaries(
        st.sampled_from(["title", "album", "tracknumber", "year", "título"]),
        st.none() | st.text(max_size=5) | st.integers(-5, 2000) | st.floats(0, 10),
    ),
)
def test_a_naming_template_renders_as_the_formatter_renders_it(
    piece: str, values: dict[str, object]
) -> None:
    expected = _reference(piece, values)
    try:
        got: str | type[Exception] = files._render(files._Template(), piece, values)
    except Exception as exc:  # noqa: BLE001 - the kind of error is compared
        got = type(exc)
    assert got == expected
