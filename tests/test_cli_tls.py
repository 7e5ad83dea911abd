"""TLS end to end against the test server behind a certificate of a private CA
(tests/support/tls.py): by default an untrusted certificate is one plain line and nothing
written; ``--ca-bundle`` trusts the CA; ``-k`` skips the check with one warning. The library's
``verify_ssl`` and ``ca_bundle`` do the same, quietly."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from ripstream.downloader.exceptions import TLSError
from ripstream.sources.http import HttpDownloader
from tests.support.cli import cli, traceback_free
from tests.support.httpserver import make_body
from tests.support.settings import make_config
from tests.support.tls import TLS_HOST, TLSServer

WARNING = "ripstream: warning: TLS certificates are not checked"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def bodies(tls_server: TLSServer) -> dict[str, bytes]:
    served = {"/a.flac": make_body(150_000, 1), "/b.flac": make_body(40_000, 2)}
    for path, body in served.items():
        tls_server.add(path, body)
    return served


def test_an_untrusted_certificate_is_one_line_naming_the_host(
    tls_server: TLSServer, bodies: dict[str, bytes], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run = cli("-d", str(out), tls_server.url("/a.flac"))
    assert run.returncode == 1
    failures = [line for line in run.stderr.splitlines() if line.startswith("ripstream: failed")]
    assert len(failures) == 1, run.stderr
    expected = f"TLS failure with {TLS_HOST}:{tls_server.port}: certificate verify failed"
    assert expected in failures[0]
    assert len(failures[0]) < 160
    assert "retrying" not in run.stderr  # a certificate does not get better by asking again
    assert traceback_free(run.stderr)
    assert "SSLError" not in run.stderr
    assert not (out / "a.flac").exists()
    assert tls_server.requests == []  # no request was ever sent over the untrusted connection


def test_ca_bundle_trusts_the_private_ca(
    tls_server: TLSServer, bodies: dict[str, bytes], ca_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    urls = [tls_server.url(path) for path in bodies]
    run = cli("--ca-bundle", str(ca_bundle), "-d", str(out), *urls)
    assert run.returncode == 0, run.stderr
    for path, body in bodies.items():
        assert sha((out / path.lstrip("/")).read_bytes()) == sha(body)
    assert "warning" not in run.stderr


def test_no_check_certificate_succeeds_with_one_warning(
    tls_server: TLSServer, bodies: dict[str, bytes], tmp_path: Path
) -> None:
    urls = [tls_server.url(path) for path in bodies]
    for flag in ("-k", "--no-check-certificate"):
        out = tmp_path / flag.strip("-")
        run = cli(flag, "-d", str(out), *urls)
        assert run.returncode == 0, run.stderr
        for path, body in bodies.items():
            assert sha((out / path.lstrip("/")).read_bytes()) == sha(body)
        assert run.stderr.count(WARNING) == 1, run.stderr
        assert "InsecureRequestWarning" not in run.stderr  # urllib3's, once per connection
        assert "warnings.warn" not in run.stderr
    quiet = cli("-q", "-k", "-d", str(tmp_path / "quiet"), *urls)
    assert quiet.returncode == 0
    assert quiet.stderr == ""


def test_the_tls_warning_is_printed_once_with_several_jobs_and_segments(
    tls_server: TLSServer, tmp_path: Path
) -> None:
    body = make_body(600_000, 3)
    for n in range(4):
        tls_server.add(f"/s{n}.bin", body)
    config = tmp_path / "segments.json"
    config.write_text('{"default_settings": {"min_segment_size": 65536}}')
    urls = [tls_server.url(f"/s{n}.bin") for n in range(4)]
    for extra in ([], ["--processes", "2"]):  # in worker processes too
        out = tmp_path / f"out{len(extra)}"
        run = cli("-k", "--config", str(config), "-j", "4", "--segments", "3", *extra,
                  "-d", str(out), *urls)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stderr.count(WARNING) == 1, run.stderr
        assert "InsecureRequestWarning" not in run.stderr
        assert all((out / f"s{n}.bin").read_bytes() == body for n in range(4))
    # many connections (four per host at once, the default limit), still one warning each run
    assert tls_server.connections_opened >= 8


def test_library_tls_settings(
    tls_server: TLSServer,
    bodies: dict[str, bytes],
    ca_bundle: Path,
    out_dir: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    urls = [tls_server.url(path) for path in bodies]
    with HttpDownloader(make_config(out_dir / "default")) as http:
        refused = http.download_many(urls)
    assert all(isinstance(r.error, TLSError) for r in refused)
    assert all(f"TLS failure with {TLS_HOST}:" in str(r.error_message) for r in refused)
    assert not list((out_dir / "default").glob("*.flac"))

    with HttpDownloader(make_config(out_dir / "bundle", ca_bundle=str(ca_bundle))) as http:
        trusted = http.download_many(urls)
    assert all(r.is_success for r in trusted), [r.error_message for r in trusted]

    caplog.set_level(logging.WARNING, logger="ripstream")
    # pytest turns warnings into errors here: urllib3's InsecureRequestWarning would fail these
    with HttpDownloader(make_config(out_dir / "insecure", verify_ssl=False)) as http:
        unchecked = http.download_many(urls)
    assert all(r.is_success for r in unchecked), [r.error_message for r in unchecked]
    for path, body in bodies.items():
        assert sha((out_dir / "insecure" / path.lstrip("/")).read_bytes()) == sha(body)
    said = [r.getMessage() for r in caplog.records if "not checked" in r.getMessage()]
    assert said == ["http: TLS certificates are not checked (verify_ssl is off)"]
    assert capfd.readouterr().err == ""  # the library prints nothing of its own
