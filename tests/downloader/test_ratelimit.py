"""TokenBucket on a simulated clock: burst, steady rate, fair turns between threads."""

from __future__ import annotations

import threading

import pytest

from ripstream.downloader.ratelimit import TokenBucket
from tests.support.clock import FakeClock


def test_burst_is_free_then_the_rate_applies() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=300, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(300) == 0.0  # a full burst goes at once
    assert clock.sleeps == []
    assert bucket.acquire(50) == pytest.approx(0.5)
    assert bucket.acquire(100) == pytest.approx(1.0)
    assert clock.sleeps == [pytest.approx(0.5), pytest.approx(1.0)]


def test_burst_defaults_to_a_hundredth_of_a_second_of_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=6400, clock=clock, sleep=clock.sleep)
    assert bucket.burst == 64.0
    assert bucket.acquire(64) == 0.0
    assert bucket.acquire(3200) == pytest.approx(0.5)


def test_tokens_refill_with_time_but_never_beyond_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock, sleep=clock.sleep)
    bucket.acquire(20)
    clock.advance(1.0)  # 10 tokens back
    assert bucket.reserve(10) == 0.0
    clock.advance(3600.0)  # idle for an hour: still only the burst is saved up
    assert bucket.reserve(20) == 0.0
    assert bucket.reserve(10) == pytest.approx(1.0)


def test_reservations_made_at_once_get_sequential_turns() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=10, clock=clock, sleep=clock.sleep)
    delays = [bucket.reserve(10) for _ in range(5)]
    assert delays == [0.0, pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0),
                      pytest.approx(4.0)]  # fmt: skip


def test_threads_sharing_a_bucket_get_fair_distinct_turns() -> None:
    clock = FakeClock()  # frozen: nobody's turn arrives by itself
    bucket = TokenBucket(rate=10, burst=10, clock=clock, sleep=clock.sleep)
    start = threading.Barrier(8)
    delays: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait(timeout=5)
        delay = bucket.reserve(10)
        with lock:
            delays.append(delay)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    # every thread got its own one-second slot, none was skipped or doubled
    assert sorted(round(d, 9) for d in delays) == [float(n) for n in range(8)]


def test_total_bytes_over_simulated_time_match_the_rate() -> None:
    clock = FakeClock()
    rate, burst, chunk = 50_000.0, 10_000.0, 4_096
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock, sleep=clock.sleep)
    started = clock()
    sent = 0
    while clock() - started < 20.0:
        bucket.acquire(chunk)
        sent += chunk
    elapsed = clock() - started
    # everything beyond the initial burst was paid for at exactly ``rate``
    assert sent - burst == pytest.approx(rate * elapsed, abs=chunk)
    assert sent / elapsed == pytest.approx(rate, rel=0.02)


def test_threads_acquiring_together_share_the_rate() -> None:
    clock = FakeClock()  # frozen, so each wait is exactly the debt at reservation time
    rate, burst, chunk, per_thread, n_threads = 1_000.0, 1.0, 100, 50, 4
    bucket = TokenBucket(rate=rate, burst=burst, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    def worker() -> None:
        for _ in range(per_thread):
            bucket.acquire(chunk, record)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in threads)
    # 200 chunks got 200 distinct, evenly spaced turns: no reservation was lost or doubled,
    # and the last one is due exactly when ``rate`` would have sent all the bytes
    total = n_threads * per_thread
    expected = [(chunk * k - burst) / rate for k in range(1, total + 1)]
    assert sorted(waits) == pytest.approx(expected)
    assert max(waits) == pytest.approx((total * chunk - burst) / rate)


def test_per_call_sleep_overrides_the_bucket_sleep() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=10, clock=clock, sleep=clock.sleep)
    bucket.acquire(10)
    seen: list[float] = []
    assert bucket.acquire(5, seen.append) == pytest.approx(0.5)
    assert seen == [pytest.approx(0.5)]
    assert clock.sleeps == []


def test_cancel_event_ends_the_wait_at_once() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)  # no injected sleep: waits for real
    bucket.acquire(1)
    cancel = threading.Event()
    cancel.set()
    results: list[float] = []
    worker = threading.Thread(target=lambda: results.append(bucket.acquire(1000, cancel=cancel)))
    worker.start()
    worker.join(timeout=5)  # would take 1000 s if the event were ignored
    assert not worker.is_alive()
    assert results == [pytest.approx(1000.0)]


@pytest.mark.parametrize("rate", [0, -1, -0.5])
def test_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        TokenBucket(rate=rate)
