"""The package's metadata as pip builds it from setup.cfg: one canonical repository URL behind
every project URL, and the requirements that the proxy and TLS support rest on."""

from __future__ import annotations

import configparser
import importlib.metadata
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ripstream import __version__

ROOT = Path(__file__).resolve().parents[1]


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def listed(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def test_every_project_url_is_under_the_one_repository() -> None:
    metadata = setup_cfg()["metadata"]
    home = metadata["url"]
    assert urlsplit(home).scheme == "https"
    assert len(urlsplit(home).path.strip("/").split("/")) == 2  # https://HOST/OWNER/NAME
    urls = dict(line.split(" = ", 1) for line in listed(metadata["project_urls"]))
    assert set(urls) >= {"Source", "Documentation", "Changelog", "Issues"}
    assert urls["Source"] == home
    for name, url in urls.items():
        assert url == home or url.startswith(home + "/"), (name, url)
    # the documents the URLs point at are in this repository
    for name in ("Documentation", "Changelog"):
        assert (ROOT / urls[name].rsplit("/", 1)[1]).is_file()
    assert "example" not in home
    assert "your" not in home.lower()


def test_socks_and_the_test_servers_dependencies_are_declared() -> None:
    options = setup_cfg()["options"]
    requires = [
        line.split(">", 1)[0].split("=", 1)[0] for line in listed(options["install_requires"])
    ]
    assert "PySocks" in requires  # socks5:// and socks5h:// proxies (requests[socks])
    extras = setup_cfg()["options.extras_require"]
    test_extra = [line.split(">", 1)[0].split("=", 1)[0] for line in listed(extras["test"])]
    assert "trustme" in test_extra  # the private CA of tests/support/tls.py


def test_the_installed_metadata_says_the_same() -> None:
    """pip install . (as .ci/run does) carries the URLs into the installed metadata."""
    try:
        installed = importlib.metadata.metadata("ripstream")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("ripstream is not installed (only on the path)")
    if installed["Version"] != __version__:
        pytest.skip("an installed ripstream of another version")
    home = setup_cfg()["metadata"]["url"]
    project_urls = installed.get_all("Project-URL") or []
    assert project_urls
    assert all(entry.split(", ", 1)[1].startswith(home) for entry in project_urls)
