"""The RipStream downloader framework: subclass :class:`BaseDownloader`, get the rest free.

Every public name is importable from here; see the submodules for the details.
"""

from __future__ import annotations

from ripstream.downloader.base import BaseDownloader, PathClaims, ProgressReporter
from ripstream.downloader.config import (
    DownloadBehaviorSettings,
    DownloadConfig,
    OverwritePolicy,
    RetryStrategy,
    parse_rate,
)
from ripstream.downloader.content import (
    Checksum,
    ContentType,
    DownloadableContent,
    DownloadResult,
    ResultStatus,
)
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ChecksumError,
    ConfigError,
    ContentNotFoundError,
    DownloadCancelledError,
    DownloadError,
    NetworkError,
    QueueFullError,
    RateLimitError,
    RetryExhaustedError,
)
from ripstream.downloader.manager import DownloadManager
from ripstream.downloader.progress import (
    DownloadProgress,
    ProgressCallback,
    ProgressTracker,
    TqdmProgress,
)
from ripstream.downloader.queue import DownloadQueue, DownloadTask, TaskState
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.session import DownloadSession, SessionManager

#: The seed's names for the same classes.
DownloaderConfig = DownloadConfig
DownloadSettings = DownloadBehaviorSettings

__all__ = [
    "AuthenticationError",
    "BaseDownloader",
    "Checksum",
    "ChecksumError",
    "ConfigError",
    "ContentNotFoundError",
    "ContentType",
    "DownloadBehaviorSettings",
    "DownloadCancelledError",
    "DownloadConfig",
    "DownloadError",
    "DownloadManager",
    "DownloadProgress",
    "DownloadQueue",
    "DownloadResult",
    "DownloadSession",
    "DownloadSettings",
    "DownloadTask",
    "DownloadableContent",
    "DownloaderConfig",
    "NetworkError",
    "OverwritePolicy",
    "PathClaims",
    "ProgressCallback",
    "ProgressReporter",
    "ProgressTracker",
    "QueueFullError",
    "RateLimitError",
    "ResultStatus",
    "RetryExhaustedError",
    "RetryStrategy",
    "SessionManager",
    "TaskState",
    "TokenBucket",
    "TqdmProgress",
    "parse_rate",
]
