"""The source author's toolkit: one module whose ``__all__`` is complete, and enough on its own
to write a source that downloads."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import ripstream.downloader.plugin as plugin
from ripstream.downloader.plugin import (
    BaseDownloader,
    ContentType,
    DownloadableContent,
    TrackMetadata,
)
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config


def test_all_is_sorted_complete_and_importable() -> None:
    public = {
        name
        for name, value in vars(plugin).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("ripstream")
    }
    assert list(plugin.__all__) == sorted(plugin.__all__)
    assert set(plugin.__all__) == public
    for name in plugin.__all__:
        home = importlib.import_module(getattr(plugin, name).__module__)
        assert getattr(home, name) is getattr(plugin, name)


class Catalogue(BaseDownloader):
    """A source written with the plugin module only: ids resolve through a JSON API."""

    source_name: ClassVar[str] = "catalogue"
    supported_content_types: ClassVar[list[ContentType]] = [ContentType.TRACK]
    api: ClassVar[str] = ""

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        self.session.http.headers["X-Api-Key"] = str(credentials["api_key"])
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        info = self.session.get_json(f"{self.api}/tracks/{content_id}.json")
        return DownloadableContent(
            content_id=content_id,
            content_type=ContentType.TRACK,
            source=self.source_name,
            title=info["title"],
            url=info["url"],
            file_extension="flac",
            metadata=TrackMetadata(title=info["title"], tracknumber=info["n"]),
        )


def test_a_source_from_the_plugin_module_alone_downloads(server: TestServer, out_dir: Path) -> None:
    body = make_body(30_000, 9)
    server.add("/media/7.flac", body)
    url = server.url("/media/7.flac")
    server.add(
        "/api/tracks/7.json",
        f'{{"title": "Seven", "url": "{url}", "n": 7}}'.encode(),
        content_type="application/json",
    )
    Catalogue.api = server.url("/api")
    with Catalogue(make_config(out_dir)) as source:
        source.authenticate({"api_key": "k"})
        result = source.download(source.get_download_info("7"), raise_on_error=True)
    assert result.file_path == out_dir / "7.flac"  # the default template: the URL's name
    assert (out_dir / "7.flac").read_bytes() == body
    assert server.requests_for("/api/tracks/7.json")[0].headers["X-Api-Key"] == "k"
