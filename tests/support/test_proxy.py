"""The test proxies themselves: they reach only this machine, ask for credentials when told
to, and stop promptly with tunnels open."""

from __future__ import annotations

import socket
import struct
import time

from tests.support.httpserver import TestServer
from tests.support.proxy import PROXY_ONLY_HOST, HTTPProxy, Socks5Proxy


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        return sock.recv(65536)


def test_http_proxy_reaches_only_this_machine_and_asks_for_credentials() -> None:
    with HTTPProxy() as proxy:
        # an address off this machine is refused without a connection being tried
        answer = exchange(proxy.port, b"CONNECT 192.0.2.1:443 HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 502")
        assert proxy.refused == ["192.0.2.1:443 is not on this machine"]
    with HTTPProxy(auth=("u", "p")) as guarded:
        answer = exchange(guarded.port, b"GET http://127.0.0.1:9/ HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 407")
        assert guarded.log == []


def test_socks_proxy_resolves_its_own_names_only() -> None:
    with TestServer() as server, Socks5Proxy(hosts={PROXY_ONLY_HOST: "127.0.0.1"}) as proxy:
        server.add("/x", b"hello")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"\x05\x01\x00")
            assert sock.recv(2) == b"\x05\x00"
            name = PROXY_ONLY_HOST.encode()
            sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name)
            sock.sendall(struct.pack("!H", server.port))
            assert sock.recv(10)[:2] == b"\x05\x00"
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            assert answer.endswith(b"hello")
        unknown = b"example.org"
        request = b"\x05\x01\x00\x03" + bytes([len(unknown)]) + unknown + struct.pack("!H", 80)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"\x05\x01\x00")
            sock.recv(2)
            sock.sendall(request)
            assert sock.recv(10)[:2] == b"\x05\x04"  # host unreachable: never looked up here
    assert [entry.host for entry in proxy.log] == [PROXY_ONLY_HOST, "example.org"]


def test_stop_is_prompt_with_a_tunnel_open() -> None:
    with TestServer() as server:
        proxy = HTTPProxy().start()
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        client.sendall(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n\r\n".encode())
        assert client.recv(1024).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 2
        assert client.recv(1024) == b""  # the tunnel was closed
        client.close()
