"""A total deadline for a response's status line and headers.

A read timeout bounds each wait for a byte, so a server that drips its headers one byte at a
time, or sends ``100 Continue`` forever, is never stopped by it. Here every receive made
while the headers are read gets only what is left of one deadline; after the headers, reads
go straight to the socket. :class:`DeadlineAdapter` plugs this into a ``requests.Session``
through urllib3's connection classes, for plain connections, TLS, and connections through an
HTTP or a SOCKS proxy (whose own connection classes keep doing the tunnelling).

With TLS verification turned off on purpose (``verify_ssl=False``, ``-k``), the adapter's
HTTPS pools do not raise urllib3's ``InsecureRequestWarning`` on every connection: the
session says it once itself (see :mod:`ripstream.downloader.session`).
"""

from __future__ import annotations

import io
import socket
import time
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["DeadlineAdapter"]


class _DeadlineSocket:
    """A socket whose receives share one deadline while ``deadline`` is set."""

    def __init__(self, sock: Any, deadline: float) -> None:
        self._sock = sock
        self.deadline: float | None = deadline
        self.files: list[Any] = []

    def close_files(self) -> None:
        """Close the readers made for a response that never came to be: http.client drops
        them unclosed when the headers fail to parse or time out, and they would hold the
        socket open until the garbage collector found them."""
        for reader in self.files:
            reader.close()

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        deadline = self.deadline
        if deadline is None:
            return int(self._sock.recv_into(buffer, nbytes, flags))
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the response headers did not arrive in time")
        usual = self._sock.gettimeout()
        if usual is not None and usual <= left:
            # the read timeout ends first anyway: no need for two system calls to say so
            return int(self._sock.recv_into(buffer, nbytes, flags))
        self._sock.settimeout(left)
        try:
            return int(self._sock.recv_into(buffer, nbytes, flags))
        finally:
            self._sock.settimeout(usual)

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_: Any) -> Any:
        """A buffered reader whose receives come through :meth:`recv_into`."""
        self._sock._io_refs += 1
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]
        size = io.DEFAULT_BUFFER_SIZE if buffering in (None, -1) else buffering
        reader = io.BufferedReader(raw, size)
        self.files.append(reader)
        return reader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _HeaderDeadline:
    """Mixed into urllib3's connections: the headers of each response share one deadline."""

    header_timeout: float = 60.0

    def getresponse(self) -> Any:
        sock = getattr(self, "sock", None)
        if sock is None:
            return super().getresponse()  # type: ignore[misc]
        wrapper = _DeadlineSocket(sock, time.monotonic() + self.header_timeout)
        self.sock = wrapper
        try:
            return super().getresponse()  # type: ignore[misc]
        except BaseException:
            wrapper.close_files()
            raise
        finally:
            wrapper.deadline = None  # the body is bounded by the read timeout and speed floor
            if self.sock is wrapper:
                self.sock = sock


class _Unwarned:
    """Mixed into HTTPS pools of a session that turned verification off on purpose: urllib3's
    ``_validate_conn`` less its ``InsecureRequestWarning`` (the session says it once)."""

    def _validate_conn(self, conn: Any) -> None:
        HTTPConnectionPool._validate_conn(self, conn)  # type: ignore[arg-type]
        if conn.is_closed:
            conn.connect()  # as urllib3 does: connect early, so TLS errors surface here


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections bound the wait for a response's headers.

    :param header_timeout: seconds for the status line and all headers together.
    :param warn_unverified: keep urllib3's per-connection warning about unverified TLS
        (``False`` when the caller turned verification off and says so once itself).
    """

    def __init__(
        self, *, header_timeout: float, warn_unverified: bool = True, **kwargs: Any
    ) -> None:
        self._header_timeout = header_timeout
        self._warn_unverified = warn_unverified
        self._classes = _pool_classes(header_timeout, socks=False, warn=warn_unverified)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._classes)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        # a SOCKS manager's pools connect through the SOCKS proxy: keep its classes under ours
        socks = proxy.lower().startswith("socks")
        manager.pool_classes_by_scheme = _pool_classes(
            self._header_timeout, socks=socks, warn=self._warn_unverified
        )
        return manager


def _pool_classes(
    header_timeout: float, *, socks: bool, warn: bool
) -> dict[str, type[HTTPConnectionPool]]:
    plain_conn: type[HTTPConnection] = HTTPConnection
    tls_conn: type[HTTPConnection] = HTTPSConnection
    plain_pool: type[HTTPConnectionPool] = HTTPConnectionPool
    tls_pool: type[HTTPConnectionPool] = HTTPSConnectionPool
    if socks:
        from urllib3.contrib import socks as via_socks  # needs PySocks, an install requirement

        plain_conn, tls_conn = via_socks.SOCKSConnection, via_socks.SOCKSHTTPSConnection
        plain_pool, tls_pool = via_socks.SOCKSHTTPConnectionPool, via_socks.SOCKSHTTPSConnectionPool
    limit = {"header_timeout": header_timeout}
    plain = type("DeadlineHTTPConnection", (_HeaderDeadline, plain_conn), limit)
    tls = type("DeadlineHTTPSConnection", (_HeaderDeadline, tls_conn), limit)
    tls_bases: tuple[type, ...] = (tls_pool,) if warn else (_Unwarned, tls_pool)
    return {
        "http": type("DeadlineHTTPPool", (plain_pool,), {"ConnectionCls": plain}),
        "https": type("DeadlineHTTPSPool", tls_bases, {"ConnectionCls": tls}),
    }
