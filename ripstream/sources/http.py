"""The built-in ``http`` source: direct http(s) URLs, downloaded as they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ripstream.downloader.plugin import (
    BaseDownloader,
    ContentType,
    DownloadableContent,
    filename_from_url,
    validate_http_url,
)

__all__ = ["HttpDownloader", "validate_http_url"]


class HttpDownloader(BaseDownloader):
    """Downloads plain http(s) URLs; the content id is the URL itself. Thread-safe.

    Example::

        with HttpDownloader(DownloadConfig(download_directory=Path("out"))) as http:
            result = http.download(http.get_download_info("https://example.com/a.flac"))
    """

    source_name: ClassVar[str] = "http"
    supported_content_types: ClassVar[list[ContentType]] = [
        ContentType.FILE,
        ContentType.TRACK,
    ]
    description: ClassVar[str] = "direct http:// and https:// URLs"
    url_patterns: ClassVar[tuple[str, ...]] = ("http://...", "https://...")

    @classmethod
    def claims_url(cls, url: str) -> bool:
        """True for http and https URLs."""
        # by prefix, so a malformed http URL is still ours and gets a message saying what is wrong
        return url.strip().lower().startswith(("http://", "https://"))

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        """Use HTTP basic auth (``username``/``password``) and/or extra ``headers``.

        Credentials are never sent to another host on a redirect.
        """
        http = self.session.http  # the session's own configuration: auth and headers
        if "username" in credentials:
            http.auth = (str(credentials["username"]), str(credentials.get("password", "")))
        headers = credentials.get("headers") or {}
        http.headers.update({str(k): str(v) for k, v in dict(headers).items()})
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        """Describe the URL ``content_id``; the name comes from the URL (or Content-Disposition
        when the server sends one).

        :raises ConfigError: for a malformed URL or a scheme other than http(s).
        """
        url = validate_http_url(content_id)
        name = filename_from_url(url)
        return DownloadableContent(
            content_id=url,
            content_type=ContentType.FILE,
            source=self.source_name,
            title=name or urlsplit(url).hostname or "download",
            url=url,
        )
