"""Source plugins: a real package with a ``ripstream.sources`` entry point, built and installed
in the test, shows up in ``ripstream sources`` and handles its URLs; a broken one is reported
without stopping the others."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.httpserver import TestServer, make_body

PLUGIN = '''
from typing import ClassVar
from ripstream.downloader import BaseDownloader, ContentType, DownloadableContent


class EchoSource(BaseDownloader):
    """Plays back echo://<host:port>/<name> from a plain HTTP server."""

    source_name: ClassVar[str] = "echo"
    supported_content_types: ClassVar[list[ContentType]] = [ContentType.TRACK]
    description: ClassVar[str] = "echo test source"
    url_patterns: ClassVar[tuple[str, ...]] = ("echo://HOST/NAME",)

    @classmethod
    def claims_url(cls, url):
        return url.startswith("echo://")

    def authenticate(self, credentials):
        return True

    def get_download_info(self, content_id):
        rest = content_id.removeprefix("echo://")
        host, _, name = rest.partition("/")
        return DownloadableContent(content_id=name, content_type=ContentType.TRACK,
                                   source="echo", title=f"echo-{name}",
                                   url=f"http://{host}/{name}", filename=f"echo-{name}")
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    package = root / "pkg"
    (package / "ripstream_echo").mkdir(parents=True)
    (package / "ripstream_echo" / "__init__.py").write_text(PLUGIN)
    (package / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "ripstream-echo"
        version = "1.0"

        [project.entry-points."ripstream.sources"]
        echo = "ripstream_echo:EchoSource"
        broken = "ripstream_missing_module:Nothing"

        [tool.setuptools]
        packages = ["ripstream_echo"]
    """)
    )
    site = root / "site"
    # a real install: pip builds the wheel (its build backend comes from the package registry)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(package),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return site


def run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.getcwd()])}
    return subprocess.run(
        [sys.executable, "-m", "ripstream", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_installed_plugin_is_listed_and_a_broken_one_reported(plugin_site: Path) -> None:
    listing = run(plugin_site, "sources")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert any(line.startswith("echo") and "echo test source" in line for line in lines)
    assert any("echo://HOST/NAME" in line for line in lines)
    assert any(line.startswith("http") for line in lines)
    broken = next(line for line in lines if line.startswith("broken"))
    assert "BROKEN" in broken
    assert "ripstream_missing_module" in broken


def test_plugin_handles_its_urls(plugin_site: Path, server: TestServer, tmp_path: Path) -> None:
    body = make_body(10_000)
    server.add("/song.flac", body)
    out = tmp_path / "out"
    address = server.base_url.removeprefix("http://")
    result = run(plugin_site, "--no-progress", "-d", str(out), f"echo://{address}/song.flac")
    assert result.returncode == 0, result.stderr
    assert (out / "echo-song.flac").read_bytes() == body
    plain = run(plugin_site, "--no-progress", "-d", str(out), server.url("/song.flac"))
    assert plain.returncode == 0, plain.stderr
    assert (out / "song.flac").read_bytes() == body
