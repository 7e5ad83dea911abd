"""DownloadQueue: priority, FIFO, dependencies, failure propagation, limits, threads, JSON."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable

import pytest

from ripstream.downloader import (
    ContentType,
    DownloadableContent,
    DownloadQueue,
    DownloadTask,
    TaskState,
    TrackMetadata,
)
from ripstream.downloader.exceptions import ConfigError, QueueFullError, TaskStateError


def task(name: str, priority: int = 0, deps: list[str] | None = None) -> DownloadTask:
    return DownloadTask(
        content_id=name,
        content_type=ContentType.TRACK,
        source="svc",
        title=name.title(),
        url=f"https://example.com/{name}",
        priority=priority,
        dependencies=list(deps or []),
        task_id=name,
    )


def drain(queue: DownloadQueue) -> list[str]:
    """Take and complete tasks until none is ready; the order they were handed out."""
    order = []
    while (next_task := queue.get_next_task()) is not None:
        order.append(next_task.task_id)
        queue.complete_task(next_task.task_id)
    return order


# -- order --------------------------------------------------------------------------------


def test_higher_priority_first_and_fifo_among_equals() -> None:
    queue = DownloadQueue()
    for name, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 10), ("e", 5), ("f", -1),
                           ("g", 0)]:  # fmt: skip
        queue.add_task(task(name, priority))
    assert drain(queue) == ["d", "b", "e", "a", "c", "g", "f"]
    assert queue.is_empty


def test_fifo_holds_for_many_equal_priorities() -> None:
    queue = DownloadQueue()
    names = [f"t{i:04d}" for i in range(500)]
    for name in names:
        queue.add_task(task(name))
    assert drain(queue) == names


def test_taken_task_is_marked_running() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    taken = queue.get_next_task()
    assert taken is not None
    assert taken.state is TaskState.RUNNING
    assert queue.get_task("a").state is TaskState.RUNNING
    assert queue.get_next_task() is None  # nothing else is ready
    assert not queue.is_empty  # but the running task keeps the queue busy


# -- dependencies ----------------------------------------------------------------------------


def test_a_task_waits_for_its_dependencies() -> None:
    queue = DownloadQueue()
    queue.add_task(task("album"))
    queue.add_task(task("cover"))
    queue.add_task(task("tag", priority=100, deps=["album", "cover"]))

    first = queue.get_next_task()
    second = queue.get_next_task()
    assert first is not None
    assert second is not None
    assert {first.task_id, second.task_id} == {"album", "cover"}
    assert queue.get_next_task() is None  # "tag" outranks them but is not ready
    queue.complete_task("album")
    assert queue.get_next_task() is None  # still waiting for "cover"
    queue.complete_task("cover")
    ready = queue.get_next_task()
    assert ready is not None
    assert ready.task_id == "tag"


def test_a_task_whose_dependencies_already_completed_is_ready_at_once() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    assert drain(queue) == ["a"]
    queue.add_task(task("b", deps=["a"]))
    assert drain(queue) == ["b"]


def test_released_dependents_keep_priority_order() -> None:
    queue = DownloadQueue()
    queue.add_task(task("root"))
    queue.add_task(task("low", 1, ["root"]))
    queue.add_task(task("high", 9, ["root"]))
    queue.add_task(task("other", 5))
    assert drain(queue) == ["other", "root", "high", "low"]


def test_fail_cancels_dependents_transitively_and_they_never_run() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.add_task(task("b", deps=["a"]))
    queue.add_task(task("c", deps=["b"]))
    queue.add_task(task("d", deps=["b", "c"]))
    queue.add_task(task("free"))

    taken = queue.get_next_task()
    assert taken is not None
    assert taken.task_id == "a"
    cancelled = queue.fail_task("a", "HTTP 404")
    assert sorted(cancelled) == ["b", "c", "d"]
    assert queue.get_task("a").state is TaskState.FAILED
    assert queue.get_task("a").error == "HTTP 404"
    for name in ("b", "c", "d"):
        assert queue.get_task(name).state is TaskState.CANCELLED
        assert "did not complete" in (queue.get_task(name).error or "")
    assert drain(queue) == ["free"]
    assert queue.is_empty


def test_adding_a_task_that_depends_on_a_failed_one_cancels_it() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.get_next_task()
    queue.fail_task("a")
    added = queue.add_task(task("b", deps=["a"]))
    assert added.state is TaskState.CANCELLED
    assert queue.get_next_task() is None
    assert queue.is_empty


def test_cancel_task_cancels_it_and_its_dependents() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.add_task(task("b", deps=["a"]))
    queue.add_task(task("c"))
    assert queue.cancel_task("a", "user said no") == ["a", "b"]
    assert queue.get_task("a").error == "user said no"
    assert drain(queue) == ["c"]  # the cancelled ones are never handed out


def test_cancel_a_running_task() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.get_next_task()
    assert queue.cancel_task("a") == ["a"]
    assert queue.get_task("a").state is TaskState.CANCELLED
    with pytest.raises(TaskStateError):
        queue.complete_task("a")


def test_cancel_all() -> None:
    queue = DownloadQueue()
    for name in "abc":
        queue.add_task(task(name))
    queue.get_next_task()
    assert queue.cancel_all() == 3
    assert queue.is_empty
    assert queue.get_next_task() is None
    assert queue.counts()[TaskState.CANCELLED] == 3


def test_requeue_puts_a_running_task_back() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.get_next_task()
    queue.requeue_task("a")
    assert queue.get_task("a").state is TaskState.PENDING
    assert drain(queue) == ["a"]


# -- errors -----------------------------------------------------------------------------------


def test_max_size_counts_unfinished_tasks() -> None:
    queue = DownloadQueue(max_size=2)
    queue.add_task(task("a"))
    queue.add_task(task("b"))
    with pytest.raises(QueueFullError) as info:
        queue.add_task(task("c"))
    assert info.value.max_size == 2
    assert "2" in str(info.value)
    assert len(queue) == 2  # the refused task was not half-added
    drain(queue)  # finished tasks free their places
    queue.add_task(task("c"))
    assert queue.get_task("c").state is TaskState.PENDING


@pytest.mark.parametrize("size", [0, -1, 1.5, "3"])
def test_bad_max_size(size: object) -> None:
    with pytest.raises(ConfigError) as info:
        DownloadQueue(max_size=size)  # type: ignore[arg-type]
    assert info.value.field == "max_size"


def test_duplicate_id_is_refused() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    with pytest.raises(TaskStateError) as info:
        queue.add_task(task("a"))
    assert info.value.task_id == "a"
    assert len(queue) == 1


def test_unknown_dependency_is_refused() -> None:
    queue = DownloadQueue()
    with pytest.raises(TaskStateError) as info:
        queue.add_task(task("b", deps=["nope"]))
    assert info.value.task_id == "b"
    assert "nope" in str(info.value)
    assert len(queue) == 0
    assert queue.counts()[TaskState.PENDING] == 0


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        (lambda q: q.complete_task("ghost"), "unknown task ghost"),
        (lambda q: q.fail_task("ghost"), "unknown task ghost"),
        (lambda q: q.cancel_task("ghost"), "unknown task ghost"),
        (lambda q: q.get_task("ghost"), "no task ghost"),
        (lambda q: q.complete_task("p"), "it is pending, not running"),
        (lambda q: q.requeue_task("p"), "it is pending, not running"),
        (lambda q: q.cancel_task("done"), "already completed"),
        (lambda q: q.fail_task("done"), "already completed"),
    ],
)
def test_bad_transitions_are_task_state_errors(
    action: Callable[[DownloadQueue], object], fragment: str
) -> None:
    queue = DownloadQueue()
    queue.add_task(task("done"))
    drain(queue)
    queue.add_task(task("p"))
    with pytest.raises(TaskStateError) as info:
        action(queue)
    assert fragment in str(info.value)


def test_priority_must_be_an_integer() -> None:
    with pytest.raises(ConfigError) as info:
        task("a", priority=1.5)  # type: ignore[arg-type]
    assert info.value.field == "priority"


# -- counts and emptiness -----------------------------------------------------------------------


def test_counts_per_state_and_is_empty() -> None:
    queue = DownloadQueue()
    assert queue.is_empty
    assert set(queue.counts().values()) == {0}
    for name in "abcde":
        queue.add_task(task(name))
    queue.add_task(task("f", deps=["e"]))
    assert not queue.is_empty
    order = [queue.get_next_task() for _ in range(5)]
    assert [t.task_id for t in order if t] == ["a", "b", "c", "d", "e"]
    queue.complete_task("a")
    queue.complete_task("b")
    queue.fail_task("c")
    queue.cancel_task("d")
    assert queue.counts() == {
        TaskState.PENDING: 1,
        TaskState.RUNNING: 1,
        TaskState.COMPLETED: 2,
        TaskState.FAILED: 1,
        TaskState.CANCELLED: 1,
    }
    assert queue.active_count == 2
    queue.complete_task("e")
    assert drain(queue) == ["f"]
    assert queue.is_empty
    assert queue.counts()[TaskState.COMPLETED] == 4
    assert [t.task_id for t in queue.tasks(TaskState.COMPLETED)] == ["a", "b", "e", "f"]
    assert [t.task_id for t in queue] == list("abcdef")
    assert len(queue) == 6


def test_a_queue_of_only_waiting_tasks_is_not_empty() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.add_task(task("b", deps=["a"]))
    queue.get_next_task()
    assert queue.get_next_task() is None
    assert not queue.is_empty


# -- threads ------------------------------------------------------------------------------------


def test_threads_draining_a_big_queue_get_every_task_exactly_once() -> None:
    queue = DownloadQueue()
    total = 5000
    for i in range(total):
        queue.add_task(task(f"t{i}", priority=i % 7))
    taken: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def worker(mine: list[str]) -> None:
        start.wait(timeout=5)
        while (next_task := queue.get_next_task()) is not None:
            mine.append(next_task.task_id)
            queue.complete_task(next_task.task_id)

    threads = [threading.Thread(target=worker, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    counts = Counter(name for mine in taken for name in mine)
    assert len(counts) == total
    assert set(counts.values()) == {1}
    assert queue.is_empty
    assert queue.counts()[TaskState.COMPLETED] == total


def test_threads_adding_concurrently_respect_max_size() -> None:
    queue = DownloadQueue(max_size=100)
    refused: list[int] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        for i in range(50):
            try:
                queue.add_task(task(f"w{offset}-{i}"))
            except QueueFullError:
                with lock:
                    refused.append(1)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(queue) == 100
    assert len(refused) == 100


def test_get_next_task_waits_until_a_dependency_completes_elsewhere() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.add_task(task("b", deps=["a"]))
    first = queue.get_next_task()
    assert first is not None
    waiting = threading.Event()
    got: list[DownloadTask | None] = []

    def consumer() -> None:
        waiting.set()
        got.append(queue.get_next_task(timeout=10))

    thread = threading.Thread(target=consumer)
    thread.start()
    assert waiting.wait(timeout=5)
    queue.complete_task("a")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(got) == 1
    assert got[0] is not None
    assert got[0].task_id == "b"
    assert got[0].state is TaskState.RUNNING


def test_get_next_task_with_no_timeout_returns_none_when_nothing_can_become_ready() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.add_task(task("b", deps=["a"]))
    queue.get_next_task()
    waiting = threading.Event()
    got: list[DownloadTask | None] = []

    def consumer() -> None:
        waiting.set()
        got.append(queue.get_next_task(timeout=None))

    thread = threading.Thread(target=consumer)
    thread.start()
    assert waiting.wait(timeout=5)
    queue.fail_task("a")  # "b" is cancelled: nothing is left that could run
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert got == [None]


def test_get_next_task_timeout_expires_with_none() -> None:
    queue = DownloadQueue()
    queue.add_task(task("a"))
    queue.add_task(task("b", deps=["a"]))
    queue.get_next_task()
    assert queue.get_next_task(timeout=0.01) is None
    assert queue.get_task("b").state is TaskState.PENDING


# -- JSON -----------------------------------------------------------------------------------


def _content() -> DownloadableContent:
    return DownloadableContent(
        content_id="c1",
        content_type=ContentType.ALBUM,
        source="svc",
        title="Album",
        url="https://example.com/c1",
        checksum="md5:" + "0" * 32,
        headers={"Authorization": "token"},
        metadata=TrackMetadata(year=2001),
    )


def test_json_round_trip_preserves_states_and_dependencies() -> None:
    queue = DownloadQueue()
    queue.add_task(task("done", priority=3))
    queue.add_task(task("running", priority=2))
    queue.add_task(task("failed", priority=1))
    queue.add_task(task("waits", priority=7, deps=["running"]))
    queue.add_task(task("lost", deps=["failed"]))
    queue.add_task(DownloadTask.from_content(_content(), task_id="rich", priority=-1,
                                             dependencies=["done"]))  # fmt: skip
    queue.add_task(task("ready", priority=5))
    done = queue.get_next_task()
    assert done is not None
    assert done.task_id == "ready"
    queue.complete_task("ready")
    for name in ("done", "running", "failed"):
        taken = queue.get_next_task()
        assert taken is not None
        assert taken.task_id == name
    queue.complete_task("done")
    queue.fail_task("failed", "HTTP 500")

    text = queue.to_json()
    data = json.loads(text)
    assert [item["task_id"] for item in data] == [
        "done", "running", "failed", "waits", "lost", "rich", "ready",
    ]  # fmt: skip
    restored = DownloadQueue.from_json(text)

    states = {t.task_id: t.state for t in restored}
    assert states == {
        "done": TaskState.COMPLETED,
        "running": TaskState.PENDING,  # interrupted work runs again
        "failed": TaskState.FAILED,
        "waits": TaskState.PENDING,
        "lost": TaskState.CANCELLED,
        "rich": TaskState.PENDING,
        "ready": TaskState.COMPLETED,
    }
    assert restored.get_task("failed").error == "HTTP 500"
    assert restored.get_task("waits").dependencies == ["running"]
    rich = restored.get_task("rich")
    assert rich.content == _content()
    assert rich.to_content().headers == {"Authorization": "token"}
    assert rich.content_type is ContentType.ALBUM
    # dependencies still gate the order after the reload
    assert drain(restored) == ["running", "waits", "rich"]
    assert restored.is_empty


def test_json_of_an_empty_queue() -> None:
    restored = DownloadQueue.from_json(DownloadQueue().to_json())
    assert len(restored) == 0
    assert restored.is_empty


def test_task_json_round_trip() -> None:
    original = DownloadTask.from_content(_content(), priority=4, metadata={"disc": 2})
    back = DownloadTask.from_json(original.to_json())
    assert back.task_id == original.task_id
    assert back.priority == 4
    assert back.metadata == {"disc": 2}
    assert back.content == original.content
    assert back.state is TaskState.PENDING


# -- "after": ordering without dependence ---


def test_after_waits_for_the_earlier_task_but_survives_its_failure() -> None:
    queue = DownloadQueue()
    cover = queue.add_task(task("cover", priority=0))
    track = DownloadTask(
        content_id="track",
        content_type=ContentType.TRACK,
        source="s",
        title="track",
        url="u",
        priority=10,
        after=[cover.task_id],
    )
    queue.add_task(track)
    first = queue.get_next_task()
    assert first is cover  # the track's higher priority does not let it start first
    assert queue.get_next_task() is None
    queue.fail_task(cover.task_id, "404")
    assert queue.get_next_task() is track  # not cancelled: it only had to wait
    queue.complete_task(track.task_id)
    assert queue.counts()[TaskState.COMPLETED] == 1
    assert queue.counts()[TaskState.FAILED] == 1


def test_after_survives_a_json_round_trip() -> None:
    queue = DownloadQueue()
    cover = queue.add_task(task("cover"))
    track = DownloadTask(
        content_id="track",
        content_type=ContentType.TRACK,
        source="s",
        title="track",
        url="u",
        after=[cover.task_id],
    )
    queue.add_task(track)
    restored = DownloadQueue.from_json(queue.to_json())
    assert restored.get_task(track.task_id).after == [cover.task_id]
    assert restored.get_next_task().task_id == cover.task_id  # type: ignore[union-attr]
    assert restored.get_next_task() is None
    restored.cancel_task(cover.task_id)
    assert restored.get_next_task().task_id == track.task_id  # type: ignore[union-attr]
