"""The task queue: DownloadTask, TaskState, and DownloadQueue (heapq priority + dependencies).

A task is *ready* once every task it depends on has completed. Only ready tasks sit in the
heap, keyed ``(-priority, sequence)`` so higher priorities start first and equal priorities
keep their insertion order; waiting tasks hold a count of unmet dependencies and are pushed
when it reaches zero. Every operation is O(log n) or O(dependents), never a scan of the queue.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ripstream.downloader.content import ContentType, DownloadableContent, TrackMetadata
from ripstream.downloader.exceptions import ConfigError, QueueFullError, TaskStateError
from ripstream.downloader.jsonmixin import JsonMixin, json_field

__all__ = ["DownloadQueue", "DownloadTask", "TaskState"]


class TaskState(enum.Enum):
    """A task's life: PENDING -> RUNNING -> COMPLETED | FAILED, or CANCELLED before it ends."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """True for COMPLETED, FAILED and CANCELLED."""
        return self in (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED)


def _new_id() -> str:
    """128 random bits in hex, as ``uuid4().hex`` (whose module imports ``platform`` at start)."""
    return os.urandom(16).hex()


@dataclass(slots=True, eq=False)
class DownloadTask(JsonMixin):
    """One unit of work for the manager: plain data, serialisable to JSON.

    :param priority: higher starts first; equal priorities start in the order added.
    :param dependencies: task ids that must complete before this one may start; if one fails,
        this task is cancelled.
    :param after: task ids that must have finished, whatever their outcome, before this one
        starts (a cover before the tracks that embed it: a missing cover must not cancel them).
    :param not_before: Unix seconds before which the task is not started (the manager's
        wall clock decides).

    Example::

        task = DownloadTask(content_id="track_123", content_type=ContentType.TRACK,
                            source="my_service", title="My Song",
                            url="https://example.com/track_123", priority=5)
    """

    content_id: str
    content_type: ContentType
    source: str
    title: str
    url: str
    file_path: str | None = None
    priority: int = 0
    dependencies: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    task_id: str = field(default_factory=_new_id)
    state: TaskState = TaskState.PENDING
    error: str | None = None
    checksum: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    content: DownloadableContent | None = field(
        default=None, metadata=json_field(exclude=lambda value: value is None)
    )
    not_before: float | None = field(
        default=None, metadata=json_field(exclude=lambda value: value is None)
    )

    def __post_init__(self) -> None:
        if not isinstance(self.content_type, ContentType):
            self.content_type = ContentType(self.content_type)
        if not isinstance(self.state, TaskState):
            self.state = TaskState(self.state)
        if type(self.priority) is not int:
            raise ConfigError(
                f"priority must be an integer, got {self.priority!r}",
                field="priority",
                value=self.priority,
            )
        self.file_path = str(self.file_path) if self.file_path is not None else None

    @classmethod
    def from_content(cls, content: DownloadableContent, **kwargs: Any) -> DownloadTask:
        """A task for already-resolved content (kept whole, so no second lookup is needed)."""
        return cls(
            content_id=content.content_id,
            content_type=content.content_type,
            source=content.source,
            title=content.title,
            url=content.url,
            checksum=content.checksum,
            content=content,
            **kwargs,
        )

    def to_content(self) -> DownloadableContent:
        """The content to download: the resolved one, or one built from the task's fields."""
        if self.content is not None:
            return self.content
        return DownloadableContent(
            content_id=self.content_id,
            content_type=self.content_type,
            source=self.source,
            title=self.title,
            url=self.url,
            checksum=self.checksum,
            metadata=TrackMetadata.from_mapping(self.metadata),
        )


class DownloadQueue:
    """A priority queue of tasks with dependencies. Thread-safe.

    Example::

        queue = DownloadQueue(max_size=1000)
        queue.add_task(task)
        while not queue.is_empty:
            task = queue.get_next_task()
            if task:
                ...  # download it
                queue.complete_task(task.task_id)

    :param max_size: most unfinished (pending or running) tasks; ``None`` for no limit.
    """

    def __init__(self, max_size: int | None = None) -> None:
        if max_size is not None and (type(max_size) is not int or max_size < 1):
            raise ConfigError(
                f"max_size must be an integer >= 1, got {max_size!r}",
                field="max_size",
                value=max_size,
            )
        self.max_size = max_size
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._tasks: dict[str, DownloadTask] = {}
        self._heap: list[tuple[int, int, str]] = []
        self._sequence = itertools.count()
        self._unmet: dict[str, int] = {}
        self._dependents: dict[str, list[str]] = {}
        self._followers: dict[str, list[str]] = {}
        self._counts = dict.fromkeys(TaskState, 0)

    # -- adding ---

    def add_task(self, task: DownloadTask) -> DownloadTask:
        """Add ``task``; it starts once its dependencies have completed.

        A dependency that already failed or was cancelled cancels ``task`` at once.

        :raises QueueFullError: when ``max_size`` unfinished tasks are queued.
        :raises TaskStateError: for a duplicate id or an unknown dependency.
        """
        with self._lock:
            if task.task_id in self._tasks:
                raise TaskStateError(f"task {task.task_id} is already queued", task_id=task.task_id)
            if self.max_size is not None and self.active_count >= self.max_size:
                raise QueueFullError(
                    f"queue is full ({self.max_size} unfinished tasks)", max_size=self.max_size
                )
            for dependency in (*task.dependencies, *task.after):
                if dependency not in self._tasks:
                    raise TaskStateError(
                        f"task {task.task_id} depends on unknown task {dependency}",
                        task_id=task.task_id,
                    )
            task.state = TaskState.PENDING
            self._tasks[task.task_id] = task
            self._counts[TaskState.PENDING] += 1
            unmet = 0
            broken = None
            for dependency in dict.fromkeys(task.dependencies):
                state = self._tasks[dependency].state
                if state is TaskState.COMPLETED:
                    continue
                if state in (TaskState.FAILED, TaskState.CANCELLED):
                    broken = dependency
                unmet += 1
                self._dependents.setdefault(dependency, []).append(task.task_id)
            for earlier in dict.fromkeys(task.after):
                if not self._tasks[earlier].state.is_finished:
                    unmet += 1
                    self._followers.setdefault(earlier, []).append(task.task_id)
            if broken is not None:
                self._finish(task, TaskState.CANCELLED, self._why(broken))
            elif unmet:
                self._unmet[task.task_id] = unmet
            else:
                self._push(task)
            self._changed.notify_all()
            return task

    def add_tasks(self, tasks: Iterable[DownloadTask]) -> None:
        """Add several tasks in order (dependencies may point at earlier ones)."""
        for task in tasks:
            self.add_task(task)

    # -- taking ---

    def get_next_task(self, timeout: float | None = 0) -> DownloadTask | None:
        """The highest-priority ready task, marked RUNNING; ``None`` if none is ready.

        :param timeout: seconds to wait for a task to become ready (``0``: do not wait,
            ``None``: wait until one is ready or nothing is left that could become ready).
        """
        with self._lock:
            task = self._pop_ready()
            if task is None and timeout != 0:
                self._changed.wait_for(
                    lambda: bool(self._heap) or not self._has_unfinished(), timeout
                )
                task = self._pop_ready()
            return task

    def _pop_ready(self) -> DownloadTask | None:
        while self._heap:
            _, _, task_id = heapq.heappop(self._heap)
            task = self._tasks[task_id]
            if task.state is TaskState.PENDING:
                self._move(task, TaskState.RUNNING)
                return task
        return None

    # -- finishing ---

    def complete_task(self, task_id: str) -> None:
        """Mark a running task completed and release the tasks waiting on it."""
        with self._lock:
            task = self._require(task_id, TaskState.RUNNING, "complete")
            self._move(task, TaskState.COMPLETED)
            for dependent_id in self._dependents.pop(task_id, []):
                self._release(dependent_id)
            for follower_id in self._followers.pop(task_id, []):
                self._release(follower_id)
            self._changed.notify_all()

    def fail_task(self, task_id: str, error: str | None = None) -> list[str]:
        """Mark a task failed; everything that depends on it (transitively) is cancelled.

        :returns: the ids of the dependents cancelled.
        """
        with self._lock:
            task = self._require(task_id, None, "fail")
            self._finish(task, TaskState.FAILED, error or "failed")
            cancelled = self._cancel_dependents(task_id)
            self._changed.notify_all()
            return cancelled

    def cancel_task(self, task_id: str, reason: str = "cancelled") -> list[str]:
        """Cancel a pending or running task and its dependents.

        :returns: the ids cancelled, ``task_id`` first.
        """
        with self._lock:
            task = self._require(task_id, None, "cancel")
            self._finish(task, TaskState.CANCELLED, reason)
            cancelled = [task_id, *self._cancel_dependents(task_id)]
            self._changed.notify_all()
            return cancelled

    def cancel_all(self, reason: str = "cancelled") -> int:
        """Cancel every unfinished task; returns how many."""
        with self._lock:
            count = 0
            for task in self._tasks.values():
                if not task.state.is_finished:
                    self._finish(task, TaskState.CANCELLED, reason)
                    count += 1
            self._heap.clear()
            self._unmet.clear()
            self._changed.notify_all()
            return count

    def requeue_task(self, task_id: str) -> None:
        """Put a running task back as pending (e.g. it was interrupted before it started)."""
        with self._lock:
            task = self._require(task_id, TaskState.RUNNING, "requeue")
            self._move(task, TaskState.PENDING)
            self._push(task)
            self._changed.notify_all()

    # -- looking ---

    def get_task(self, task_id: str) -> DownloadTask:
        """The task with ``task_id``.

        :raises TaskStateError: when there is none.
        """
        with self._lock:
            try:
                return self._tasks[task_id]
            except KeyError:
                raise TaskStateError(f"no task {task_id}", task_id=task_id) from None

    def tasks(self, state: TaskState | None = None) -> list[DownloadTask]:
        """All tasks in insertion order, optionally only those in ``state``."""
        with self._lock:
            return [t for t in self._tasks.values() if state is None or t.state is state]

    def counts(self) -> dict[TaskState, int]:
        """How many tasks are in each state."""
        with self._lock:
            return dict(self._counts)

    @property
    def active_count(self) -> int:
        """Pending plus running tasks."""
        with self._lock:
            return self._counts[TaskState.PENDING] + self._counts[TaskState.RUNNING]

    @property
    def is_empty(self) -> bool:
        """True when no task is pending or running."""
        return self.active_count == 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)

    def __iter__(self) -> Iterator[DownloadTask]:
        return iter(self.tasks())

    def to_json(self) -> str:
        """Every task as a JSON array (states included)."""
        with self._lock:
            return json.dumps([task.to_dict(encode_json=True) for task in self._tasks.values()])

    @classmethod
    def from_json(cls, text: str, max_size: int | None = None) -> DownloadQueue:
        """Rebuild a queue from :meth:`to_json`; tasks that were running become pending again."""
        queue = cls(max_size=max_size)
        try:
            records = json.loads(text)
            tasks = [DownloadTask.from_dict(record) for record in records]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f"not a saved queue: {exc}", field="queue") from exc
        for task in tasks:
            finished = task.state if task.state.is_finished else None
            error = task.error
            queue._tasks[task.task_id] = task
            task.state = TaskState.PENDING
            queue._counts[TaskState.PENDING] += 1
            if finished is not None:
                queue._move(task, finished)
                task.error = error
        for task in tasks:
            if task.state is TaskState.PENDING:
                queue._restore_waits(task)
        return queue

    # -- internals (lock held) ------------------------------------------------------------------

    def _restore_waits(self, task: DownloadTask) -> None:
        """Re-link a restored pending task to what it waits for (or cancel it, or push it)."""
        unmet = 0
        for dependency in dict.fromkeys(task.dependencies):
            dep = self._tasks.get(dependency)
            if dep is None or dep.state in (TaskState.FAILED, TaskState.CANCELLED):
                self._finish(task, TaskState.CANCELLED, self._why(dependency))
                return
            if dep.state is not TaskState.COMPLETED:
                unmet += 1
                self._dependents.setdefault(dependency, []).append(task.task_id)
        for earlier in dict.fromkeys(task.after):
            previous = self._tasks.get(earlier)
            if previous is not None and not previous.state.is_finished:
                unmet += 1
                self._followers.setdefault(earlier, []).append(task.task_id)
        if unmet:
            self._unmet[task.task_id] = unmet
        else:
            self._push(task)

    def _release(self, waiting_id: str) -> None:
        """One thing ``waiting_id`` waited for is done; push it when nothing is left."""
        left = self._unmet.get(waiting_id)
        if left is None:
            return
        if left == 1:
            del self._unmet[waiting_id]
            waiting = self._tasks[waiting_id]
            if waiting.state is TaskState.PENDING:
                self._push(waiting)
        else:
            self._unmet[waiting_id] = left - 1

    def _why(self, dependency_id: str) -> str:
        dependency = self._tasks.get(dependency_id)
        name = repr(dependency.title) if dependency else dependency_id
        return f"{name} (a task this one depends on) did not complete"

    def _has_unfinished(self) -> bool:
        return self.active_count > 0

    def _push(self, task: DownloadTask) -> None:
        heapq.heappush(self._heap, (-task.priority, next(self._sequence), task.task_id))

    def _move(self, task: DownloadTask, state: TaskState) -> None:
        self._counts[task.state] -= 1
        self._counts[state] += 1
        task.state = state

    def _finish(self, task: DownloadTask, state: TaskState, error: str | None) -> None:
        if task.state.is_finished:
            raise TaskStateError(
                f"task {task.task_id} is already {task.state.value}", task_id=task.task_id
            )
        self._move(task, state)
        task.error = error
        self._unmet.pop(task.task_id, None)
        for follower_id in self._followers.pop(task.task_id, []):
            self._release(follower_id)  # ordered after it, not dependent on it: go ahead

    def _require(self, task_id: str, state: TaskState | None, action: str) -> DownloadTask:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskStateError(f"cannot {action} unknown task {task_id}", task_id=task_id)
        if state is not None and task.state is not state:
            raise TaskStateError(
                f"cannot {action} task {task_id}: it is {task.state.value}, not {state.value}",
                task_id=task_id,
            )
        if state is None and task.state.is_finished:
            raise TaskStateError(
                f"cannot {action} task {task_id}: it is already {task.state.value}", task_id=task_id
            )
        return task

    def _cancel_dependents(self, task_id: str) -> list[str]:
        cancelled: list[str] = []
        stack = list(self._dependents.pop(task_id, []))
        while stack:
            dependent = self._tasks[stack.pop()]
            if dependent.state.is_finished:
                continue
            self._finish(dependent, TaskState.CANCELLED, self._why(task_id))
            cancelled.append(dependent.task_id)
            stack.extend(self._dependents.pop(dependent.task_id, []))
        return cancelled
