"""The RipStream downloader framework: subclass :class:`BaseDownloader`, get the rest free.

Every public name is importable from here; see the submodules for the details.
"""

from __future__ import annotations

from ripstream.downloader.bars import TqdmProgress
from ripstream.downloader.base import BaseDownloader
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
    TrackMetadata,
)
from ripstream.downloader.engine import DownloadEngine
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
from ripstream.downloader.executors import ExecutorStrategy, GivenExecutor, Processes, Threads
from ripstream.downloader.fetch import Fetcher, FetcherRegistry, FetchJob
from ripstream.downloader.manager import DownloadManager, RunHook
from ripstream.downloader.placement import PathClaims
from ripstream.downloader.progress import DownloadProgress, ProgressCallback, ProgressTracker
from ripstream.downloader.queue import DownloadQueue, DownloadTask, TaskState
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.services import (
    EngineServices,
    PostProcessor,
    ProgressReporter,
)
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
    "DownloadEngine",
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
    "EngineServices",
    "ExecutorStrategy",
    "FetchJob",
    "Fetcher",
    "FetcherRegistry",
    "GivenExecutor",
    "NetworkError",
    "OverwritePolicy",
    "PathClaims",
    "PostProcessor",
    "Processes",
    "ProgressCallback",
    "ProgressReporter",
    "ProgressTracker",
    "QueueFullError",
    "RateLimitError",
    "ResultStatus",
    "RetryExhaustedError",
    "RetryStrategy",
    "RunHook",
    "SessionManager",
    "TaskState",
    "Threads",
    "TokenBucket",
    "TqdmProgress",
    "TrackMetadata",
    "parse_rate",
]
