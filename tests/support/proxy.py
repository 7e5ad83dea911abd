"""Real forwarding proxies on 127.0.0.1 for tests: an HTTP proxy and a SOCKS5 server.

Both forward to addresses on this machine only (a loopback address, ``localhost``, or a name
in their own ``hosts`` table that maps to one), record every request that went through them,
and are bounded: at most :data:`MAX_CONNECTIONS` connections at once, every socket with a
timeout, and :meth:`RelayServer.stop` (or the end of the ``with`` block) closes every socket
and joins every thread.

:class:`HTTPProxy` handles an absolute-URI request (``GET http://host:port/path``, forwarded
in origin form with ``Connection: close``) and ``CONNECT host:port`` tunnels (for https://).
With ``auth=(user, password)`` it answers 407 to a request without the matching
``Proxy-Authorization: Basic`` header.

:class:`Socks5Proxy` speaks RFC 1928 (``CONNECT`` only) with no authentication or, with
``auth=(user, password)``, RFC 1929 user/password. A domain name in a request is resolved
here, on the proxy side, through ``hosts`` (a name only the proxy knows is how a test proves
that ``socks5h://`` left resolution to the proxy).

Example::

    with HTTPProxy() as proxy:
        ...  # --proxy proxy.url
        assert [r.method for r in proxy.log] == ["GET"]
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import selectors
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Self
from urllib.parse import urlsplit

__all__ = [
    "MAX_CONNECTIONS",
    "PROXY_ONLY_HOST",
    "HTTPProxy",
    "ProxiedRequest",
    "RelayServer",
    "Socks5Proxy",
]

PROXY_ONLY_HOST: Final = "music.proxy-only.test"
"""A name that no resolver knows (``.test`` is reserved) and a proxy's ``hosts`` can map:
reaching it proves that the proxy, not this machine, resolved it. Tests never let this machine
look it up."""
MAX_CONNECTIONS: Final = 64
"""Connections served at once; more are closed at accept."""
IO_TIMEOUT: Final = 10.0
"""Seconds any one socket operation, or a tunnel with no traffic either way, may take."""
JOIN_TIMEOUT: Final = 5.0
MAX_HEAD: Final = 64 * 1024


class _Closed(Exception):
    """The peer closed the connection before a complete message."""


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy accepted and tried to forward."""

    method: str  # GET, CONNECT (HTTP proxy) or SOCKS5-CONNECT
    target: str  # the request target as sent: an absolute URI, host:port, or host:port
    host: str  # the host the client asked for, unresolved (a name or an address)
    port: int
    #: the credentials the client sent (Proxy-Authorization or SOCKS user/password), if any
    credentials: tuple[str, str] | None = None
    #: SOCKS only: the kind of address the client sent (``domain``, ``ipv4``, ``ipv6``)
    address_type: str | None = None


class RelayServer:
    """The accept loop, the bounds, the log and the relaying shared by both proxies."""

    __test__ = False

    def __init__(
        self,
        *,
        hosts: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.hosts = {"localhost": "127.0.0.1", **(hosts or {})}
        self.auth = auth
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._log: list[ProxiedRequest] = []
        self._refused: list[str] = []
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._accepting: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        self._accepting = threading.Thread(
            target=self._accept_loop, name=f"proxy-{self.port}", daemon=True
        )
        self._accepting.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        if self._accepting is not None:
            self._accepting.join(JOIN_TIMEOUT)
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ what happened
    @property
    def log(self) -> list[ProxiedRequest]:
        """Every request that came through, in order."""
        with self._lock:
            return list(self._log)

    @property
    def refused(self) -> list[str]:
        """Why requests were refused (bad credentials, a host not on this machine)."""
        with self._lock:
            return list(self._refused)

    def hosts_asked(self) -> list[str]:
        return [entry.host for entry in self.log]

    # ------------------------------------------------------------------ internals
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                if len(self._threads) >= MAX_CONNECTIONS:
                    client.close()
                    continue
                thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _track(self, sock: socket.socket) -> socket.socket:
        sock.settimeout(IO_TIMEOUT)
        with self._lock:
            self._open.add(sock)
        if self._stopping.is_set():
            sock.shutdown(socket.SHUT_RDWR)
        return sock

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        sock.close()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        try:
            self.handle(client)
        except (OSError, _Closed, ValueError):
            pass
        finally:
            self._close(client)

    def handle(self, client: socket.socket) -> None:
        raise NotImplementedError

    def _record(self, entry: ProxiedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _refuse(self, why: str) -> None:
        with self._lock:
            self._refused.append(why)

    def resolve(self, host: str) -> str | None:
        """The loopback address ``host`` stands for here, or ``None``: this proxy reaches
        nothing off this machine."""
        address = self.hosts.get(host.lower(), host)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        return str(ip) if ip.is_loopback else None

    def connect(self, host: str, port: int) -> socket.socket | None:
        address = self.resolve(host)
        if address is None:
            self._refuse(f"{host}:{port} is not on this machine")
            return None
        try:
            upstream = socket.create_connection((address, port), timeout=IO_TIMEOUT)
        except OSError as exc:
            self._refuse(f"{host}:{port}: {exc}")
            return None
        return self._track(upstream)

    def relay(self, client: socket.socket, upstream: socket.socket, pending: bytes = b"") -> None:
        """Copy bytes both ways until either side closes, the proxy stops, or nothing moves
        for :data:`IO_TIMEOUT`; ``pending`` (read from the client already) goes first."""
        try:
            if pending:
                upstream.sendall(pending)
            with selectors.DefaultSelector() as selector:
                selector.register(client, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, client)
                quiet_since = time.monotonic()
                while not self._stopping.is_set():
                    ready = selector.select(0.1)
                    if not ready:
                        if time.monotonic() - quiet_since > IO_TIMEOUT:
                            return
                        continue
                    quiet_since = time.monotonic()
                    for key, _ in ready:
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(65536)
                        if not data:
                            return
                        key.data.sendall(data)
        finally:
            self._close(upstream)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and whatever came after it."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD:
            raise ValueError("request head too long")
        data = sock.recv(65536)
        if not data:
            raise _Closed
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise _Closed
        data += more
    return data


class HTTPProxy(RelayServer):
    """A forwarding HTTP proxy: absolute-URI requests and CONNECT tunnels."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@{self.host}:{self.port}"

    def _answer(self, client: socket.socket, status: str, extra: str = "") -> None:
        client.sendall(
            f"HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )

    def handle(self, client: socket.socket) -> None:
        head, rest = _read_head(client)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        credentials = _basic_credentials(headers)
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            host, port = host.strip("[]"), int(port_text)
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                self._answer(client, "400 Bad Request")
                return
            host, port = parts.hostname, parts.port or 80
        if self.auth is not None and credentials != self.auth:
            self._refuse(f"{method} {target}: wrong or missing proxy credentials")
            self._answer(client, "407 Proxy Authentication Required",
                         'Proxy-Authenticate: Basic realm="test proxy"\r\n')  # fmt: skip
            return
        self._record(ProxiedRequest(method, target, host, port, credentials))
        upstream = self.connect(host, port)
        if upstream is None:
            self._answer(client, "502 Bad Gateway")
            return
        if method == "CONNECT":
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.relay(client, upstream, rest)
            return
        parts = urlsplit(target)
        origin_form = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        hop_by_hop = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
        kept = [f"{n}: {v}" for n, v in headers if n.lower() not in hop_by_hop]
        forwarded = "\r\n".join([f"{method} {origin_form} HTTP/1.1", *kept, "Connection: close"])
        upstream.sendall(forwarded.encode("latin-1") + b"\r\n\r\n")
        self.relay(client, upstream, rest)


def _basic_credentials(headers: list[tuple[str, str]]) -> tuple[str, str] | None:
    for name, value in headers:
        if name.lower() == "proxy-authorization" and value.lower().startswith("basic "):
            decoded = base64.b64decode(value[6:].strip()).decode("utf-8", "replace")
            user, _, password = decoded.partition(":")
            return user, password
    return None


_SOCKS_VERSION, _NO_AUTH, _USER_PASS, _NO_METHOD = 5, 0, 2, 0xFF
_SUCCEEDED, _GENERAL_FAILURE, _HOST_UNREACHABLE, _REFUSED, _BAD_COMMAND = 0, 1, 4, 5, 7


class Socks5Proxy(RelayServer):
    """A SOCKS5 server (RFC 1928 CONNECT; RFC 1929 user/password when ``auth`` is set)."""

    def url(self, scheme: str = "socks5h", auth: tuple[str, str] | None = None) -> str:
        userinfo = f"{auth[0]}:{auth[1]}@" if auth else ""
        return f"{scheme}://{userinfo}{self.host}:{self.port}"

    def handle(self, client: socket.socket) -> None:
        version, count = _recv_exact(client, 2)
        methods = _recv_exact(client, count)
        if version != _SOCKS_VERSION:
            return
        wanted = _NO_AUTH if self.auth is None else _USER_PASS
        if wanted not in methods:
            self._refuse(f"no acceptable authentication method in {list(methods)}")
            client.sendall(bytes([_SOCKS_VERSION, _NO_METHOD]))
            return
        client.sendall(bytes([_SOCKS_VERSION, wanted]))
        credentials = self._authenticate(client) if wanted == _USER_PASS else None
        if wanted == _USER_PASS and credentials is None:
            return
        _version, command, _reserved, kind = _recv_exact(client, 4)
        if kind == 1:
            host, address_type = socket.inet_ntoa(_recv_exact(client, 4)), "ipv4"
        elif kind == 3:
            length = _recv_exact(client, 1)[0]
            host, address_type = _recv_exact(client, length).decode("idna"), "domain"
        elif kind == 4:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(client, 16))
            address_type = "ipv6"
        else:
            self._reply(client, _GENERAL_FAILURE)
            return
        (port,) = struct.unpack("!H", _recv_exact(client, 2))
        if command != 1:
            self._reply(client, _BAD_COMMAND)
            return
        self._record(
            ProxiedRequest("SOCKS5-CONNECT", f"{host}:{port}", host, port, credentials,
                           address_type)
        )  # fmt: skip
        upstream = self.connect(host, port)
        if upstream is None:
            unknown = self.resolve(host) is None
            self._reply(client, _HOST_UNREACHABLE if unknown else _REFUSED)
            return
        self._reply(client, _SUCCEEDED)
        self.relay(client, upstream)

    def _authenticate(self, client: socket.socket) -> tuple[str, str] | None:
        _version, length = _recv_exact(client, 2)
        user = _recv_exact(client, length).decode("utf-8", "replace")
        password = _recv_exact(client, _recv_exact(client, 1)[0]).decode("utf-8", "replace")
        if (user, password) != self.auth:
            self._refuse(f"wrong SOCKS credentials for {user!r}")
            client.sendall(b"\x01\x01")
            return None
        client.sendall(b"\x01\x00")
        return user, password

    def _reply(self, client: socket.socket, code: int) -> None:
        client.sendall(bytes([_SOCKS_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]))
