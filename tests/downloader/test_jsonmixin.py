"""JsonMixin: the text its fast encoder writes is dataclasses-json's, byte for byte, and
whatever the fast encoder does not know goes to the library."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import dataclasses_json
import pytest
from dataclasses_json import DataClassJsonMixin
from hypothesis import given, settings
from hypothesis import strategies as st

from ripstream.downloader import jsonmixin
from ripstream.downloader.content import ContentType, DownloadableContent, TrackMetadata
from ripstream.downloader.jsonmixin import JsonMixin, json_field
from ripstream.downloader.queue import DownloadTask, TaskState


def library_json(obj: Any, **kwargs: Any) -> str:
    """What dataclasses-json itself writes for ``obj``."""
    return DataClassJsonMixin.to_json(obj, **kwargs)


def fast_or_none(obj: JsonMixin, **kwargs: Any) -> str | None:
    return jsonmixin._fast_json(obj, kwargs)


def plain_task(**fields: Any) -> DownloadTask:
    """A task of the required fields only, and ``fields``."""
    values: dict[str, Any] = {
        "content_id": "a",
        "content_type": ContentType.FILE,
        "source": "s",
        "title": "t",
        "url": "u",
    }
    return DownloadTask(**{**values, **fields})


plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
names = st.none() | st.text(max_size=20)


@st.composite
def tasks(draw: st.DrawFn) -> DownloadTask:
    content = draw(
        st.none()
        | st.builds(
            DownloadableContent,
            content_id=st.text(max_size=10),
            content_type=st.sampled_from(ContentType),
            source=st.text(max_size=10),
            title=st.text(max_size=10),
            url=st.text(max_size=30),
            artist=names,
            filename=names,
            size=st.none() | st.integers(min_value=0),
            headers=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
            metadata=st.builds(
                TrackMetadata,
                title=names,
                tracknumber=st.none() | st.integers(1, 99),
                year=st.none() | st.integers(1900, 2100),
                extra=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
            ),
            data=st.none() | st.binary(max_size=40),
            protocol=names,
        )
    )
    return DownloadTask(
        content_id=draw(st.text(max_size=10)),
        content_type=draw(st.sampled_from(ContentType)),
        source=draw(st.text(max_size=10)),
        title=draw(st.text(max_size=20)),
        url=draw(st.text(max_size=30)),
        file_path=draw(names),
        priority=draw(st.integers(-5, 5)),
        dependencies=draw(st.lists(st.text(max_size=8), max_size=3)),
        after=draw(st.lists(st.text(max_size=8), max_size=2)),
        state=draw(st.sampled_from(TaskState)),
        checksum=draw(names),
        metadata=draw(st.dictionaries(st.text(max_size=8), plain, max_size=3)),
        content=content,
        not_before=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
    )


@settings(max_examples=150, deadline=None)
@given(tasks())
def test_a_task_is_written_as_dataclasses_json_writes_it(task: DownloadTask) -> None:
    fast = fast_or_none(task)
    assert fast is not None  # plain data: the fast encoder wrote it
    assert fast == library_json(task)
    assert DownloadTask.from_json(fast).to_json() == fast  # and it reads back the same


def test_keywords_of_json_dumps_are_kept() -> None:
    task = plain_task(content_type=ContentType.TRACK, title="é")
    for kwargs in ({"indent": 2}, {"sort_keys": True}, {"ensure_ascii": False}):
        assert task.to_json(**kwargs) == library_json(task, **kwargs)
    assert fast_or_none(task, cls=json.JSONEncoder) is None  # an encoder of the caller's


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC),
        uuid.UUID(int=7),
        decimal.Decimal("1.5"),
        b"raw bytes",
        {"when": [datetime.date(2026, 1, 2)]},
    ],
)
def test_what_only_the_library_writes_is_left_to_it(value: Any) -> None:
    task = plain_task(metadata={"x": value})
    assert fast_or_none(task) is None
    if isinstance(value, datetime.datetime | uuid.UUID | decimal.Decimal | bytes):
        assert task.to_json() == library_json(task)


@dataclass
class _Inner:
    n: int


@dataclass
class _Holder(JsonMixin):
    inner: _Inner
    tags: set[str] = field(default_factory=set)


@dataclass
class _Cased(JsonMixin):
    some_name: str = field(metadata=dataclasses_json.config(letter_case=str.upper))


@dataclass
class _Excluding(JsonMixin):
    kept: int = 1
    dropped: int | None = field(default=None, metadata=json_field(exclude=lambda v: v is None))
    coded: int = field(default=3, metadata=json_field(encoder=lambda v: v * 10))


def test_plain_dataclasses_and_letter_cases_go_to_the_library() -> None:
    holder = _Holder(_Inner(2), {"a"})
    assert fast_or_none(holder) is None
    assert holder.to_json() == library_json(holder) == '{"inner": {"n": 2}, "tags": ["a"]}'
    cased = _Cased("x")
    assert fast_or_none(cased) is None
    assert cased.to_json() == library_json(cased) == '{"SOME_NAME": "x"}'


def test_excluded_and_encoded_fields_are_written_as_the_library_writes_them() -> None:
    for obj in (_Excluding(), _Excluding(dropped=0), _Excluding(dropped=5, coded=-1)):
        assert fast_or_none(obj) == library_json(obj)
    assert _Excluding().to_json() == '{"kept": 1, "coded": 30}'


def test_an_encoder_registered_with_the_library_sends_everything_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(dataclasses_json.cfg.global_config.encoders, str, str.upper)
    task = plain_task()
    assert fast_or_none(task) is None
    assert task.to_json() == library_json(task)


def library_object(cls: type[Any], data: Any) -> Any:
    """What dataclasses-json itself builds from ``data``."""
    return DataClassJsonMixin.from_dict.__func__(cls, data)  # type: ignore[attr-defined]


def same_objects(first: Any, second: Any) -> bool:
    """Equal field by field, down to the types (1 is not 1.0), as their JSON shows."""
    return type(first) is type(second) and library_json(first) == library_json(second)


@settings(max_examples=150, deadline=None)
@given(tasks(), st.data())
def test_a_task_is_read_back_as_dataclasses_json_reads_it(
    task: DownloadTask, data: st.DataObject
) -> None:
    values = json.loads(library_json(task))
    # what another writer may send: numbers of the other kind, keys left out, unknown keys
    if values.get("not_before") is not None and data.draw(st.booleans()):
        values["not_before"] = int(values["not_before"])
    values["priority"] = data.draw(st.sampled_from([values["priority"], float(values["priority"])]))
    for key in data.draw(st.lists(st.sampled_from(["after", "checksum", "error", "file_path"]))):
        values.pop(key, None)
    if data.draw(st.booleans()):
        values["unknown"] = {"x": 1}
    if values.get("content") and data.draw(st.booleans()):
        values["content"]["size"] = data.draw(st.none() | st.integers(0, 10) | st.floats(0, 10))
    fast = jsonmixin._fast_from_dict(DownloadTask, values)
    assert fast is not None
    assert same_objects(fast, library_object(DownloadTask, values))


@pytest.mark.parametrize(
    "change",
    [
        {"title": None},  # a None where the type has none: the library warns
        {"content_id": 5},  # converted to str by the library, as here
        {"dependencies": "ab"},  # not a list: the library's way of reading it
        {"content": {"not": "a content"}},  # a content without its fields: the library's error
    ],
)
def test_odd_input_is_read_as_the_library_reads_it(change: dict[str, Any]) -> None:
    task = plain_task()
    values = {**json.loads(task.to_json()), **change}
    try:
        expected = library_object(DownloadTask, values)
    except Exception as exc:  # noqa: BLE001 - the same error from the mixin
        with pytest.raises(type(exc)):
            DownloadTask.from_dict(values)
        return
    with pytest.warns() if change.get("title", "") is None else contextlib.nullcontext():
        got = DownloadTask.from_dict(values)
    assert same_objects(got, expected)
    if "content_id" in change:
        assert got.content_id == "5"


def test_reading_with_infer_missing_or_a_registered_decoder_goes_to_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = json.loads(plain_task(not_before=1.5).to_json())
    title = values.pop("title")
    # a required field left out: an error, but None with infer_missing (the library's reading)
    with pytest.raises(KeyError):
        DownloadTask.from_dict(values)
    with pytest.warns(RuntimeWarning, match="title"):
        assert DownloadTask.from_dict(values, infer_missing=True).title is None
    # the library looks a field's type up as it is written (a string, under postponed
    # annotations), and decodes with it a value not already of the field's type
    decoders: dict[Any, Any] = dataclasses_json.cfg.global_config.decoders
    monkeypatch.setitem(decoders, "float | None", lambda v: v * 2)
    values["title"] = title
    assert jsonmixin._fast_from_dict(DownloadTask, values) is None
    assert DownloadTask.from_dict(values).not_before == 3.0  # the library applied it
