"""DownloadConfig, DownloadBehaviorSettings, RetryStrategy, parse_rate."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ripstream.downloader import (
    DownloadBehaviorSettings,
    DownloadConfig,
    DownloaderConfig,
    DownloadSettings,
    OverwritePolicy,
    RetryStrategy,
    parse_rate,
)
from ripstream.downloader.exceptions import ConfigError
from tests.support.settings import fast_settings, make_config

SETTING_NAMES = [f.name for f in dataclasses.fields(DownloadBehaviorSettings)]
CONFIG_NAMES = [f.name for f in dataclasses.fields(DownloadConfig)]


# -- defaults ------------------------------------------------------------------------------


def test_defaults_are_the_careful_ones() -> None:
    s = DownloadBehaviorSettings()
    assert s.max_retries > 0
    assert s.resume is True
    assert s.verify_checksums is True
    assert s.verify_ssl is True
    assert s.overwrite is OverwritePolicy.SKIP
    assert s.retry_strategy is RetryStrategy.EXPONENTIAL
    assert s.timeout_seconds > 0
    assert s.stall_timeout > 0
    assert s.max_retry_delay >= s.retry_delay
    assert s.rate_limit is None
    assert s.user_agent.startswith("ripstream/")


def test_config_defaults() -> None:
    config = DownloadConfig()
    assert config.download_directory == Path("downloads")
    assert config.max_concurrent_downloads >= 1
    assert config.default_settings == DownloadBehaviorSettings()
    assert config.source_settings == {}
    assert config.bandwidth_limit is None


def test_seed_aliases_are_the_same_classes() -> None:
    assert DownloaderConfig is DownloadConfig
    assert DownloadSettings is DownloadBehaviorSettings


def test_support_settings_build_valid_configs(tmp_path: Path) -> None:
    config = make_config(tmp_path, jobs=2, max_retries=1)
    assert config.download_directory == tmp_path
    assert config.max_concurrent_downloads == 2
    assert config.default_settings.max_retries == 1
    assert fast_settings().retry_delay == 0.0


def test_settings_are_frozen() -> None:
    s = DownloadBehaviorSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.max_retries = 9  # type: ignore[misc]


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout_seconds", 0),
        ("timeout_seconds", -1.5),
        ("timeout_seconds", "30"),
        ("connect_timeout", 0.0),
        ("stall_timeout", -1),
        ("retry_delay", -0.1),
        ("max_retry_delay", float("nan")),
        ("retry_jitter", -1),
        ("max_retry_after", -5),
        ("max_retries", -1),
        ("max_retries", 2.5),
        ("max_retries", True),
        ("segments", 0),
        ("chunk_size", 10),
        ("max_redirects", -1),
        ("max_connections_per_host", 0),
        ("verify_checksums", "yes"),
        ("verify_ssl", 1),
        ("resume", None),
        ("retry_strategy", "sometimes"),
        ("retry_strategy", 42),
        ("overwrite", "clobber"),
        ("min_speed", 0),
        ("requests_per_period", 0),
        ("rate_period_seconds", 0),
        ("user_agent", ""),
        ("headers", {"X-Token": 5}),
        ("headers", ["X-Token: 5"]),
    ],
)
def test_bad_setting_names_the_field_and_value(name: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        DownloadBehaviorSettings(**{name: value})
    assert info.value.field == name
    assert name in str(info.value)
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(info.value.value)
    elif isinstance(value, dict):  # headers: the names are shown, never the values
        assert info.value.value == value
        assert repr(list(value)) in str(info.value)
    else:
        assert info.value.value == value
        assert repr(value) in str(info.value)


def test_a_bad_headers_setting_never_shows_the_header_values() -> None:
    with pytest.raises(ConfigError) as info:
        DownloadBehaviorSettings(headers={"X-Custom-Token": "s3cret-value", "X-Other": 5})  # type: ignore[dict-item]
    assert "X-Custom-Token" in str(info.value)
    assert "s3cret-value" not in str(info.value)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("name", ["timeout_seconds", "stall_timeout", "max_retry_delay"])
def test_non_finite_seconds_are_refused(name: str, value: float) -> None:
    settings: dict[str, Any] = {name: value}
    with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
        DownloadBehaviorSettings(**settings)


def test_a_deeply_nested_bad_value_makes_a_short_message() -> None:
    value: Any = 1
    for _ in range(5000):
        value = [value]
    with pytest.raises(ConfigError) as info:
        DownloadBehaviorSettings(segments=value)
    assert info.value.field == "segments"
    assert len(str(info.value)) < 200


def test_enum_settings_accept_their_string_values_case_insensitively() -> None:
    s = DownloadBehaviorSettings(retry_strategy="LINEAR", overwrite="Rename")  # type: ignore[arg-type]
    assert s.retry_strategy is RetryStrategy.LINEAR
    assert s.overwrite is OverwritePolicy.RENAME


def test_rate_limit_is_parsed_from_text() -> None:
    s = DownloadBehaviorSettings(rate_limit="2M")  # type: ignore[arg-type]
    assert s.rate_limit == 2 * 1024 * 1024


def test_bad_config_values_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        DownloadConfig(max_concurrent_downloads=0)
    assert info.value.field == "max_concurrent_downloads"
    assert info.value.value == 0
    with pytest.raises(ConfigError) as info:
        DownloadConfig(filename_template="")
    assert info.value.field == "filename_template"
    with pytest.raises(ConfigError) as info:
        DownloadConfig(default_settings={"max_retries": 3})  # type: ignore[arg-type]
    assert info.value.field == "default_settings"
    with pytest.raises(ConfigError) as info:
        DownloadConfig(source_settings={"svc": {"max_retries": -2}})
    assert info.value.field == "max_retries"


def test_bad_rate_names_the_setting_it_came_from() -> None:
    with pytest.raises(ConfigError) as info:
        DownloadBehaviorSettings(rate_limit="fast")  # type: ignore[arg-type]
    assert info.value.field == "rate_limit"
    assert "rate_limit" in str(info.value)
    assert "'fast'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        DownloadConfig(bandwidth_limit="-3M")  # type: ignore[arg-type]
    assert info.value.field == "bandwidth_limit"
    assert "bandwidth_limit" in str(info.value)


def test_bad_download_directory_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        DownloadConfig.from_dict({"download_directory": 5})
    assert info.value.field == "download_directory"
    assert info.value.value == 5


def test_non_object_source_overrides_are_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        DownloadConfig.from_dict({"source_settings": {"svc": 5}})
    assert "svc" in str(info.value)
    assert info.value.value == 5


def test_settings_from_dict_of_a_non_object_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        DownloadBehaviorSettings.from_dict([1, 2])  # type: ignore[arg-type]
    assert info.value.value == [1, 2]


# -- per-source settings ----------------------------------------------------------------------


def test_source_settings_override_only_that_source() -> None:
    config = DownloadConfig()
    config.add_source_setting("deezer", "timeout_seconds", 60.0)
    config.add_source_setting("deezer", "max_retries", 1)
    config.add_source_setting("qobuz", "overwrite", "overwrite")

    deezer = config.get_behavior_for_source("deezer")
    assert (deezer.timeout_seconds, deezer.max_retries) == (60.0, 1)
    assert deezer.verify_ssl is True  # untouched settings keep their defaults
    assert config.get_behavior_for_source("qobuz").overwrite is OverwritePolicy.OVERWRITE
    assert config.get_behavior_for_source("qobuz").timeout_seconds == 30.0
    assert config.get_behavior_for_source("unknown") == config.default_settings
    # the defaults themselves did not change
    assert config.default_settings.timeout_seconds == 30.0


def test_unknown_source_setting_is_rejected_and_not_stored() -> None:
    config = DownloadConfig()
    with pytest.raises(ConfigError) as info:
        config.add_source_setting("deezer", "timeout", 60)
    assert info.value.field == "timeout"
    assert "unknown setting 'timeout'" in str(info.value)
    assert "timeout_seconds" in str(info.value)  # the message lists the known names
    assert config.source_settings == {}


def test_bad_source_setting_value_is_rejected_and_not_stored() -> None:
    config = DownloadConfig()
    config.add_source_setting("deezer", "max_retries", 2)
    with pytest.raises(ConfigError) as info:
        config.add_source_setting("deezer", "timeout_seconds", -1)
    assert info.value.field == "timeout_seconds"
    assert config.source_settings == {"deezer": {"max_retries": 2}}
    assert config.get_behavior_for_source("deezer").timeout_seconds == 30.0


def test_replace_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError) as info:
        DownloadBehaviorSettings().replace(retries=3)
    assert info.value.field == "retries"


# -- JSON ---------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    config = DownloadConfig(
        download_directory=tmp_path / "music",
        max_concurrent_downloads=7,
        default_settings=DownloadBehaviorSettings(
            max_retries=2,
            retry_strategy=RetryStrategy.LINEAR,
            overwrite=OverwritePolicy.RENAME,
            rate_limit=1000.0,
            headers={"X-Api": "k"},
        ),
        filename_template="{artist}/{album}/{title}.{ext}",
        bandwidth_limit="5M",  # type: ignore[arg-type]
    )
    config.add_source_setting("deezer", "timeout_seconds", 90.0)
    path = tmp_path / "conf" / "ripstream.json"
    config.save(path)

    text = path.read_text(encoding="utf-8")
    assert json.loads(text)["default_settings"]["retry_strategy"] == "linear"
    loaded = DownloadConfig.load(path)
    assert loaded == config
    assert loaded.bandwidth_limit == 5 * 1024 * 1024
    assert loaded.get_behavior_for_source("deezer").timeout_seconds == 90.0
    assert loaded.default_settings.overwrite is OverwritePolicy.RENAME
    # no temporary files are left beside the saved config
    assert [p.name for p in path.parent.iterdir()] == ["ripstream.json"]


def test_partial_json_keeps_defaults_for_missing_keys() -> None:
    config = DownloadConfig.from_json('{"max_concurrent_downloads": 5}')
    assert config.max_concurrent_downloads == 5
    assert config.default_settings == DownloadBehaviorSettings()


def test_callable_strategy_cannot_be_saved() -> None:
    config = DownloadConfig(
        default_settings=DownloadBehaviorSettings(retry_strategy=lambda attempt: 1.0)
    )
    with pytest.raises(ConfigError) as info:
        config.to_json()
    assert info.value.field == "retry_strategy"


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as info:
        DownloadConfig.load(path)
    assert str(path) in str(info.value)
    assert "cannot read config file" in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_config_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        DownloadConfig.load(tmp_path)
    assert "cannot read config file" in str(info.value)


def test_broken_json_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"max_concurrent_downloads": 3,', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        DownloadConfig.load(path)
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"filename_template": "\xe9"}')
    with pytest.raises(ConfigError) as info:
        DownloadConfig.load(path)
    assert "not UTF-8" in str(info.value)


@pytest.mark.parametrize("text", ["[]", "3", '"x"', "null"])
def test_json_that_is_not_an_object(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        DownloadConfig.load(path)
    assert "must be a JSON object" in str(info.value)
    assert info.value.field == "config"


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"max_concurent_downloads": 3}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        DownloadConfig.load(path)
    assert info.value.field == "max_concurent_downloads"
    assert str(path) in str(info.value)
    assert "unknown config key 'max_concurent_downloads'" in str(info.value)


def test_unknown_nested_setting_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"default_settings": {"retrys": 3}}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        DownloadConfig.load(path)
    assert info.value.field == "retrys"


def test_bad_value_in_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"default_settings": {"max_retries": -4}}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        DownloadConfig.load(path)
    assert info.value.field == "max_retries"
    assert info.value.value == -4
    assert "max_retries" in str(info.value)


# -- parse_rate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10M", 10 * 1024 * 1024),
        ("500k", 500 * 1024),
        ("500K", 500 * 1024),
        ("1.5MiB/s", 1.5 * 1024 * 1024),
        ("2G", 2 * 1024**3),
        ("1024", 1024.0),
        ("  3 MB/s ", 3 * 1024 * 1024),
        (2048, 2048.0),
        (12.5, 12.5),
        (None, None),
        ("", None),
        (0, None),
        ("0", None),
    ],
)
def test_parse_rate(text: Any, expected: float | None) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    "text", ["abc", "10X", "-5", "M", "1.2.3k", "10 per second", -1, float("nan"), True]
)
def test_parse_rate_rejects_non_rates(text: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rate(text)
    assert info.value.field == "rate"


@given(
    st.floats(min_value=0.001, max_value=1e6),
    st.sampled_from(["", "k", "K", "M", "G"]),
    st.sampled_from(["", "B", "iB", "/s", "B/s", "iB/s"]),
)
def test_parse_rate_scales_by_the_unit(number: float, unit: str, tail: str) -> None:
    text = f"{number:.3f}{unit}{tail}"
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]
    result = parse_rate(text)
    value = float(f"{number:.3f}") * factor
    if value == 0:
        assert result is None
    else:
        assert result == pytest.approx(value)


@given(st.one_of(st.text(max_size=20), st.floats(allow_nan=True), st.integers(), st.none()))
def test_parse_rate_returns_a_positive_rate_none_or_config_error(value: Any) -> None:
    try:
        result = parse_rate(value)
    except ConfigError as exc:
        error = exc
    else:
        assert result is None or result > 0
        return
    assert error.field == "rate"


# -- from_dict over arbitrary values -------------------------------------------------------

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["fixed", "linear", "EXPONENTIAL", "skip", "rename", "10M", "1k"]),
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def _assert_names_field(exc: ConfigError) -> None:
    assert exc.field is not None, f"ConfigError without a field: {exc}"
    assert repr(exc.field) in str(exc) or (exc.field and exc.field in str(exc)), (exc.field, exc)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(SETTING_NAMES), st.text(max_size=10)), _json_values, max_size=5
    )
)
def test_settings_from_dict_only_ever_raises_config_error(data: dict[str, Any]) -> None:
    try:
        built = DownloadBehaviorSettings.from_dict(data)
    except ConfigError as exc:
        _assert_names_field(exc)
        return
    # whatever was accepted is usable: it saves and loads back to the same settings
    assert DownloadBehaviorSettings.from_dict(built.to_dict()) == built


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(CONFIG_NAMES), st.text(max_size=10)),
        st.one_of(
            _json_values,
            st.dictionaries(st.sampled_from(SETTING_NAMES), _json_values, max_size=3),
            st.dictionaries(
                st.text(max_size=6),
                st.dictionaries(st.sampled_from(SETTING_NAMES), _json_values, max_size=2),
                max_size=2,
            ),
        ),
        max_size=4,
    )
)
def test_config_from_dict_only_ever_raises_config_error(data: dict[str, Any]) -> None:
    try:
        built = DownloadConfig.from_dict(data)
    except ConfigError as exc:
        _assert_names_field(exc)
        return
    assert DownloadConfig.from_json(built.to_json()) == built
