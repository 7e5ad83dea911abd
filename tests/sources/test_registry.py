"""The source registry imports a built-in source only when a URL may be its own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ripstream.sources import HttpDownloader, load_registry
from ripstream.sources.internet_archive import InternetArchiveDownloader
from ripstream.sources.subsonic import SubsonicDownloader

CLAIMED = [
    ("subsonic://alice@music.example/song/42", SubsonicDownloader),
    ("SUBSONICS://music.example:4533/music/album/7/", SubsonicDownloader),
    ("  subsonic://music.example/playlist/9", SubsonicDownloader),
    ("https://archive.org/details/some-item", InternetArchiveDownloader),
    ("HTTP://WWW.ARCHIVE.ORG/download/some-item/a%20b.flac", InternetArchiveDownloader),
    ("https://example.com/archive.org/details/x.mp3", HttpDownloader),
    ("https://example.com/a.mp3", HttpDownloader),
]


@pytest.mark.parametrize(("url", "expected"), CLAIMED)
def test_each_url_goes_to_the_source_that_claims_it(url: str, expected: type) -> None:
    assert load_registry(plugins=False).for_url(url) is expected


@pytest.mark.parametrize(("url", "expected"), CLAIMED)
def test_the_lazy_test_lets_through_every_url_its_source_claims(url: str, expected: type) -> None:
    registry = load_registry(plugins=False)
    for lazy in registry.lazy.values():
        if lazy.load().claims_url(url):
            assert lazy.might_claim(url), (lazy.name, url)


def test_named_and_listed_sources_are_loaded_on_demand() -> None:
    registry = load_registry(plugins=False)
    assert registry.get("subsonic") is SubsonicDownloader
    assert [name for name, _ in registry] == ["http", "internet_archive", "subsonic"]


def test_a_run_of_plain_urls_imports_no_other_source() -> None:
    code = (
        "import sys\n"
        "from ripstream.sources import load_registry\n"
        "load_registry().for_url('https://example.com/a.flac')\n"
        "print(sorted(m for m in sys.modules if m.startswith('ripstream.sources.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "subsonic" not in out, out
    assert "internet_archive" not in out, out
