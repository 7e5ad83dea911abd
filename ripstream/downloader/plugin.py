"""The source author's toolkit: everything a source may import from RipStream, in one place.

A source subclasses :class:`BaseDownloader` and only *resolves*: it says which URLs it claims,
logs in, and turns a URL or an id into :class:`DownloadableContent` / :class:`DownloadTask`
with typed :class:`TrackMetadata`. The engine does the rest. The built-in sources import
from this module only, and so should plugins; names here keep working across releases, while
everything else in :mod:`ripstream.downloader` may change.

Example::

    from ripstream.downloader.plugin import (
        BaseDownloader, ContentType, DownloadableContent, TrackMetadata,
    )

    class MyService(BaseDownloader):
        source_name = "my_service"
        supported_content_types = [ContentType.TRACK]

        def authenticate(self, credentials):
            self.session.http.headers["X-Api-Key"] = credentials["api_key"]
            return True

        def get_download_info(self, content_id):
            info = self.session.get_json(f"https://api.example.com/tracks/{content_id}")
            return DownloadableContent(
                content_id=content_id, content_type=ContentType.TRACK,
                source=self.source_name, title=info["title"], url=info["url"],
                metadata=TrackMetadata(title=info["title"], tracknumber=info["n"]),
            )

What is here:

* the contract: :class:`BaseDownloader`, :class:`DownloadableContent`, :class:`TrackMetadata`,
  :class:`ContentType`, :class:`DownloadTask`, :class:`Checksum`, :class:`FinalName` (what
  ``final_name`` returns: a name found from the bytes);
* HTTP: :class:`DownloadSession` (``self.session``: ``get``, ``get_json``, ``request``, all
  rate limited and mapped to typed errors), :func:`error_for_status`,
  :func:`map_request_error`, :func:`parse_retry_after`;
* naming: :func:`render_template`, :func:`safe_filename`, :func:`filename_from_url`;
* URLs: :func:`validate_http_url`, :func:`redact_url`, :func:`redact_text`;
* retries: :func:`call_with_retries` (or ``self.retrying(...)``, which uses the source's
  settings and stops on cancel);
* the errors a source raises, all :class:`DownloadError` subclasses.
"""

from __future__ import annotations

from ripstream.downloader.base import BaseDownloader
from ripstream.downloader.content import (
    Checksum,
    ContentType,
    DownloadableContent,
    TrackMetadata,
)
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    ContentNotFoundError,
    DownloadError,
    HTTPStatusError,
    IncompleteBodyError,
    NetworkError,
    RateLimitError,
    ResponseMismatchError,
    ServerError,
    SourceError,
    StorageError,
)
from ripstream.downloader.files import filename_from_url, render_template, safe_filename
from ripstream.downloader.httperrors import error_for_status, map_request_error
from ripstream.downloader.placement import FinalName
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.retry import call_with_retries, parse_retry_after
from ripstream.downloader.session import DownloadSession
from ripstream.downloader.urls import redact_text, redact_url, validate_http_url

__all__ = [
    "AuthenticationError",
    "BaseDownloader",
    "Checksum",
    "ConfigError",
    "ContentNotFoundError",
    "ContentType",
    "DownloadError",
    "DownloadSession",
    "DownloadTask",
    "DownloadableContent",
    "FinalName",
    "HTTPStatusError",
    "IncompleteBodyError",
    "NetworkError",
    "RateLimitError",
    "ResponseMismatchError",
    "ServerError",
    "SourceError",
    "StorageError",
    "TrackMetadata",
    "call_with_retries",
    "error_for_status",
    "filename_from_url",
    "map_request_error",
    "parse_retry_after",
    "redact_text",
    "redact_url",
    "render_template",
    "safe_filename",
    "validate_http_url",
]
