"""Progress bars on tqdm: one overall bar and a few reused file bars, honest about what they
count, in a terminal and in a notebook.

- The overall bar advances for files done (and skipped); failures and interruptions are
  counted beside it, never as done, and the bytes fetched are shown with the counts.
- Bytes resumed from a ``.part`` file are the bar's starting point, not speed.
- File bars are a pool of at most ``max_bars``, reused from one download to the next: a
  notebook gets one overall widget and ``max_bars`` file widgets, however many files run.
- In a notebook with ipywidgets the bars are widgets (``tqdm.notebook``); without ipywidgets
  a single plain text bar is drawn (no cursor movement escapes, no ``IProgress`` warning).
- On a stream that is not a terminal nothing is drawn unless asked (``disable=False``).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from dataclasses import dataclass
from typing import Any

from ripstream.downloader.progress import DownloadProgress, ProgressState, format_bytes, printable

__all__ = ["TqdmProgress", "in_notebook"]


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (IPython with a kernel attached)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    ip = get() if callable(get) else None
    return ip is not None and getattr(ip, "kernel", None) is not None


def _has_widgets() -> bool:
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):  # hidden (sys.modules entry None) or half-installed
        return False


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


@dataclass(slots=True)
class _Slot:
    """A file bar and the download it shows now (``None``: free)."""

    bar: Any
    download_id: str | None = None
    resumed: int = 0


class TqdmProgress:
    """A progress callback that draws an overall bar and a few reused file bars.

    Thread-safe. In a terminal it draws on stderr; in Jupyter it draws widgets (or one text
    bar without ipywidgets); on a stream that is not a terminal it draws nothing unless
    ``disable=False``.

    Example::

        with TqdmProgress(total_files=10) as bars:
            tracker.add_callback(bars)
            downloader.download_many(contents)

    :param total_files: how many downloads the overall bar counts to.
    :param disable: ``True`` draws nothing, ``False`` always draws, ``None`` (the default)
        draws in a terminal or a notebook only.
    :param file: the stream to draw on (stderr by default).
    :param max_bars: file bars at most (use the number of downloads at once).
    :param count_files: count finished downloads on the overall bar from the progress
        events; an application that reports results itself passes ``False`` and calls
        :meth:`count`.
    """

    def __init__(
        self,
        total_files: int | None = None,
        *,
        disable: bool | None = None,
        file: Any = None,
        max_bars: int = 8,
        count_files: bool = True,
    ) -> None:
        stream = file if file is not None else sys.stderr
        notebook = in_notebook() and file is None
        widgets = notebook and _has_widgets()
        if disable is None:
            disable = not (notebook or _is_terminal(stream))
        self._tqdm: Any
        if widgets:
            from tqdm.notebook import tqdm as notebook_tqdm

            self._tqdm = notebook_tqdm
        else:
            from tqdm.std import tqdm as text_tqdm

            self._tqdm = text_tqdm
        tqdm = self._tqdm
        # plain text in a notebook cannot move the cursor: one bar, no file bars
        self._max_bars = 0 if notebook and not widgets else max_bars
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._disable = disable
        self._file = None if widgets else stream
        self._count_files = count_files
        self._counts = {"done": 0, "failed": 0, "skipped": 0, "cancelled": 0}
        self._bytes = 0
        self.overall = tqdm(
            total=total_files,
            desc="total",
            unit="file",
            position=0,
            disable=disable,
            file=self._file,
            leave=True,
            dynamic_ncols=not notebook,
        )

    def __call__(self, download_id: str, progress: DownloadProgress) -> None:
        with self._lock:
            slot = self._slot_for(download_id, progress)
            if slot is not None:
                self._show(slot, progress)
            if progress.is_finished:
                if slot is not None:
                    slot.download_id = None
                    slot.bar.set_postfix_str("", refresh=False)
                if self._count_files:
                    done = progress.state is ProgressState.COMPLETED
                    if done:
                        self._bytes += max(0, progress.downloaded_bytes - progress.resumed_bytes)
                    self._count("done" if done else "failed")

    def count(self, outcome: str, fetched: int = 0) -> None:
        """Count one settled file: ``done``, ``skipped``, ``failed`` or ``cancelled`` (only
        the first two advance the bar); ``fetched`` bytes are added to the total shown."""
        with self._lock:
            self._bytes += fetched
            self._count(outcome)

    def write(self, line: str) -> None:
        """Print ``line`` above the bars (never into them)."""
        if self._disable:
            print(line, file=self._file or sys.stderr, flush=True)
        else:
            self._tqdm.write(line, file=self._file)

    def _count(self, outcome: str) -> None:
        key = outcome if outcome in self._counts else "failed"
        self._counts[key] += 1
        if key in ("done", "skipped"):  # a failure or an interruption is never "done"
            self.overall.update(1)
        counts = self._counts
        parts = [f"{counts['done']} done"]
        parts += [f"{counts['skipped']} skipped"] if counts["skipped"] else []
        parts += [f"{counts['failed']} failed"] if counts["failed"] else []
        parts += [f"{counts['cancelled']} stopped"] if counts["cancelled"] else []
        parts.append(format_bytes(self._bytes))
        self.overall.set_postfix_str(", ".join(parts))

    def _slot_for(self, download_id: str, progress: DownloadProgress) -> _Slot | None:
        for slot in self._slots:
            if slot.download_id == download_id:
                return slot
        if progress.is_finished and progress.downloaded_bytes == 0:
            return None
        free = next((slot for slot in self._slots if slot.download_id is None), None)
        if free is None and len(self._slots) < self._max_bars:
            bar = self._tqdm(
                total=progress.total_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                leave=False,
                position=len(self._slots) + 1,
                disable=self._disable,
                file=self._file,
                dynamic_ncols=self._file is not None,
            )
            free = _Slot(bar)
            self._slots.append(free)
        if free is not None:
            free.download_id = download_id
            self._start(free, progress)
        return free

    def _start(self, slot: _Slot, progress: DownloadProgress) -> None:
        """Point a free bar at a new download; resumed bytes are its start, not speed."""
        bar = slot.bar
        bar.set_description_str(_short(progress.title), refresh=False)
        slot.resumed = progress.resumed_bytes
        bar.reset(total=progress.total_bytes)
        bar.initial = bar.n = progress.resumed_bytes
        bar.refresh()

    def _show(self, slot: _Slot, progress: DownloadProgress) -> None:
        bar = slot.bar
        if progress.resumed_bytes != slot.resumed:  # the server said how much it resumes
            self._start(slot, progress)
        if bar.total != progress.total_bytes:
            bar.total = progress.total_bytes
        bar.update(progress.downloaded_bytes - bar.n)
        if progress.note:
            bar.set_postfix_str(printable(progress.note), refresh=False)
        elif progress.state is ProgressState.DOWNLOADING and getattr(bar, "postfix", None):
            bar.set_postfix_str("", refresh=False)
        if progress.note or progress.is_finished:
            bar.refresh()  # a retry, and a small file's size, are shown even between ticks

    def close(self) -> None:
        """Close every bar (twice is harmless)."""
        with self._lock:
            for slot in self._slots:
                slot.bar.close()
            self._slots.clear()
            self.overall.close()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short(title: str, width: int = 28) -> str:
    title = printable(title)
    return title if len(title) <= width else title[: width - 1] + "…"
