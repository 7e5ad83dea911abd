"""The progress relay on its own: a worker's outbox sends few batches, and the driver's relay
replays them into its tracker once per download, dropping what comes after the result."""

from __future__ import annotations

from ripstream.downloader.progress import DownloadProgress, ProgressState, ProgressTracker
from ripstream.downloader.relay import Batch, Outbox, Relay, encode
from tests.support.clock import FakeClock


def snapshot(
    done: int,
    state: ProgressState = ProgressState.DOWNLOADING,
    *,
    download_id: str = "http:a",
    total: int | None = 1000,
    resumed: int = 0,
    note: str = "",
) -> DownloadProgress:
    return DownloadProgress(
        download_id, done, total, 0.0, 0.0, state, title="a.bin", resumed_bytes=resumed, note=note
    )


def test_an_outbox_sends_at_most_one_batch_per_interval_and_ends_at_once() -> None:
    clock = FakeClock()
    sent: list[Batch] = []
    outbox = Outbox(sent.append, interval=0.1, clock=clock)
    outbox("http:a", snapshot(0, ProgressState.STARTED))
    for step in range(1, 50):  # fifty snapshots of two downloads in half a second
        clock.advance(0.01)
        outbox("http:a", snapshot(step * 10))
        outbox("http:b", snapshot(step * 5, download_id="http:b"))
    clock.advance(0.01)
    outbox("http:a", snapshot(1000, ProgressState.COMPLETED))
    assert 5 <= len(sent) <= 7  # the start, one a tenth of a second, the end
    assert sent[-1][-1] == encode(snapshot(1000, ProgressState.COMPLETED))
    assert [item[0] for item in sent[-1]] == ["http:b", "http:a"]  # the latest of each, batched
    assert all(len({item[0] for item in batch}) == len(batch) for batch in sent)


def test_a_retry_note_is_sent_at_once() -> None:
    clock = FakeClock()
    sent: list[Batch] = []
    outbox = Outbox(sent.append, interval=10.0, clock=clock)
    outbox("http:a", snapshot(0, ProgressState.STARTED))
    outbox("http:a", snapshot(10, note="retrying in 1 s (1/3): HTTP 503"))
    assert [batch[0][6] for batch in sent] == ["", "retrying in 1 s (1/3): HTTP 503"]


def replayed() -> tuple[ProgressTracker, Relay, list[DownloadProgress]]:
    tracker = ProgressTracker(min_interval=0.0)
    seen: list[DownloadProgress] = []
    tracker.add_callback(lambda _id, progress: seen.append(progress))
    return tracker, Relay(tracker), seen


def test_the_relay_replays_a_download_into_the_drivers_tracker() -> None:
    _, relay, seen = replayed()
    relay.expect("http:a")
    relay.deliver([encode(snapshot(0, ProgressState.STARTED))])
    relay.deliver([encode(snapshot(600, resumed=200))])  # 200 bytes were on disk
    relay.deliver([encode(snapshot(1000, ProgressState.COMPLETED, resumed=200))])
    relay.settle("http:a", success=True)
    assert [(p.state, p.downloaded_bytes, p.resumed_bytes) for p in seen] == [
        (ProgressState.STARTED, 0, 0),
        (ProgressState.DOWNLOADING, 600, 200),
        (ProgressState.DOWNLOADING, 1000, 200),
        (ProgressState.COMPLETED, 1000, 200),
    ]
    assert {p.title for p in seen} == {"a.bin"}


def test_the_relay_ignores_downloads_it_was_not_told_of_and_late_batches() -> None:
    tracker, relay, seen = replayed()
    relay.deliver([encode(snapshot(10))])  # not dispatched by this manager
    relay.expect("http:a")
    relay.deliver([encode(snapshot(300))])
    relay.settle("http:a", success=False)  # the result came first; the last batch is late
    relay.deliver([encode(snapshot(1000, ProgressState.COMPLETED))])
    assert [(p.state, p.downloaded_bytes) for p in seen] == [
        (ProgressState.STARTED, 0),
        (ProgressState.DOWNLOADING, 300),
        (ProgressState.FAILED, 300),
    ]
    assert tracker.active == []


def test_a_restarted_transfer_counts_down_and_a_late_total_is_kept() -> None:
    _, relay, seen = replayed()
    relay.expect("http:a")
    relay.deliver([encode(snapshot(0, ProgressState.STARTED, total=None))])
    relay.deliver([encode(snapshot(500, total=None))])
    relay.deliver([encode(snapshot(100, total=1000))])  # the server ignored a range
    assert [(p.downloaded_bytes, p.total_bytes) for p in seen][-1] == (100, 1000)


def test_a_small_file_starts_and_ends_in_one_batch_and_is_replayed_whole() -> None:
    clock = FakeClock()
    sent: list[Batch] = []
    outbox = Outbox(sent.append, interval=0.1, clock=clock)
    outbox("http:first", snapshot(0, ProgressState.STARTED, download_id="http:first"))
    clock.advance(0.01)
    outbox("http:a", snapshot(0, ProgressState.STARTED))
    outbox("http:a", snapshot(1000, ProgressState.COMPLETED))
    assert len(sent) == 2  # the first start (nothing was sent yet), then a's end alone
    _, relay, seen = replayed()
    relay.expect("http:a")
    relay.deliver(sent[1])
    assert [(p.state, p.downloaded_bytes) for p in seen] == [
        (ProgressState.STARTED, 0),
        (ProgressState.DOWNLOADING, 1000),
        (ProgressState.COMPLETED, 1000),
    ]
