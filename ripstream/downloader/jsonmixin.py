"""dataclasses-json for the public dataclasses, imported when JSON is first asked for.

dataclasses-json brings marshmallow with it: about 30 ms of every start, for a run that may
never read a config or a JSON task. :class:`JsonMixin` offers the methods of
``dataclasses_json.DataClassJsonMixin`` (``to_json``, ``from_json``, ``to_dict``,
``from_dict``, ``schema``) with the same arguments and results, and imports the library on
the first call. :func:`json_field` writes the field metadata that ``dataclasses_json.config``
would, without importing it.

Example::

    @dataclass
    class Track(JsonMixin):
        title: str
        cover: bytes | None = field(default=None, metadata=json_field(encoder=..., decoder=...))

    Track.from_json(Track("a").to_json())
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import sys
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from dataclasses_json import DataClassJsonMixin

__all__ = ["JsonMixin", "json_field"]

J = TypeVar("J", bound="JsonMixin")


def _library() -> type[DataClassJsonMixin]:
    from dataclasses_json import DataClassJsonMixin

    return DataClassJsonMixin


def json_field(
    *,
    encoder: Callable[..., Any] | None = None,
    decoder: Callable[..., Any] | None = None,
    exclude: Callable[[Any], bool] | None = None,
) -> dict[str, dict[str, Any]]:
    """Field metadata read by dataclasses-json (what ``dataclasses_json.config`` returns)."""
    options = {"encoder": encoder, "decoder": decoder, "exclude": exclude}
    return {"dataclasses_json": {name: value for name, value in options.items() if value}}


class _Unplain(Exception):
    """A value the fast encoder leaves to dataclasses-json."""


#: the field options the fast encoder knows; any other (a letter case, a marshmallow field)
#: sends the object to dataclasses-json
_PLAIN_OPTIONS = frozenset({"encoder", "decoder", "exclude"})

_Plan = tuple[tuple[str, Callable[[Any], Any] | None, Callable[[Any], bool] | None], ...]


_plans: dict[type, _Plan | None] = {}


def _plan(cls: type) -> _Plan | None:
    """Per field of ``cls``: name, encoder, exclude; ``None`` when the class needs more."""
    if cls in _plans:
        return _plans[cls]
    plan: _Plan | None = None
    if getattr(cls, "dataclass_json_config", None) is None:
        fields = [
            (item.name, item.metadata.get("dataclasses_json", {}))
            for item in dataclasses.fields(cls)
        ]
        if all(options.keys() <= _PLAIN_OPTIONS for _, options in fields):
            plan = tuple(
                (name, options.get("encoder"), options.get("exclude")) for name, options in fields
            )
    _plans[cls] = plan
    return plan


def _plain(value: Any) -> Any:
    """``value`` as dataclasses-json's ``to_dict`` gives it to ``json.dumps``."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, JsonMixin):
        return _fields(value)
    if dataclasses.is_dataclass(value):
        raise _Unplain
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Collection) and not isinstance(value, str | bytes):
        return [_plain(item) for item in value]
    return value  # an enum: _json_default; anything else: back to dataclasses-json


def _fields(obj: JsonMixin) -> dict[str, Any]:
    plan = _plan(type(obj))
    if plan is None:
        raise _Unplain
    out = {}
    for name, encoder, exclude in plan:
        raw = getattr(obj, name)
        value = raw if encoder is not None else _plain(raw)
        if exclude is not None and exclude(value):
            continue
        out[name] = encoder(value) if encoder is not None else value
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    raise _Unplain


def _registered(kind: str) -> bool:
    """Whether ``encoders`` or ``decoders`` (or marshmallow fields) were registered with
    dataclasses-json itself (it cannot have been configured before it is imported)."""
    config = sys.modules.get("dataclasses_json.cfg")
    if config is None:
        return False
    return bool(getattr(config.global_config, kind) or config.global_config.mm_fields)


def _fast_json(obj: JsonMixin, kwargs: dict[str, Any]) -> str | None:
    """What dataclasses-json's ``to_json`` writes for ``obj``, the same text, without its
    per-call look at every field's type hints (most of the cost of sending a task to a worker
    process); ``None`` for what only the library handles: datetimes, UUIDs, decimals, plain
    dataclasses, letter cases, encoders registered with the library."""
    if "cls" in kwargs or "default" in kwargs:
        return None
    if _registered("encoders"):
        return None
    try:
        return json.dumps(_fields(obj), default=_json_default, **kwargs)
    except _Unplain:
        return None


_Decode = Callable[[Any], Any]
#: per init field: name, decoder, whether None is allowed, default factory (None: required)
_Field = tuple[str, _Decode, bool, Callable[[], Any] | None]
_layouts: dict[type, tuple[_Field, ...] | None] = {}


def _same(value: Any) -> Any:
    return value


def _keep_unless_dict(value: Any) -> Any:
    if type(value) is dict:  # a union of plain types: the library tries dataclasses, then warns
        raise _Unplain
    return value


def _scalar(kind: type) -> _Decode:
    """The library's reading of a str, int, float or bool: kept, or converted to it."""
    return lambda value: value if isinstance(value, kind) else kind(value)


def _optional(inner: _Decode) -> _Decode:
    return lambda value: None if value is None else inner(value)


def _of(kind: type, decode: _Decode) -> _Decode:
    """``decode`` for a value of ``kind``; anything else is left to the library."""

    def checked(value: Any) -> Any:
        if not isinstance(value, kind):
            raise _Unplain
        return decode(value)

    return checked


def _decoder(hint: Any) -> _Decode | None:
    """How dataclasses-json decodes a value of type ``hint`` (``None``: not here)."""
    if hint is Any:
        return _same
    if hint in (str, int, float, bool):
        return _scalar(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if isinstance(hint, type) and issubclass(hint, JsonMixin):
        return functools.partial(_decoded, hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(args)
    return _collection_decoder(origin, args)


def _union_decoder(args: tuple[Any, ...]) -> _Decode | None:
    others = [arg for arg in args if arg is not type(None)]
    if len(others) == 1 and len(args) == 2:  # Optional[X]
        inner = _decoder(others[0])
        return None if inner is None else _optional(inner)
    if any(dataclasses.is_dataclass(arg) or arg is dict for arg in others):
        return None
    return _keep_unless_dict  # a union of plain types is taken as it is


def _collection_decoder(origin: Any, args: tuple[Any, ...]) -> _Decode | None:
    item = _decoder(args[-1]) if args else None
    if item is None:
        return None
    if origin is list and len(args) == 1:
        return _of(list, lambda value: [item(x) for x in value])
    if origin is dict and len(args) == 2 and args[0] is str:
        return _of(dict, lambda value: {key: item(x) for key, x in value.items()})
    return None


def _custom(decoder: _Decode, hint: Any) -> _Decode:
    """A field's own decoder, as the library calls it (not on a value of the exact type)."""
    return lambda value: value if hint is type(value) else decoder(value)


def _field(item: dataclasses.Field[Any], hint: Any) -> _Field | None:
    custom = item.metadata.get("dataclasses_json", {}).get("decoder")
    decode = _custom(custom, hint) if custom is not None else _decoder(hint)
    if decode is None:
        return None
    default: Callable[[], Any] | None = None
    if item.default is not dataclasses.MISSING:
        default = functools.partial(_same, item.default)
    elif item.default_factory is not dataclasses.MISSING:
        default = item.default_factory
    nullable = hint is Any or type(None) in typing.get_args(hint)
    return item.name, decode, nullable, default


def _layout(cls: type) -> tuple[_Field, ...] | None:
    """How to build ``cls`` from plain data, decided once per class (``None``: not here)."""
    if cls not in _layouts:
        layout: tuple[_Field, ...] | None = None
        if _plan(cls) is not None:
            try:
                hints = typing.get_type_hints(cls)
            except (NameError, TypeError):
                hints = None
            if hints is not None:
                rows = [
                    _field(item, hints[item.name]) for item in dataclasses.fields(cls) if item.init
                ]
                layout = tuple(row for row in rows if row is not None)
                if len(layout) != len(rows):
                    layout = None
        _layouts[cls] = layout
    return _layouts[cls]


def _decoded(cls: type, values: Any) -> Any:
    """``cls`` from ``values`` as dataclasses-json's ``from_dict`` builds it."""
    if isinstance(values, cls):
        return values
    layout = _layout(cls)
    if layout is None or not isinstance(values, dict):
        raise _Unplain
    kwargs = {}
    for name, decode, nullable, default in layout:
        if name not in values:
            if default is None:
                raise _Unplain  # the library's KeyError
            kwargs[name] = default()
            continue
        value = values[name]
        if value is None and not nullable:
            raise _Unplain  # the library's warning
        kwargs[name] = None if value is None else decode(value)
    return cls(**kwargs)


def _fast_from_dict(cls: type[J], values: Any) -> J | None:
    """What dataclasses-json's ``from_dict`` builds for plain data, without its per-call
    evaluation of every type hint (most of a worker process's time per task); ``None`` for
    what only the library handles."""
    if _registered("decoders"):
        return None
    try:
        return _decoded(cls, values)  # type: ignore[no-any-return]
    except _Unplain:
        return None


class JsonMixin:
    """The JSON methods of ``dataclasses_json.DataClassJsonMixin``, loaded on first use.

    It has no instance attributes of its own (``__slots__ = ()``), so a ``slots=True``
    dataclass built on it really has no ``__dict__``: a batch holds a task, a content and a
    result per URL, and a dict each would be about a kilobyte more per URL.
    """

    __slots__ = ()
    dataclass_json_config: ClassVar[dict[str, Any] | None] = None

    def to_json(self, **kwargs: Any) -> str:
        """This object as JSON (the keywords go to ``json.dumps``)."""
        fast = _fast_json(self, kwargs)
        if fast is not None:
            return fast
        return _library().to_json(self, **kwargs)  # type: ignore[arg-type]

    def to_dict(self, encode_json: bool = False) -> dict[str, Any]:
        """This object as a dict of plain values."""
        return _library().to_dict(self, encode_json)  # type: ignore[arg-type]

    @classmethod
    def from_json(
        cls: type[J], text: str | bytes, *, infer_missing: bool = False, **kwargs: Any
    ) -> J:
        """The object :meth:`to_json` wrote (the keywords go to ``json.loads``)."""
        return cls.from_dict(json.loads(text, **kwargs), infer_missing=infer_missing)

    @classmethod
    def from_dict(cls: type[J], values: Any, *, infer_missing: bool = False) -> J:
        """The object :meth:`to_dict` described."""
        fast = None if infer_missing else _fast_from_dict(cls, values)
        if fast is not None:
            return fast
        method = _library().from_dict.__func__  # type: ignore[attr-defined]
        return method(cls, values, infer_missing=infer_missing)  # type: ignore[no-any-return]

    @classmethod
    def schema(cls, **kwargs: Any) -> Any:
        """A marshmallow schema of this class (``DataClassJsonMixin.schema``)."""
        return _library().schema.__func__(cls, **kwargs)  # type: ignore[attr-defined]
