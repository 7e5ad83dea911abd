"""The demo: a generated album served on 127.0.0.1, downloaded and verified in-process."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from ripstream.demo import make_album, run_demo


def test_the_album_is_deterministic_and_checksummed() -> None:
    first, second = make_album(), make_album()
    assert [f.path for f in first] == [f.path for f in second]
    assert all(f.sha256 == hashlib.sha256(f.data).hexdigest() for f in first)
    assert [f.sha256 for f in first] == [f.sha256 for f in second]


def test_run_demo_lands_every_file_exactly(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = run_demo(tmp_path / "demo", out=out, err=err, progress=False)
    assert status == 0, out.getvalue()
    album = make_album()
    assert "every file verified (sha256)" in out.getvalue()
    landed = {p.name: p.read_bytes() for p in (tmp_path / "demo").rglob("*") if p.is_file()}
    for demo_file in album:
        assert hashlib.sha256(landed[Path(demo_file.path).name]).hexdigest() == demo_file.sha256
