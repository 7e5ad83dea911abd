"""The application plugged into the framework: sources built and logged in by name, from the
config and the environment, by a factory that crosses to worker processes."""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ripstream.app.config import AppConfig
from ripstream.app.wiring import build_source, post_processors, source_factory
from ripstream.downloader import BaseDownloader, ContentType, DownloadableContent
from ripstream.downloader.exceptions import AuthenticationError, SourceError
from ripstream.library.tags import TagWriter
from ripstream.sources import load_registry
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fetch_with(source: BaseDownloader, server: TestServer, path: str) -> str | None:
    """Download ``path`` with ``source``; the Authorization header the server saw."""
    result = source.download(source.get_download_info(server.url(path)))
    assert result.is_success, result.error
    return server.requests_for(path)[0].headers.get("Authorization")


class Keyed(BaseDownloader):
    """A source that needs an api_key, and keeps what it was given."""

    source_name: ClassVar[str] = "keyed"
    supported_content_types: ClassVar[list[ContentType]] = [ContentType.FILE]
    required_credentials: ClassVar[tuple[str, ...]] = ("api_key",)
    given: dict[str, Any]

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        self.given = dict(credentials)
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        raise NotImplementedError


def test_build_source_logs_in_from_the_config(server: TestServer, out_dir: Path) -> None:
    server.add("/a.bin", make_body(100))
    app = AppConfig(source_credentials={"http": {"username": "alice", "password": "pw"}})
    config = make_config(out_dir)
    with build_source(json.dumps(app.to_dict()), "http", config, environ={}) as source:
        assert isinstance(source, HttpDownloader)
        assert fetch_with(source, server, "/a.bin") == basic("alice", "pw")
    assert (out_dir / "a.bin").read_bytes() == make_body(100)


def test_build_source_takes_a_username_from_the_environment(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/b.bin", make_body(100))
    app_json = json.dumps(AppConfig().to_dict())
    env = {"RIPSTREAM_HTTP_USERNAME": "bob"}
    with build_source(app_json, "http", make_config(out_dir), environ=env) as source:
        assert fetch_with(source, server, "/b.bin") == basic("bob", "")


def test_no_credentials_means_no_login(server: TestServer, out_dir: Path) -> None:
    server.add("/c.bin", make_body(100))
    app_json = json.dumps(AppConfig().to_dict())
    with build_source(app_json, "http", make_config(out_dir), environ={}) as source:
        assert fetch_with(source, server, "/c.bin") is None


def test_a_required_secret_comes_from_the_environment_or_fails(tmp_path: Path) -> None:
    registry = load_registry(plugins=False, extra=[Keyed])
    app_json = json.dumps(AppConfig().to_dict())
    config = make_config(tmp_path)
    env = {"RIPSTREAM_KEYED_API_KEY": "k-123"}
    with build_source(app_json, "keyed", config, registry=registry, environ=env) as source:
        assert isinstance(source, Keyed)
        assert source.given == {"api_key": "k-123"}
    with pytest.raises(AuthenticationError, match="RIPSTREAM_KEYED_API_KEY"):
        build_source(app_json, "keyed", config, registry=registry, environ={})
    with pytest.raises(SourceError, match="no source called 'nope'"):
        build_source(app_json, "nope", config, registry=registry, environ={})


def test_the_factory_is_picklable_and_builds_logged_in_sources(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/d.bin", make_body(100))
    app = AppConfig(source_credentials={"http": {"username": "carol", "password": "x"}})
    factory = pickle.loads(pickle.dumps(source_factory(app)))  # as a worker process gets it
    with factory("http", make_config(out_dir)) as source:
        assert fetch_with(source, server, "/d.bin") == basic("carol", "x")


def test_post_processors_follow_write_tags() -> None:
    [writer] = post_processors(AppConfig(write_tags=True))
    assert isinstance(writer, TagWriter)
    assert post_processors(AppConfig(write_tags=False)) == ()
