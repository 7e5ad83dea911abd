"""Shared fixtures: a real HTTP server on 127.0.0.1 (also behind TLS), forwarding HTTP and
SOCKS5 proxies, and an output folder.

Helpers that tests import (``fast_settings``, ``make_config``) live in tests/support/settings.py.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from tests.support.httpserver import TestServer
from tests.support.proxy import PROXY_ONLY_HOST, HTTPProxy, Socks5Proxy
from tests.support.tls import TLSServer


@pytest.fixture
def server() -> Iterator[TestServer]:
    """A real HTTP/1.1 server on 127.0.0.1 (see tests/support/httpserver/).

    After the test, a garbage collection: a connection the test left open (a session never
    closed) then warns in the test that leaked it, not in whichever test runs next.
    """
    with TestServer() as running:
        yield running
    gc.collect()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A private certificate authority, trusted by nothing unless a test says so."""
    return trustme.CA()


@pytest.fixture
def tls_server(tls_ca: trustme.CA) -> Iterator[TLSServer]:
    """The test server behind TLS: ``https://localhost:PORT/``, its certificate issued by
    :func:`tls_ca` (see tests/support/tls.py)."""
    with TLSServer(tls_ca) as running:
        yield running
    gc.collect()


@pytest.fixture
def ca_bundle(tls_ca: trustme.CA, tmp_path: Path) -> Path:
    """The PEM file of :func:`tls_ca`, for ``--ca-bundle`` and ``ca_bundle``."""
    path = tmp_path / "test-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def http_proxy() -> Iterator[HTTPProxy]:
    """A forwarding HTTP proxy on 127.0.0.1 that logs what went through it
    (tests/support/proxy.py)."""
    with HTTPProxy() as proxy:
        yield proxy


@pytest.fixture
def socks_proxy() -> Iterator[Socks5Proxy]:
    """A SOCKS5 server on 127.0.0.1, without authentication, that alone can resolve
    ``PROXY_ONLY_HOST`` (to 127.0.0.1)."""
    with Socks5Proxy(hosts={PROXY_ONLY_HOST: "127.0.0.1"}) as proxy:
        yield proxy


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty output folder."""
    path = tmp_path / "out"
    path.mkdir()
    return path


# Hypothesis keeps nothing in the checkout (no example database, no .hypothesis/ folder):
# the test run leaves it as it was.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "ripstream-tests-hypothesis"))
settings.register_profile("ripstream", database=None)
settings.load_profile("ripstream")


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """One real dask LocalCluster for the session: two worker processes (with nannies, so a
    killed worker comes back) of two threads each. Skipped only when dask is not installed."""
    distributed = pytest.importorskip("distributed")
    from ripstream.downloader.executors import start_local_cluster

    cluster = start_local_cluster(2, 2)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def dask_client(dask_cluster: Any) -> Any:
    """The session's dask client, with both workers up (a test may have killed one)."""
    dask_cluster.wait_for_workers(2, timeout=60)
    return dask_cluster
