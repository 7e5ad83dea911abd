"""AppConfig: the framework's DownloadConfig plus the application's keys, in one flat file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ripstream.app.config import AppConfig
from ripstream.downloader import DownloadConfig
from ripstream.downloader.exceptions import ConfigError

OLD_FLAT_FILE = {
    "download_directory": "music",
    "max_concurrent_downloads": 4,
    "default_settings": {"max_retries": 2, "segments": 3},
    "source_credentials": {"subsonic": {"username": "me", "password": "pw"}},
    "write_tags": False,
    "archive_path": "music/archive.sqlite3",
}


def test_an_old_flat_config_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "ripstream.json"
    path.write_text(json.dumps(OLD_FLAT_FILE), encoding="utf-8")
    app = AppConfig.load(path)
    assert app.download.max_concurrent_downloads == 4
    assert app.download.download_directory == Path("music")
    assert app.download.default_settings.max_retries == 2
    assert app.download.default_settings.segments == 3
    assert app.credentials("subsonic") == {"username": "me", "password": "pw"}
    assert app.credentials("other") == {}
    assert app.write_tags is False
    assert app.archive_path == Path("music/archive.sqlite3")


@pytest.mark.parametrize("key", ["source_credentials", "write_tags", "archive_path"])
def test_download_config_refuses_application_keys_naming_app_config(key: str) -> None:
    data = {"max_concurrent_downloads": 2, key: OLD_FLAT_FILE[key]}
    with pytest.raises(ConfigError) as info:
        DownloadConfig.from_dict(data)
    assert info.value.field == key
    assert "AppConfig" in str(info.value)


def test_credentials_never_show_in_a_download_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        DownloadConfig.from_dict({"source_credentials": {"s": {"password": "hunter2"}}})
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value.value)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    app = AppConfig(
        download=DownloadConfig(download_directory=tmp_path / "out", max_concurrent_downloads=5),
        source_credentials={"http": {"username": "u", "password": "p"}},
        write_tags=False,
        archive_path=tmp_path / "a.sqlite3",
    )
    path = tmp_path / "config.json"
    app.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["write_tags"] is False  # one flat object, as files always were
    assert saved["max_concurrent_downloads"] == 5
    loaded = AppConfig.load(path)
    assert loaded == app
    assert loaded.download.to_dict() == app.download.to_dict()


def test_credentials_are_not_in_the_repr() -> None:
    app = AppConfig(source_credentials={"s": {"password": "hunter2"}})
    assert "hunter2" not in repr(app)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"write_tags": "yes"}, "write_tags"),
        ({"archive_path": 42}, "archive_path"),
        ({"source_credentials": {"s": {"password": 1}}}, "source_credentials"),
        ({"source_credentials": ["s"]}, "source_credentials"),
        ({"max_concurrent_downloads": 0}, "max_concurrent_downloads"),
        ({"no_such_key": 1}, "no_such_key"),
    ],
)
def test_a_bad_value_names_its_field(data: dict[str, object], field: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        AppConfig.from_dict(data)
    assert info.value.field == field
    assert field in str(info.value)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError) as from_file:
        AppConfig.load(path)
    assert from_file.value.field == field
    assert str(path) in str(from_file.value)


def test_unreadable_or_non_json_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        AppConfig.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON"):
        AppConfig.load(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        AppConfig.load(listed)


def test_replace_validates_the_change() -> None:
    app = AppConfig()
    assert app.replace(write_tags=False).write_tags is False
    assert app.write_tags is True
    with pytest.raises(ConfigError) as info:
        app.replace(write_tags="no")
    assert info.value.field == "write_tags"
