"""The import paths SPEC.md promises, and complete, sorted ``__all__`` lists."""

from __future__ import annotations
import __future__

import importlib
import inspect
import types

import pytest

import ripstream.downloader
import ripstream.downloader.exceptions

SPEC_NAMES = [
    "BaseDownloader",
    "DownloadableContent",
    "DownloadResult",
    "ContentType",
    "DownloadConfig",
    "DownloaderConfig",
    "DownloadBehaviorSettings",
    "DownloadSettings",
    "RetryStrategy",
    "SessionManager",
    "DownloadSession",
    "ProgressTracker",
    "DownloadProgress",
    "ProgressCallback",
    "DownloadQueue",
    "DownloadTask",
    "TaskState",
    "DownloadManager",
]

SPEC_EXCEPTIONS = [
    "DownloadError",
    "NetworkError",
    "AuthenticationError",
    "RateLimitError",
    "RetryExhaustedError",
    "ChecksumError",
    "ContentNotFoundError",
    "QueueFullError",
    "ConfigError",
]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_spec_names_import_from_the_package(name: str) -> None:
    module = importlib.import_module("ripstream.downloader")
    assert hasattr(module, name), f"ripstream.downloader has no {name}"
    assert name in ripstream.downloader.__all__


def test_seed_aliases_are_the_same_objects() -> None:
    from ripstream.downloader import (
        DownloadBehaviorSettings,
        DownloadConfig,
        DownloaderConfig,
        DownloadSettings,
    )

    assert DownloaderConfig is DownloadConfig
    assert DownloadSettings is DownloadBehaviorSettings


@pytest.mark.parametrize("name", SPEC_EXCEPTIONS)
def test_spec_exceptions_import_from_the_exceptions_module(name: str) -> None:
    cls = getattr(ripstream.downloader.exceptions, name)
    assert issubclass(cls, ripstream.downloader.exceptions.DownloadError)
    assert name in ripstream.downloader.exceptions.__all__


def test_spec_exception_fields() -> None:
    from ripstream.downloader.exceptions import (
        DownloadError,
        NetworkError,
        RateLimitError,
        RetryExhaustedError,
    )

    network = NetworkError("HTTP 502", url="https://h/x", status_code=502)
    assert (network.status_code, network.url) == (502, "https://h/x")
    limited = RateLimitError("HTTP 429", retry_after=9.0)
    assert limited.retry_after == 9.0
    assert isinstance(limited, NetworkError)
    exhausted = RetryExhaustedError("gave up", retry_count=4, last_error=limited)
    assert (exhausted.retry_count, exhausted.last_error) == (4, limited)
    assert isinstance(exhausted, DownloadError)


def test_package_exceptions_are_the_same_classes() -> None:
    for name in SPEC_EXCEPTIONS:
        if hasattr(ripstream.downloader, name):
            assert getattr(ripstream.downloader, name) is getattr(
                ripstream.downloader.exceptions, name
            )


def _public_namespace(module: types.ModuleType) -> set[str]:
    """Public names bound in ``module`` other than submodules and ``__future__`` features."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not isinstance(value, __future__._Feature)
    }


def _defined_in(module: types.ModuleType) -> set[str]:
    """Public classes and functions whose home is ``module`` itself."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


def test_package_all_is_sorted_and_complete() -> None:
    exported = ripstream.downloader.__all__
    assert exported == sorted(exported)
    assert len(exported) == len(set(exported))
    assert set(exported) == _public_namespace(ripstream.downloader)
    for name in exported:
        assert getattr(ripstream.downloader, name) is not None


def test_exceptions_all_is_sorted_and_complete() -> None:
    module = ripstream.downloader.exceptions
    exported = module.__all__
    assert exported == sorted(exported)
    assert len(exported) == len(set(exported))
    assert set(exported) == _defined_in(module)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from ripstream.downloader import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(ripstream.downloader.__all__)
