"""The application plugged into the framework: sources by name, tags, the archive.

Everything here is what the framework deliberately does not know: the source registry
(built-in sources and entry-point plugins), credentials, the tag writer and the download
archive. They reach the engine and the manager as a source factory, post-processors and run
hooks, and the factory is a picklable function so worker processes build their own sources.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping

from ripstream.app.config import AppConfig
from ripstream.app.credentials import credentials_for
from ripstream.downloader.base import BaseDownloader
from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.services import PostProcessor
from ripstream.downloader.worker import SourceFactory
from ripstream.library.tags import TagWriter
from ripstream.sources import SourceRegistry, load_registry

__all__ = ["build_source", "post_processors", "source_factory"]


def build_source(
    app_json: str,
    name: str,
    config: DownloadConfig,
    *,
    registry: SourceRegistry | None = None,
    environ: Mapping[str, str] | None = None,
) -> BaseDownloader:
    """Build the source called ``name`` and log it in from the config and the environment
    (never a prompt: this also runs in worker processes).

    :raises SourceError: when no such source is installed.
    :raises AuthenticationError: when it needs a secret nobody gave.
    """
    app = AppConfig.from_dict(_json(app_json))
    kind = (registry or load_registry()).get(name)
    source = kind(config)
    credentials = credentials_for(kind, app, environ=os.environ if environ is None else environ)
    if credentials or kind.required_credentials:
        source.authenticate(credentials)
    return source


def source_factory(app: AppConfig, registry: SourceRegistry | None = None) -> SourceFactory:
    """A picklable ``factory(name, config)`` for the manager (built-in registry), or a local
    one over ``registry`` (a registry with extra classes cannot cross to other processes)."""
    if registry is None:
        return functools.partial(build_source, _dumps(app))
    return functools.partial(build_source, _dumps(app), registry=registry)


def post_processors(app: AppConfig) -> tuple[PostProcessor, ...]:
    """The engine's post-processors for ``app``: the tag writer when tags are on."""
    return (TagWriter(),) if app.write_tags else ()


def _dumps(app: AppConfig) -> str:
    return json.dumps(app.to_dict())


def _json(text: str) -> object:
    return json.loads(text)
