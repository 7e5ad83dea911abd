#!/usr/bin/env python3
"""Scale test of ripstream.downloader.DownloadQueue: 100,000 tasks with dependencies.

    python benchmarks/queue_scale.py                    # 10,000 and 100,000 tasks
    python benchmarks/queue_scale.py --tasks 100000 --chain 10 --json out.json

For each size N it builds N DownloadTasks in chains of --chain (default 10):
every task but the first of its chain depends on the task before it, and
priorities are pseudo-random 0..9 (fixed seed). Then it measures, without
tracing:

  add_task        N x queue.add_task(task)                      -> ops/s
  next+complete   get_next_task() + complete_task(id) until the queue is
                  empty                                         -> pairs/s

and, in a second pass under tracemalloc, the bytes still allocated per task
for the DownloadTask objects themselves and for the queue's bookkeeping
after all N are added.

The drain is checked: every task must come out exactly once, never before
the task it depends on is completed, and `is_empty` must be true at the end.
Each phase stops after --time-limit seconds (default 120) and reports the
partial rate, so an O(n) per-operation queue shows up as a low rate instead
of a hung benchmark. Exit status: 0 ok, 1 a check failed or a phase timed
out, 2 the queue API is not importable/usable yet.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_api():
    sys.path.insert(0, str(REPO))  # the repo's code, installed or not
    try:
        from ripstream.downloader import ContentType, DownloadQueue, DownloadTask
    except Exception as exc:
        print(
            "queue_scale.py: ripstream.downloader.DownloadQueue / DownloadTask / ContentType"
            f" are not importable yet:\n  {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        sys.exit(2)
    return ContentType, DownloadQueue, DownloadTask


def api_error(what: str, exc: BaseException) -> None:
    print(
        f"queue_scale.py: the DownloadQueue API did not behave as expected while {what}:\n"
        f"  {type(exc).__name__}: {exc}\n"
        "Expected: DownloadTask(content_id=, content_type=ContentType.TRACK, source=, title=,"
        " url=, file_path=, priority=, dependencies=[task_id]) with .task_id;"
        " DownloadQueue(max_size=None) with add_task(task), get_next_task() -> task|None,"
        " complete_task(task_id), is_empty.",
        file=sys.stderr,
    )
    sys.exit(2)


def make_tasks(api, n: int, chain: int, seed: int) -> list:
    content_type, _, task_cls = api
    rng = random.Random(seed)
    tasks = []
    prev_id = None
    for i in range(n):
        deps = [prev_id] if (i % chain and prev_id is not None) else []
        task = task_cls(
            content_id=f"track-{i}",
            content_type=content_type.TRACK,
            source="http",
            title=f"Track {i}",
            url=f"http://127.0.0.1:18080/files/small/s{i % 2000:05d}.bin",
            file_path=None,
            priority=rng.randrange(10),
            dependencies=deps,
        )
        tasks.append(task)
        prev_id = task.task_id
    return tasks


def bench_size(api, n: int, chain: int, seed: int, time_limit: float) -> dict:
    _, queue_cls, _ = api
    row: dict = {"tasks": n, "chain": chain, "ok": True, "problems": []}

    # ---- pass 1: timing, no tracemalloc
    try:
        t0 = time.perf_counter()
        tasks = make_tasks(api, n, chain, seed)
        row["create_per_s"] = n / (time.perf_counter() - t0)
    except Exception as exc:
        api_error("creating DownloadTask objects", exc)
    deps_of = {t.task_id: (t.dependencies[0] if t.dependencies else None) for t in tasks}
    if len(deps_of) != n:
        row["problems"].append(f"task_id not unique: {n - len(deps_of)} duplicates")

    try:
        queue = queue_cls(max_size=None)
    except Exception as exc:
        api_error("creating DownloadQueue(max_size=None)", exc)

    gc.collect()
    added = 0
    deadline = time.perf_counter() + time_limit
    t0 = time.perf_counter()
    try:
        for task in tasks:
            queue.add_task(task)
            added += 1
            if not added & 1023 and time.perf_counter() > deadline:
                break
    except Exception as exc:
        api_error(f"adding task #{added}", exc)
    elapsed = time.perf_counter() - t0
    row["add_s"] = elapsed
    row["add_per_s"] = added / elapsed if elapsed else float("inf")
    if added < n:
        row["ok"] = False
        row["problems"].append(f"add_task: only {added}/{n} added within {time_limit:g}s")

    order: list[str] = []
    deadline = time.perf_counter() + time_limit
    t0 = time.perf_counter()
    try:
        while True:
            task = queue.get_next_task()
            if task is None:
                break
            queue.complete_task(task.task_id)
            order.append(task.task_id)
            if not len(order) & 1023 and time.perf_counter() > deadline:
                row["ok"] = False
                row["problems"].append(
                    f"drain: only {len(order)}/{added} done within {time_limit:g}s"
                )
                break
    except Exception as exc:
        api_error(f"draining (after {len(order)} tasks)", exc)
    elapsed = time.perf_counter() - t0
    row["drain_s"] = elapsed
    row["drained"] = len(order)
    row["next_complete_per_s"] = len(order) / elapsed if elapsed else float("inf")

    # ---- checks (outside the timed loops)
    if len(order) == added == n:
        if not queue.is_empty:
            row["problems"].append("is_empty is False after every task was completed")
    elif not row["problems"]:
        row["problems"].append(
            f"get_next_task() returned None with {added - len(order)} of {added} tasks left"
            f" (is_empty={queue.is_empty})"
        )
    seen: set[str] = set()
    early = dupes = 0
    for tid in order:
        if tid in seen:
            dupes += 1
        dep = deps_of.get(tid)
        if dep is not None and dep not in seen:
            early += 1
        seen.add(tid)
    if dupes:
        row["problems"].append(f"{dupes} tasks handed out twice")
    if early:
        row["problems"].append(f"{early} tasks handed out before their dependency completed")
    if row["problems"]:
        row["ok"] = False
    del queue, tasks, order, deps_of, seen
    gc.collect()

    # ---- pass 2: memory under tracemalloc
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tasks = make_tasks(api, n, chain, seed)
        after_tasks = tracemalloc.get_traced_memory()[0]
        queue = queue_cls(max_size=None)
        for task in tasks:
            queue.add_task(task)
        gc.collect()
        after_queue = tracemalloc.get_traced_memory()[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    row["task_bytes_each"] = (after_tasks - base) / n
    row["queue_bytes_each"] = (after_queue - after_tasks) / n
    row["total_bytes_each"] = (after_queue - base) / n
    row["peak_mib"] = (peak - base) / (1 << 20)
    del queue, tasks
    gc.collect()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument(
        "--tasks", default="10000,100000", help="comma list of queue sizes (default 10000,100000)"
    )
    parser.add_argument("--chain", type=int, default=10, help="dependency chain length (10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--time-limit", type=float, default=120, help="seconds per phase before giving up (120)"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.tasks.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or args.chain < 1:
        parser.error("--tasks and --chain must be positive")

    api = load_api()
    rows = []
    for n in sizes:
        print(f"[queue_scale] {n} tasks, chains of {args.chain} ...", file=sys.stderr, flush=True)
        rows.append(bench_size(api, n, args.chain, args.seed, args.time_limit))

    print(
        f"### DownloadQueue scale (chains of {args.chain}, priorities 0-9, Python "
        f"{sys.version.split()[0]})\n"
    )
    print(
        "| tasks | create tasks/s | add_task ops/s | next+complete pairs/s | task B/task"
        " | queue B/task | total B/task | tracemalloc peak MiB | status |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        status = "ok" if r["ok"] else "FAILED: " + "; ".join(r["problems"])
        print(
            f"| {r['tasks']:,} | {r['create_per_s']:,.0f} | {r['add_per_s']:,.0f} |"
            f" {r['next_complete_per_s']:,.0f} | {r['task_bytes_each']:,.0f} |"
            f" {r['queue_bytes_each']:,.0f} | {r['total_bytes_each']:,.0f} |"
            f" {r['peak_mib']:.1f} | {status} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"chain": args.chain, "results": rows}, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
