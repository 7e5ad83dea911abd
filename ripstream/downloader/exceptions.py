"""The exception tree of RipStream.

Every error a download can end with is one of these, so callers can catch exactly what
they mean to handle::

    DownloadError                      base of everything; .url, .source
    ├── ConfigError                    a bad setting or input value; .field, .value
    ├── NetworkError                   the transfer failed; .status_code
    │   ├── ConnectionFailedError      reset, dropped mid-body                 (retried)
    │   │   ├── ConnectionRefused          refused                    (retried twice, briefly)
    │   │   └── HostNotFoundError          the name does not resolve       (not retried)
    │   ├── StallError                 no progress / too slow for too long     (retried)
    │   ├── IncompleteBodyError        fewer bytes than promised               (retried)
    │   ├── ServerError                408, 425, 5xx                           (retried)
    │   ├── RateLimitError             429; .retry_after seconds               (retried)
    │   ├── ResponseMismatchError      status / Content-Range / encoding not what was asked
    │   ├── HTTPStatusError            any other 4xx
    │   ├── ContentNotFoundError       404, 410
    │   ├── RedirectError              loop, too many hops, a scheme other than http(s)
    │   └── TLSError                   certificate verification failed
    ├── AuthenticationError            401, 403, or a source refusing credentials
    ├── ChecksumError                  bytes on disk differ from the expected digest
    ├── TooLargeError                  the file is larger than max_filesize; .limit
    ├── StorageError                   disk full, permission denied; .path
    │   └── TargetExistsError          the final path exists and the policy is "error"
    ├── RetryExhaustedError            .retry_count, .last_error
    ├── DownloadCancelledError         cancelled by the user (Ctrl-C, cancel event)
    ├── QueueFullError                 .max_size
    ├── TaskStateError                 unknown task, or a transition that is not allowed
    └── SourceError                    no source claims a URL, or a plugin failed to load

Fields are keyword-only, every exception pickles with its fields (results cross thread and
process boundaries), and a class attribute ``retryable`` says whether the retry loop may try
again: that list is the single place where "which errors are retried" is decided (and
``retry_limit``, when set, bounds how often).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ChecksumError",
    "ConfigError",
    "ConnectionFailedError",
    "ConnectionRefused",
    "ContentNotFoundError",
    "DownloadCancelledError",
    "DownloadError",
    "HTTPStatusError",
    "HostNotFoundError",
    "IncompleteBodyError",
    "NetworkError",
    "QueueFullError",
    "RateLimitError",
    "RedirectError",
    "ResponseMismatchError",
    "RetryExhaustedError",
    "ServerError",
    "SourceError",
    "StallError",
    "StorageError",
    "TLSError",
    "TargetExistsError",
    "TaskStateError",
    "TooLargeError",
    "error_from_dict",
    "error_to_dict",
]


def _rebuild(cls: type[DownloadError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class DownloadError(Exception):
    """Base of every RipStream error.

    :param message: a sentence saying what went wrong, naming the thing that was wrong.
    :param url: the URL involved, if any (already redacted of credentials).
    :param source: the source name involved, if any.

    Example::

        try:
            downloader.download(content, raise_on_error=True)
        except DownloadError as exc:
            print(exc, exc.url)
    """

    retryable: bool = False
    #: at most this many retries for this kind of error, however many are configured
    retry_limit: int | None = None

    def __init__(self, message: str, *, url: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.source = source

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def __str__(self) -> str:
        return self.message


class ConfigError(DownloadError, ValueError):
    """A setting, option or input value is invalid; names the field and the bad value."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class NetworkError(DownloadError):
    """The transfer itself failed; ``status_code`` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.status_code = status_code


class ConnectionFailedError(NetworkError):
    """The connection could not be made, or broke before the body was complete."""

    retryable = True


class ConnectionRefused(ConnectionFailedError):
    """Nothing listens at the address: retried twice with short waits (a server restarting),
    then given up, as curl does at once."""

    retry_limit = 2


class HostNotFoundError(ConnectionFailedError):
    """The host name does not resolve: a typo or no network; not retried."""

    retryable = False


class StallError(NetworkError):
    """No bytes arrived for too long, or the speed stayed under the floor for a whole window."""

    retryable = True


class IncompleteBodyError(NetworkError):
    """The body ended before the promised length; ``expected`` and ``received`` are byte counts."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = None,
        expected: int | None = None,
        received: int | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.expected = expected
        self.received = received


class ServerError(NetworkError):
    """A transient server-side status (408, 425, 5xx) that may succeed later."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source, status_code=status_code)
        self.retry_after = retry_after


class RateLimitError(ServerError):
    """The server said 429; ``retry_after`` is how many seconds it asked us to wait."""


class ResponseMismatchError(NetworkError):
    """The response was not what was asked for (status, Content-Range, encoding, length)."""

    retryable = True


class HTTPStatusError(NetworkError):
    """A client-error status that retrying will not fix."""


class ContentNotFoundError(HTTPStatusError):
    """The content does not exist (404, 410, or a source's own not-found answer)."""


class RedirectError(NetworkError):
    """A redirect loop, too many hops, or a redirect to a scheme other than http(s)."""


class TLSError(NetworkError):
    """The server's certificate could not be verified."""


class AuthenticationError(DownloadError):
    """Credentials are missing, wrong, or not enough for this content (401, 403)."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.status_code = status_code


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the expected digest.

    ``refetch`` marks the first mismatch of a download: the retry policy fetches the whole
    file once more (without counting it against ``max_retries``); a second one is final.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = None,
        algorithm: str,
        expected: str,
        actual: str,
        refetch: bool = False,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual
        self.refetch = refetch


class TooLargeError(DownloadError):
    """The file is larger than ``max_filesize`` allows (declared, or while it streamed)."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.limit = limit


class StorageError(DownloadError):
    """The file could not be written: disk full, permission denied, bad path."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.path = path


class TargetExistsError(StorageError):
    """The final path already exists and the overwrite policy forbids replacing it."""


class RetryExhaustedError(DownloadError):
    """Every attempt failed; ``last_error`` is the final attempt's typed error."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = None,
        retry_count: int,
        last_error: DownloadError | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.retry_count = retry_count
        self.last_error = last_error


class DownloadCancelledError(DownloadError):
    """The download was cancelled before it finished; the ``.part`` file is kept for resume."""


class QueueFullError(DownloadError):
    """The queue already holds ``max_size`` tasks."""

    def __init__(self, message: str, *, max_size: int) -> None:
        super().__init__(message)
        self.max_size = max_size


class TaskStateError(DownloadError):
    """An unknown task id, a duplicate id, or a state transition that is not allowed."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class SourceError(DownloadError):
    """No source claims a URL, or a source plugin failed to load."""


def error_to_dict(error: DownloadError) -> dict[str, Any]:
    """``error`` as JSON-ready data: its class name, message and fields (nested errors too)."""
    fields: dict[str, Any] = {}
    for key, value in vars(error).items():
        if isinstance(value, DownloadError):
            fields[key] = {"__error__": error_to_dict(value)}
        elif value is None or isinstance(value, str | int | float | bool):
            fields[key] = value
        else:
            fields[key] = str(value)
    return {"type": type(error).__name__, "fields": fields}


def error_from_dict(data: dict[str, Any]) -> DownloadError:
    """The typed error :func:`error_to_dict` described; an unknown class becomes its nearest
    known base, :class:`DownloadError` (a plugin's error class may not exist here)."""
    kinds = {kind.__name__: kind for kind in _subclasses(DownloadError)}
    kind = kinds.get(str(data.get("type")), DownloadError)
    fields = {
        key: error_from_dict(value["__error__"])
        if isinstance(value, dict) and "__error__" in value
        else value
        for key, value in dict(data.get("fields") or {}).items()
    }
    error = kind.__new__(kind)
    error.__dict__.update(fields)
    error.args = (fields.get("message", ""),)
    return error


def _subclasses(kind: type[DownloadError]) -> list[type[DownloadError]]:
    found = [kind]
    for sub in kind.__subclasses__():
        found += _subclasses(sub)
    return found
