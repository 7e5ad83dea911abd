"""Where a source's credentials come from: the config, then the environment, then a prompt."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ripstream.app.config import AppConfig
from ripstream.app.credentials import credential_variable, credentials_for, source_name_of
from ripstream.downloader import BaseDownloader, ContentType, DownloadableContent
from ripstream.downloader.exceptions import AuthenticationError, ConfigError
from tests.support.settings import make_config


class Locked(BaseDownloader):
    """A source that needs a password."""

    source_name: ClassVar[str] = "locked"
    supported_content_types: ClassVar[list[ContentType]] = [ContentType.TRACK]
    required_credentials: ClassVar[tuple[str, ...]] = ("password",)

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        raise NotImplementedError


def test_credential_variables_are_named_after_source_and_key() -> None:
    assert credential_variable("subsonic", "password") == "RIPSTREAM_SUBSONIC_PASSWORD"
    assert credential_variable("archive.org", "api_key") == "RIPSTREAM_ARCHIVE_ORG_API_KEY"


def test_credentials_come_from_config_then_environment_then_prompt(tmp_path: Path) -> None:
    config = AppConfig(download=make_config(tmp_path))
    env = {"RIPSTREAM_LOCKED_PASSWORD": "from-env", "RIPSTREAM_LOCKED_USERNAME": "me"}
    assert credentials_for(Locked, config, environ=env) == {
        "password": "from-env",
        "username": "me",
    }
    config.source_credentials["locked"] = {"password": "from-config"}
    assert credentials_for(Locked, config, environ=env)["password"] == "from-config"
    config.source_credentials.clear()
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return "typed"

    assert credentials_for(Locked, config, environ={}, prompt=prompt) == {"password": "typed"}
    assert asked == ["locked password: "]


def test_an_api_key_stands_in_for_a_password(tmp_path: Path) -> None:
    config = AppConfig(download=make_config(tmp_path))
    found = credentials_for(Locked, config, environ={"RIPSTREAM_LOCKED_API_KEY": "k"})
    assert found == {"api_key": "k"}


def test_a_missing_secret_without_a_prompt_names_where_to_put_it(tmp_path: Path) -> None:
    config = AppConfig(download=make_config(tmp_path))
    with pytest.raises(AuthenticationError) as info:
        credentials_for(Locked, config, environ={})
    assert info.value.source == "locked"
    assert "RIPSTREAM_LOCKED_PASSWORD" in str(info.value)
    assert "source_credentials.locked.password" in str(info.value)


def test_the_config_is_not_changed_by_a_lookup(tmp_path: Path) -> None:
    config = AppConfig(download=make_config(tmp_path), source_credentials={"locked": {"x": "1"}})
    credentials_for(Locked, config, environ={"RIPSTREAM_LOCKED_PASSWORD": "p"})
    assert config.source_credentials == {"locked": {"x": "1"}}


def test_a_class_without_source_name_is_a_config_error() -> None:
    class Nameless:
        pass

    assert source_name_of(Locked) == "locked"
    with pytest.raises(ConfigError, match="Nameless has no source_name"):
        source_name_of(Nameless)
