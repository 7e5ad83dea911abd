"""A property over hostile servers: whatever a server sends, the user gets the exact bytes at
the final path, or a typed failure and nothing there. Never a wrong file."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ripstream.downloader import DownloadError, ResultStatus
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, FaultKind, TestServer, make_body
from tests.support.settings import make_config

SIZE = 200_000
_names = itertools.count()

times = st.sampled_from([1, 2, None])
lies = st.one_of(
    st.builds(lambda n, t: Fault.drop_after(n, times=t), st.integers(0, SIZE), times),
    st.builds(lambda n, t: Fault.content_length_too_large(n, times=t), st.integers(1, 5000), times),
    st.builds(lambda n, t: Fault.content_length_too_small(n, times=t), st.integers(1, 5000), times),
    st.builds(lambda t: Fault.no_content_length(times=t), times),
    st.builds(lambda t: Fault.chunked(times=t), times),
    st.builds(lambda t: Fault.broken_chunked(times=t), times),
    st.builds(lambda t: Fault.gzip_encoding(times=t), times),
    st.builds(lambda t: Fault.ignore_range(times=t), times),
    st.builds(lambda t: Fault.reject_range(times=t), times),
    st.builds(lambda t: Fault.short_range(times=t), times),
    st.builds(lambda n, t: Fault.overrun_range(n, times=t), st.integers(1, 5000), times),
    st.builds(lambda n, t: Fault.wrong_range_start(n, times=t), st.integers(-5000, 5000), times),
    st.builds(lambda t: Fault.ignore_if_range(times=t), times),
    st.builds(lambda n, t: Fault.wrong_range_total(n, times=t), st.integers(-5000, 5000), times),
    st.builds(lambda t: Fault.multipart_byteranges(times=t), times),
    st.builds(Fault.status, st.sampled_from([200, 206, 301, 404, 416, 500, 503])),
    st.builds(
        lambda name, value, t: Fault.header(name, value, times=t),
        st.sampled_from(["Content-Length", "Content-Range", "ETag", "Content-Encoding"]),
        st.sampled_from(["", "\u00b2", "-1", "1, 2", "bytes 0-9/10", "bytes */0", "gzip", '"x"']),
        times,
    ),
    st.just(Fault.body_changes()),
)


def _undetectable(fault: Fault) -> bool:
    kind = fault.kind
    return (
        (kind is FaultKind.STATUS and fault.code == 200)
        or kind is FaultKind.NO_CONTENT_LENGTH
        or (kind is FaultKind.WRONG_RANGE_TOTAL and fault.times is None)
    )


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    faults=st.lists(lies, min_size=1, max_size=3),
    segments=st.sampled_from([1, 3]),
    checksum=st.booleans(),
)
def test_exact_bytes_or_a_typed_failure_never_a_wrong_file(
    server: TestServer, tmp_path: Path, faults: list[Fault], segments: int, checksum: bool
) -> None:
    # without a checksum, some lies are files as far as HTTP can tell (the README says so):
    # a 200 whose body is another document, a body ended by closing the connection that is
    # cut short, and a total every answer agrees on; only the other lies are in reach then
    assume(checksum or not any(_undetectable(f) for f in faults))
    name = f"f{next(_names)}.bin"
    out_dir = tmp_path / name.removesuffix(".bin")
    body = make_body(SIZE, seed=len(faults))
    server.add(f"/{name}", body, faults=faults)
    config = make_config(
        out_dir,
        segments=segments,
        min_segment_size=32 * 1024,
        max_retries=2,
        stall_timeout=2.0,
        timeout_seconds=2.0,
    )
    with HttpDownloader(config) as http:
        content = http.get_download_info(server.url(f"/{name}"))
        if checksum:
            content.checksum = f"sha256:{hashlib.sha256(body).hexdigest()}"
        result = http.download(content)
    final = out_dir / name
    changed = make_body(SIZE + 1000, seed=4242)  # what a body_changes fault serves after
    if result.status is ResultStatus.COMPLETED:
        on_disk = hashlib.sha256(final.read_bytes()).hexdigest()
        allowed = (body,) if checksum else (body, changed)
        assert on_disk in {hashlib.sha256(v).hexdigest() for v in allowed}, faults
    else:
        assert isinstance(result.error, DownloadError), (faults, result)
        assert not final.exists(), faults
