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

from collections.abc import Callable
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
        return _library().to_json(self, **kwargs)  # type: ignore[arg-type]

    def to_dict(self, encode_json: bool = False) -> dict[str, Any]:
        """This object as a dict of plain values."""
        return _library().to_dict(self, encode_json)  # type: ignore[arg-type]

    @classmethod
    def from_json(
        cls: type[J], text: str | bytes, *, infer_missing: bool = False, **kwargs: Any
    ) -> J:
        """The object :meth:`to_json` wrote (the keywords go to ``json.loads``)."""
        method = _library().from_json.__func__  # type: ignore[attr-defined]
        return method(cls, text, infer_missing=infer_missing, **kwargs)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls: type[J], values: Any, *, infer_missing: bool = False) -> J:
        """The object :meth:`to_dict` described."""
        method = _library().from_dict.__func__  # type: ignore[attr-defined]
        return method(cls, values, infer_missing=infer_missing)  # type: ignore[no-any-return]

    @classmethod
    def schema(cls, **kwargs: Any) -> Any:
        """A marshmallow schema of this class (``DataClassJsonMixin.schema``)."""
        return _library().schema.__func__(cls, **kwargs)  # type: ignore[attr-defined]
