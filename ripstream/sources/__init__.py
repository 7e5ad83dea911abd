"""Sources: the built-in ones, and plugins found through the ``ripstream.sources`` entry points.

A source is a :class:`~ripstream.downloader.BaseDownloader` subclass. To be found by URL it
also defines a ``claims_url(url) -> bool`` classmethod (and optionally ``description`` and
``url_patterns`` for ``python -m ripstream sources``).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ripstream.downloader.base import BaseDownloader
from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.exceptions import SourceError
from ripstream.sources.http import HttpDownloader

__all__ = [
    "ENTRY_POINT_GROUP",
    "HttpDownloader",
    "LazySource",
    "SourceRegistry",
    "create_downloader",
    "load_registry",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ripstream.sources"


@functools.lru_cache(maxsize=8)
def _plugin_entry_points(group: str) -> tuple[EntryPoint, ...]:
    """The entry points of ``group``, read once per process: reading them walks every
    installed distribution (milliseconds), and a run asks for the registry several times."""
    return tuple(entry_points(group=group))


@dataclass(frozen=True, slots=True)
class LazySource:
    """A built-in source imported only when a URL may be its own, or when it is named: a run
    of plain URLs never pays for the Subsonic or archive.org modules.

    :param might_claim: a cheap test that every URL the source claims passes (the source's
        own ``claims_url`` then decides).
    """

    name: str
    module: str
    attr: str
    might_claim: Callable[[str], bool]

    def load(self) -> type[BaseDownloader]:
        """The source class."""
        loaded: type[BaseDownloader] = getattr(importlib.import_module(self.module), self.attr)
        return loaded


def _subsonic_scheme(url: str) -> bool:
    return url.strip()[:12].lower().startswith(("subsonic://", "subsonics://"))


def _archive_host(url: str) -> bool:
    return "archive.org" in url.lower()


_LAZY_BUILTINS = (
    LazySource("subsonic", "ripstream.sources.subsonic", "SubsonicDownloader", _subsonic_scheme),
    LazySource(
        "internet_archive",
        "ripstream.sources.internet_archive",
        "InternetArchiveDownloader",
        _archive_host,
    ),
)


@dataclass
class SourceRegistry:
    """Source classes by name, plus the plugins that failed to load. Not thread-safe to mutate.

    Example::

        registry = load_registry()
        downloader_class = registry.for_url("https://example.com/a.mp3")
    """

    sources: dict[str, type[BaseDownloader]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    lazy: dict[str, LazySource] = field(default_factory=dict)

    def register(self, source: type[BaseDownloader], name: str | None = None) -> None:
        """Add ``source`` under ``name`` (default: its ``source_name``)."""
        key = name or _class_source_name(source)
        self.lazy.pop(key, None)
        self.sources[key] = source

    def register_lazy(self, source: LazySource) -> None:
        """Add a source to import on first need (:class:`LazySource`)."""
        if source.name not in self.sources:
            self.lazy[source.name] = source

    def _load(self, name: str) -> type[BaseDownloader]:
        loaded = self.lazy[name].load()
        self.register(loaded, name)
        return loaded

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load installed plugins; a broken one is recorded in :attr:`broken` and skipped."""
        for entry_point in _plugin_entry_points(group):
            try:
                loaded = entry_point.load()
                if not (isinstance(loaded, type) and issubclass(loaded, BaseDownloader)):
                    raise TypeError(f"{entry_point.value} is not a BaseDownloader subclass")
                self.register(loaded, entry_point.name)
            except Exception as exc:  # noqa: BLE001 - a plugin bug must not stop the others
                message = f"{type(exc).__name__}: {exc}"
                logger.warning("source plugin %r failed to load: %s", entry_point.name, message)
                self.broken[entry_point.name] = message

    def get(self, name: str) -> type[BaseDownloader]:
        """The source class called ``name``.

        :raises SourceError: when none is installed (or its plugin is broken).
        """
        if name in self.lazy:
            return self._load(name)
        try:
            return self.sources[name]
        except KeyError:
            if name in self.broken:
                raise SourceError(
                    f"source {name!r} failed to load: {self.broken[name]}", source=name
                ) from None
            installed = ", ".join(sorted({*self.sources, *self.lazy}))
            raise SourceError(
                f"no source called {name!r}; installed: {installed}", source=name
            ) from None

    def for_url(self, url: str) -> type[BaseDownloader]:
        """The source that claims ``url``; plugins are asked before the built-in http source.

        :raises SourceError: when no source claims it.
        """
        for name, lazy in list(self.lazy.items()):
            if lazy.might_claim(url):
                self._load(name)
        ordered = sorted(self.sources.values(), key=lambda cls: cls is HttpDownloader)
        for source in ordered:
            try:
                claimed = source.claims_url(url)
            except Exception as exc:  # noqa: BLE001 - a plugin's bug must not stop the others
                logger.warning("source %s failed to check %r: %s", source.__name__, url, exc)
                continue
            if claimed:
                return source
        raise SourceError(f"no installed source handles {url!r}", url=url)

    def __iter__(self) -> Any:
        for name in list(self.lazy):
            self._load(name)
        return iter(sorted(self.sources.items()))


def load_registry(
    *, plugins: bool = True, extra: Iterable[type[BaseDownloader]] = ()
) -> SourceRegistry:
    """A registry of the built-in sources, installed plugins, and ``extra``."""
    registry = SourceRegistry()
    registry.register(HttpDownloader)
    for lazy in _LAZY_BUILTINS:
        registry.register_lazy(lazy)
    if plugins:
        registry.load_entry_points()
    for source in extra:
        registry.register(source)
    return registry


def create_downloader(source: str, config: DownloadConfig | None = None) -> BaseDownloader:
    """Instantiate the installed source called ``source``.

    :raises SourceError: when there is none.
    """
    return load_registry().get(source)(config)


def _class_source_name(source: type[BaseDownloader]) -> str:
    name = source.__dict__.get("source_name")
    if isinstance(name, str):
        return name
    for klass in source.__mro__:
        value = klass.__dict__.get("source_name")
        if isinstance(value, str):
            return value
    raise SourceError(
        f"{source.__name__} has no class-level source_name; set "
        "source_name = '...' on the class or pass a name"
    )
