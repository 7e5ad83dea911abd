#!/usr/bin/env python3
"""Side-by-side benchmark of the RipStream CLI against peer downloaders.

Normally started by ``bash benchmarks/run.sh`` (which installs the tools,
generates the test files and starts nginx on 127.0.0.1). It can also be run
by hand against an nginx that run.sh-style config already serves:

    python benchmarks/bench.py --generate-only [--big-size 64M ...]   # files only
    python benchmarks/bench.py [--scenario all] [--runs 3] [--tools curl,ripstream]

Scenarios (see benchmarks/README.md for the exact command lines):

  big        one large file (--big-size, default 1G), each tool's defaults
  small      --small-count files (default 2000) of --small-size (default 64K),
             8 at a time (wget: one at a time, it has no parallel mode)
  throttled  one --throttled-size file (default 200M) from /throttled/, where
             nginx caps every connection at 20 MiB/s; 8 connections
  cluster    the small files, RipStream only: on threads (--processes 1), on
             --processes 2 and on --dask local:2 (a dask LocalCluster of two worker
             processes, started and stopped inside the timed run); the table adds CPU
             per file and the wall-time overhead per task against threads
  latency    --latency-count files (400) of --latency-size (64K) from delay_server.py,
             which answers every request --delay-ms (50) late; 16 at a time
  startup    one --startup-size file (1K), the whole process; 10 runs unless --runs:
             RipStream against peers/requests_one.py (requests.get) and curl
  many       --many-count files (20000) of --many-size (4K), 8 at a time: CPU per
             file, peak RSS and the summed PSS of the tool's process tree

RipStream gets --max-per-host N, N = the scenario's parallelism (RipStream's default
of 4 per host would otherwise cap it below the peers); RIPSTREAM_BENCH_MAX_PER_HOST=0
leaves it out. Under each table: RipStream / the best peer (wall; CPU per file for
small and many); at the end the table "RipStream vs best peer" with the issue-10
target of each scenario, met or not.

Every tool is run --runs times per scenario (round robin, so drift hits every
tool alike); the table shows the MEDIAN wall time and CPU time (user+sys of
the whole child process tree, from os.wait4) and the largest ru_maxrss
(and the largest sampled PSS sum of the process tree).
Every output file is compared by sha256 with the generated source: a run that
exits non-zero, times out or writes wrong/missing bytes makes that tool FAILED
for the scenario and it gets no timing.

Results go to stdout as Markdown tables and to WORK/results.json (plus a
timestamped copy). Sizes accept K/M/G suffixes (binary: 64M = 64 MiB).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / "peers"
PY = sys.executable
# How RipStream is started; RIPSTREAM_BENCH_CMD overrides it (e.g. "ripstream" for the
# console script, or another interpreter: "/opt/py312/bin/python -m ripstream").
RIPSTREAM_CMD = shlex.split(os.environ.get("RIPSTREAM_BENCH_CMD", "")) or [PY, "-m", "ripstream"]
RIPSTREAM_LABEL = os.environ.get("RIPSTREAM_BENCH_CMD", "").strip() or "python -m ripstream"
# The output-folder flag: "-d" today; benchmarks/revisions.sh passes "-o" for old revisions
DIR_FLAG = os.environ.get("RIPSTREAM_BENCH_DIR_FLAG", "-d")
# Extra options for ripstream, appended last (so they win over the defaults below)
RIPSTREAM_EXTRA = shlex.split(os.environ.get("RIPSTREAM_BENCH_EXTRA", ""))
# RipStream caps connections per host (default 4), the peers do not at these settings: by
# default ripstream gets `--max-per-host N` with N = the scenario's parallelism, so -j 8 and
# --segments 8 really mean 8 connections to the one local server. RIPSTREAM_BENCH_MAX_PER_HOST=0
# leaves the flag out (revisions older than the flag).
PASS_MAX_PER_HOST = os.environ.get("RIPSTREAM_BENCH_MAX_PER_HOST", "1") != "0"

SCENARIOS = ("big", "small", "throttled", "cluster", "latency", "startup", "many")
PEER_TOOLS = ("curl", "wget", "aria2c", "requests_tpe", "parfive", "pypdl", "ripstream")
# RipStream's other executors, in the cluster scenario only
RIPSTREAM_MODES = {
    "ripstream_processes": ["--processes", "2"],
    "ripstream_dask": ["--dask", "local:2"],
}
TOOLS = (*PEER_TOOLS, "requests_one", *RIPSTREAM_MODES)
# Which tools take part in which scenario (wget has no multi-connection mode,
# so it is left out of "throttled": it would only repeat curl's single stream, and of
# "latency": one at a time it would only show 400 x 50 ms).
MATRIX = {
    "big": PEER_TOOLS,
    "small": PEER_TOOLS,
    "cluster": ("ripstream", *RIPSTREAM_MODES),
    "throttled": ("curl", "aria2c", "requests_tpe", "parfive", "pypdl", "ripstream"),
    "latency": ("curl", "aria2c", "requests_tpe", "parfive", "pypdl", "ripstream"),
    "startup": ("curl", "requests_one", "ripstream"),
    "many": PEER_TOOLS,
}
# Files at a time (list scenarios) or connections (throttled); big and startup: defaults
PARALLELISM = {"small": 8, "cluster": 8, "throttled": 8, "latency": 16, "many": 8}
# Scenarios that download a list of files; which generated file set each one uses
FILE_SETS = {"small": "small", "cluster": "small", "latency": "latency", "many": "many"}
# Single-file scenarios: manifest key -> file name under www/files
SINGLE_FILES = {"big": "big.bin", "throttled": "throttled.bin", "startup": "tiny.bin"}
DEFAULT_RUNS = {"startup": 10}  # every other scenario: 3
MiB = 1 << 20


def find_gnu_time() -> str | None:
    """Path of GNU time (Debian package `time`), used only to read peak RSS."""
    path = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if not path:
        return None
    try:
        proc = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if "GNU" in (proc.stdout + proc.stderr) else None


GNU_TIME = find_gnu_time()


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 64K, 200M, 1G)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:g} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    return f"{n} B"


# --------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------


def write_random(path: Path, size: int) -> str:
    """Write `size` random bytes to `path`, return their sha256."""
    digest = hashlib.sha256()
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 * MiB))
            digest.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    tmp.replace(path)
    return digest.hexdigest()


def file_set_spec(args: argparse.Namespace, key: str) -> tuple[str, int, int]:
    """(name prefix, count, size) of a generated file set (dir www/files/<key>/)."""
    return {
        "small": ("s", args.small_count, args.small_size),
        "latency": ("l", args.latency_count, args.latency_size),
        "many": ("m", args.many_count, args.many_size),
    }[key]


def prepare_files(args: argparse.Namespace, scenarios: list[str]) -> dict:
    """Create (or reuse) the test files under WORK/www/files; return the manifest.

    The manifest (WORK/manifest.json) records size and sha256 of every file, so
    a rerun with the same sizes reuses the files without hashing them again.
    """
    files_dir = Path(args.work_dir) / "www" / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = Path(args.work_dir) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}

    def single(key: str, name: str, size: int) -> None:
        path = files_dir / name
        entry = manifest.get(key)
        if entry and entry.get("size") == size and path.is_file() and path.stat().st_size == size:
            return
        log(f"generating {path} ({human(size)})")
        manifest[key] = {"name": name, "size": size, "sha256": write_random(path, size)}
        manifest_path.write_text(json.dumps(manifest, indent=1))

    def many(key: str) -> None:
        prefix, count, size = file_set_spec(args, key)
        folder = files_dir / key
        folder.mkdir(exist_ok=True)
        entry = manifest.get(key)
        names = [f"{prefix}{i:05d}.bin" for i in range(count)]
        ok = entry and entry.get("size") == size and entry.get("count") == count
        if ok:
            ok = all(
                (folder / n).is_file() and (folder / n).stat().st_size == size
                for n in (names[0], names[-1])
            )
        if ok:
            return
        log(f"generating {count} files of {human(size)} in {folder}")
        t0 = time.perf_counter()
        for stale in folder.glob(f"{prefix}*.bin"):
            stale.unlink()
        hashes = {}
        for name in names:  # one write per file, no temporary name: this is a fresh folder
            data = os.urandom(size)
            (folder / name).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        manifest[key] = {"count": count, "size": size, "sha256": hashes}
        manifest_path.write_text(json.dumps(manifest, indent=1))
        log(f"  {count} files in {time.perf_counter() - t0:.1f} s")

    for scenario in scenarios:
        if scenario in SINGLE_FILES:
            size = {"big": args.big_size, "throttled": args.throttled_size}.get(
                scenario, args.startup_size
            )
            single(scenario, SINGLE_FILES[scenario], size)
        elif scenario in FILE_SETS:
            many(FILE_SETS[scenario])
    return manifest


# --------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------


@dataclass
class Job:
    """What one scenario asks of a tool."""

    scenario: str
    out: Path
    urls: list[str]
    list_file: Path | None = None  # one URL per line (list scenarios)
    curl_config: Path | None = None  # url = "..." lines for curl -K (list scenarios)
    expected: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    total_bytes: int = 0
    parallel: int = 0  # files at a time / connections; 0: each tool's default


def tool_command(tool: str, job: Job) -> list[str]:
    """The exact argv each tool runs for each scenario."""
    out, sc, j = str(job.out), job.scenario, str(job.parallel)
    url = job.urls[0]
    many = sc in FILE_SETS  # a list of files, job.parallel at a time
    single_name = next(iter(job.expected)) if len(job.expected) == 1 else ""
    aria_common = [
        "aria2c",
        "-q",
        "--file-allocation=none",
        "--allow-overwrite=true",
        "--auto-file-renaming=false",
        "-d",
        out,
    ]
    if tool == "curl":
        if many:
            return [
                "curl",
                "-sS",
                "-f",
                "-Z",
                "--parallel-max",
                j,
                "--output-dir",
                out,
                "--remote-name-all",
                "-K",
                str(job.curl_config),
            ]
        return ["curl", "-sS", "-f", "-o", os.path.join(out, single_name), url]
    if tool == "wget":
        if many:
            return ["wget", "-q", "-P", out, "-i", str(job.list_file)]
        return ["wget", "-q", "-O", os.path.join(out, single_name), url]
    if tool == "aria2c":
        if many:
            return [*aria_common, f"-j{j}", "-i", str(job.list_file)]
        if sc == "throttled":
            return [*aria_common, f"-x{j}", f"-s{j}", "-k1M", "-o", single_name, url]
        return [*aria_common, "-o", single_name, url]
    if tool == "requests_tpe":
        base = [PY, str(PEERS / "requests_tpe.py"), "-o", out]
        if many:
            return [*base, "-j", j, "-i", str(job.list_file)]
        if sc == "throttled":
            return [*base, "--segments", j, url]
        return [*base, url]
    if tool == "requests_one":
        return [PY, str(PEERS / "requests_one.py"), "-o", out, url]
    if tool == "parfive":
        base = [PY, str(PEERS / "parfive_dl.py"), "-o", out]
        if many:
            return [*base, "--max-conn", j, "--max-splits", "1", "-i", str(job.list_file)]
        if sc == "throttled":
            return [*base, "--max-splits", j, url]
        return [*base, url]
    if tool == "pypdl":
        base = [PY, str(PEERS / "pypdl_dl.py"), "-o", out]
        if many:
            return [*base, "-j", j, "--segments", "1", "-i", str(job.list_file)]
        if sc == "throttled":
            return [*base, "--segments", j, url]
        return [*base, url]
    if tool.startswith("ripstream"):
        base = [*RIPSTREAM_CMD, "-q", "--no-progress"]
        if job.parallel and PASS_MAX_PER_HOST:
            base += ["--max-per-host", j]
        base += RIPSTREAM_EXTRA
        if sc == "cluster":  # threads unless a mode says otherwise (auto would pick processes)
            mode = RIPSTREAM_MODES.get(tool, ["--processes", "1"])
            return [*base, *mode, "-j", j, DIR_FLAG, out, "-i", str(job.list_file)]
        if many:
            return [*base, "-j", j, DIR_FLAG, out, "-i", str(job.list_file)]
        if sc == "throttled":
            return [*base, "--segments", j, DIR_FLAG, out, url]
        return [*base, DIR_FLAG, out, url]
    raise ValueError(tool)


def tool_env(tool: str, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("LC_ALL", "C.UTF-8")
    env.pop("http_proxy", None)
    env.pop("HTTP_PROXY", None)
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    env["PARFIVE_HIDE_PROGRESS"] = "1"
    if tool.startswith("ripstream"):
        # Use the repo's code even if `pip install -e .` has not been done. (No
        # PYTHONPYCACHEPREFIX: it made every run re-read bytecode from a cold tree,
        # about 0.45 s that no other Python peer paid.)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def first_line(cmd: list[str], env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else f"? (exit {proc.returncode})"


def probe_tools(work: Path) -> tuple[dict[str, str | None], dict[str, str]]:
    """Return ({tool: None if usable else why not}, {tool: version})."""
    why: dict[str, str | None] = {}
    versions: dict[str, str] = {}
    for exe in ("curl", "wget", "aria2c"):
        if shutil.which(exe):
            why[exe] = None
            versions[exe] = first_line([exe, "--version"])
        else:
            why[exe] = f"skipped: `{exe}` not installed"
    for tool, modules in (
        ("requests_tpe", ["requests"]),
        ("requests_one", ["requests"]),
        ("parfive", ["parfive", "aiohttp"]),
        ("pypdl", ["pypdl", "aiohttp"]),
    ):
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            why[tool] = f"skipped: python module {', '.join(missing)} not installed"
        else:
            why[tool] = None
            versions[tool] = ", ".join(f"{m} {importlib.metadata.version(m)}" for m in modules)
    env = tool_env("ripstream", work)
    try:
        proc = subprocess.run(
            [*RIPSTREAM_CMD, "--version"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=str(work),
            check=False,
        )
        if proc.returncode == 0:
            why["ripstream"] = None
            versions["ripstream"] = (
                (proc.stdout or proc.stderr).strip().splitlines()[0]
                if (proc.stdout or proc.stderr).strip()
                else "?"
            )
            # Compile the package once so the first timed run does not pay for it.
            subprocess.run(
                [PY, "-m", "compileall", "-q", str(REPO / "ripstream")],
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )
        else:
            err = [ln for ln in (proc.stderr + proc.stdout).strip().splitlines() if ln.strip()]
            reason = err[-1].strip() if err else f"exit {proc.returncode}"
            why["ripstream"] = f"unavailable: `{RIPSTREAM_LABEL} --version` failed: {reason}"
    except subprocess.TimeoutExpired:
        why["ripstream"] = f"unavailable: `{RIPSTREAM_LABEL} --version` timed out"
    for mode in RIPSTREAM_MODES:
        why[mode] = why["ripstream"]
        versions[mode] = versions.get("ripstream", "?")
    if importlib.util.find_spec("distributed") is None:
        why["ripstream_dask"] = "skipped: dask.distributed not installed (pip install '.[dask]')"
    else:
        versions["ripstream_dask"] += f", distributed {importlib.metadata.version('distributed')}"
    return why, versions


# --------------------------------------------------------------------------
# Running and measuring
# --------------------------------------------------------------------------


@dataclass
class RunResult:
    ok: bool
    wall: float
    cpu: float
    user: float
    sys: float
    maxrss_kib: int
    exit_code: int
    reason: str = ""
    stderr_tail: str = ""
    tree_rss_kib: int = 0  # largest sampled sum of PSS over the tool's process tree


PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4
HAVE_SMAPS_ROLLUP = os.path.exists("/proc/self/smaps_rollup")


class TreeRss(threading.Thread):
    """Samples, every `interval` s, the summed PSS (proportional set size: a page shared by
    n processes counts 1/n in each, so forked workers are not counted twice) of every
    process below `root`, worker processes included (`root` itself is left out when it is
    GNU time). A sampled figure: a peak shorter than the interval can be missed. Needs Linux
    /proc (smaps_rollup; without it, RSS from statm, which counts shared pages per process)."""

    def __init__(self, root: int, include_root: bool, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.include_root, self.interval = root, include_root, interval
        self.peak_kib = 0
        self.stopped = threading.Event()

    def tree(self) -> list[int]:
        pids, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pid}/task"):
                    path = f"/proc/{pid}/task/{task}/children"
                    with contextlib.suppress(OSError, ValueError), open(path) as fh:
                        todo.extend(int(c) for c in fh.read().split())
        return pids if self.include_root else pids[1:]

    def sample(self) -> None:
        total = 0
        for pid in self.tree():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += self.pss_kib(pid)
        self.peak_kib = max(self.peak_kib, total)

    @staticmethod
    def pss_kib(pid: int) -> int:
        if HAVE_SMAPS_ROLLUP:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Pss:"):
                        return int(line.split()[1])
            return 0
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_KIB

    def run(self) -> None:
        if not os.path.isdir("/proc/self/task"):
            return
        while not self.stopped.wait(self.interval):
            self.sample()


def run_once(tool: str, job: Job, work: Path, timeout: float, log_stem: Path) -> RunResult:
    shutil.rmtree(job.out, ignore_errors=True)
    job.out.mkdir(parents=True)
    # let the file system write out the previous tool's files and deletions first: otherwise
    # each tool pays for the one before it (on ext4, 2,000 deletions left the next tool's file
    # creations waiting on the journal: RipStream alone took 3.2-4.3 s, after parfive 5.9-7.3 s)
    os.sync()
    argv = tool_command(tool, job)
    env = tool_env(tool, work)
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_log = Path(f"{log_stem}.out")
    err_log = Path(f"{log_stem}.err")
    rss_file = Path(f"{log_stem}.maxrss")
    rss_file.unlink(missing_ok=True)
    if GNU_TIME:
        # GNU time forks the tool from a ~1 MiB process and writes the tool's own
        # ru_maxrss; the wait4 maxrss below would include the ~30 MiB of this
        # Python process, inherited by the forked child before exec.
        argv = [GNU_TIME, "-f", "%M", "-o", str(rss_file), "--", *argv]
    timed_out = threading.Event()
    with open(out_log, "wb") as fo, open(err_log, "wb") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=str(job.out),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fo,
            stderr=fe,
            start_new_session=True,
        )

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        sampler = TreeRss(proc.pid, include_root=not GNU_TIME)
        sampler.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        except BaseException:  # e.g. Ctrl-C: do not leave the tool running
            kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -1
            raise
        finally:
            timer.cancel()
            sampler.stopped.set()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 already
        # anything the tool left running in its session
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    maxrss_kib = ru.ru_maxrss
    if GNU_TIME:
        # If killed before time wrote it, keep the (upper bound) wait4 value.
        with contextlib.suppress(OSError, ValueError, IndexError):
            maxrss_kib = int(rss_file.read_text().split()[-1])
    stderr_tail = err_log.read_bytes()[-2000:].decode("utf-8", "replace").strip()
    res = RunResult(
        ok=False,
        wall=wall,
        cpu=ru.ru_utime + ru.ru_stime,
        user=ru.ru_utime,
        sys=ru.ru_stime,
        maxrss_kib=maxrss_kib,
        exit_code=proc.returncode,
        stderr_tail=stderr_tail,
        tree_rss_kib=sampler.peak_kib,
    )
    if timed_out.is_set():
        res.reason = f"timeout after {timeout:g}s"
    elif proc.returncode != 0:
        lines = [ln for ln in stderr_tail.splitlines() if ln.strip()]
        res.reason = f"exit {proc.returncode}" + (f": {lines[-1].strip()}" if lines else "")
    else:
        res.reason = verify(job)
        res.ok = not res.reason
    shutil.rmtree(job.out, ignore_errors=True)  # free the page cache before the next run
    return res


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def verify(job: Job) -> str:
    """'' if every expected file is in job.out with the right bytes, else why not."""
    missing = wrong = 0
    example = ""
    for name, want in job.expected.items():
        path = job.out / name
        if not path.is_file():
            missing += 1
            example = example or f"{name} missing"
        elif sha256_file(path) != want:
            wrong += 1
            example = example or f"{name} sha256 mismatch ({path.stat().st_size} bytes)"
    if not (missing or wrong):
        return ""
    parts = []
    if wrong:
        parts.append(f"{wrong} wrong")
    if missing:
        parts.append(f"{missing} missing")
    return f"bad output: {', '.join(parts)} of {len(job.expected)} files (e.g. {example})"


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


def make_job(scenario: str, args: argparse.Namespace, manifest: dict) -> Job:
    work = Path(args.work_dir)
    base = args.base_url.rstrip("/")
    lists = work / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    parallel = PARALLELISM.get(scenario, 0)
    if scenario in SINGLE_FILES:
        entry = manifest[scenario]
        prefix = "/throttled/" if scenario == "throttled" else "/files/"
        return Job(
            scenario=scenario,
            out=work / "out" / scenario,
            urls=[f"{base}{prefix}{entry['name']}"],
            expected={entry["name"]: entry["sha256"]},
            total_bytes=entry["size"],
            parallel=parallel,
        )
    key = FILE_SETS[scenario]  # the small and the cluster scenarios share the files
    if scenario == "latency":
        base = args.delay_url.rstrip("/")
    entry = manifest[key]
    urls = [f"{base}/files/{key}/{name}" for name in entry["sha256"]]
    list_file = lists / f"{scenario}_urls.txt"
    list_file.write_text("".join(u + "\n" for u in urls))
    curl_config = lists / f"{scenario}_curl.cfg"
    curl_config.write_text("".join(f'url = "{u}"\n' for u in urls))
    return Job(
        scenario=scenario,
        out=work / "out" / scenario,
        urls=urls,
        list_file=list_file,
        curl_config=curl_config,
        expected=dict(entry["sha256"]),
        total_bytes=entry["size"] * entry["count"],
        parallel=parallel,
    )


def check_server(args: argparse.Namespace, manifest: dict, scenarios: list[str]) -> None:
    base_url = args.base_url.rstrip("/")
    probes = [f"{base_url}/healthz"]
    if "big" in scenarios:
        probes.append(f"{base_url}/files/{manifest['big']['name']}")
    if "latency" in scenarios:
        probes.append(f"{args.delay_url.rstrip('/')}/healthz")
    for url in probes:
        try:
            req = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(req, timeout=5) as resp:  # loopback only
                resp.read()
        except OSError as exc:
            sys.exit(
                f"bench.py: test server not reachable at {url} ({exc}).\n"
                "Start everything with `bash benchmarks/run.sh`, or serve WORK/www with"
                " benchmarks/nginx.conf (and benchmarks/delay_server.py for latency)"
                " yourself and pass --base-url / --delay-url."
            )


def summarize(scenario: str, tool: str, runs: list[RunResult], job: Job) -> dict:
    ok_runs = [r for r in runs if r.ok]
    row: dict = {
        "tool": tool,
        "command": tool_command(tool, job),
        "runs": [r.__dict__ for r in runs],
    }
    if runs and len(ok_runs) == len(runs):
        wall = statistics.median(r.wall for r in ok_runs)
        cpu = statistics.median(r.cpu for r in ok_runs)
        row.update(
            status="ok",
            wall_median_s=wall,
            wall_min_s=min(r.wall for r in ok_runs),
            wall_max_s=max(r.wall for r in ok_runs),
            mib_per_s=job.total_bytes / MiB / wall,
            files_per_s=len(job.expected) / wall,
            cpu_median_s=cpu,
            cpu_ms_per_file=1000 * cpu / len(job.expected),
            peak_rss_mib=max(r.maxrss_kib for r in ok_runs) / 1024,
            tree_rss_mib=max(r.tree_rss_kib for r in ok_runs) / 1024,
        )
        # what the RSS targets are checked against: the larger of the two (one process's
        # own peak, or the whole tree's proportional sum)
        row["rss_mib"] = max(row["peak_rss_mib"], row["tree_rss_mib"])
    else:
        bad = [r for r in runs if not r.ok]
        row["status"] = f"FAILED ({len(bad)}/{len(runs)} runs): {bad[0].reason}"
    return row


# What issue 10 asks of each scenario: the peer RipStream must match (its median wall times
# `factor`), an optional CPU-per-file bound, and the peak RSS bound (MiB).
TARGETS = {
    "small": {"peer": "curl", "factor": 1.0, "cpu_ms": 0.4},
    "latency": {"peer": "curl", "factor": 1.0},
    "throttled": {"peer": "aria2c", "factor": 1.0},
    "startup": {"peer": "requests_one", "factor": 1.2},
    "big": {"peer": "curl", "factor": 1.0},
    "many": {},
}
RSS_LIMIT_MIB = {"many": 100.0}  # every other scenario: 64
CPU_PER_FILE_SCENARIOS = ("small", "many", "latency", "cluster")


def best_peer(rows: list[dict], key: str) -> dict | None:
    """The peer (any tool but RipStream's) with the lowest `key` among those that passed."""
    peers = [r for r in rows if r["status"] == "ok" and not r["tool"].startswith("ripstream")]
    return min(peers, key=lambda r: r[key], default=None)


def versus_best(scenario: str, rows: list[dict]) -> dict:
    """RipStream against the best peer of the scenario, and against the issue-10 target."""
    rip = next((r for r in rows if r["tool"] == "ripstream"), None)
    out: dict = {"scenario": scenario}
    best = best_peer(rows, "wall_median_s")
    rip_ok = rip is not None and rip["status"] == "ok"
    if best:
        out.update(best_peer=best["tool"], best_peer_wall_s=best["wall_median_s"])
    if rip_ok:
        out.update(ripstream_wall_s=rip["wall_median_s"], ripstream_rss_mib=rip["rss_mib"])
        if best:
            out["wall_ratio"] = rip["wall_median_s"] / best["wall_median_s"]
    if scenario in ("small", "many"):
        best_cpu = best_peer(rows, "cpu_ms_per_file")
        if best_cpu:
            out.update(best_cpu_peer=best_cpu["tool"], best_cpu_peer_ms=best_cpu["cpu_ms_per_file"])
        if rip_ok:
            out["ripstream_cpu_ms"] = rip["cpu_ms_per_file"]
            if best_cpu:
                out["cpu_ratio"] = rip["cpu_ms_per_file"] / best_cpu["cpu_ms_per_file"]
    # the issue-10 target
    target = TARGETS.get(scenario)
    if target is None:
        return out
    rss_limit = RSS_LIMIT_MIB.get(scenario, 64.0)
    text, fails = [], []
    if target.get("peer"):
        factor = target["factor"]
        text.append(f"wall <= {'' if factor == 1 else f'{factor:g}x '}{target['peer']}")
        ref = next((r for r in rows if r["tool"] == target["peer"] and r["status"] == "ok"), None)
        if ref is None:
            fails.append(f"{target['peer']} not measured")
        elif rip_ok:
            limit = factor * ref["wall_median_s"]
            out["target_wall_s"] = limit
            if rip["wall_median_s"] > limit:
                fails.append(f"wall {rip['wall_median_s']:.3f} > {limit:.3f} s")
    if target.get("cpu_ms"):
        text.append(f"CPU/file <= {target['cpu_ms']:g} ms")
        if rip_ok and rip["cpu_ms_per_file"] > target["cpu_ms"]:
            fails.append(f"CPU/file {rip['cpu_ms_per_file']:.2f} ms")
    text.append(f"RSS < {rss_limit:g} MiB")
    if rip_ok and rip["rss_mib"] >= rss_limit:
        fails.append(f"RSS {rip['rss_mib']:.1f} MiB")
    if not rip_ok:
        fails.insert(0, "ripstream not measured" if rip is None else "ripstream FAILED")
    out["target"] = "; ".join(text)
    out["met"] = not fails
    out["not_met_because"] = fails
    return out


def fmt_versus_line(v: dict) -> str:
    """One line under a scenario's table: RipStream / best peer."""
    if "best_peer" not in v:
        return "RipStream vs best peer: no peer finished"
    if "wall_ratio" not in v:
        return f"RipStream vs best peer: ripstream has no timing (best peer {v['best_peer']})"
    line = (
        f"**RipStream vs best peer**: wall {v['wall_ratio']:.2f}x"
        f" ({v['ripstream_wall_s']:.3f} s vs {v['best_peer']} {v['best_peer_wall_s']:.3f} s)"
    )
    if "cpu_ratio" in v:
        line += (
            f"; CPU/file {v['cpu_ratio']:.2f}x ({v['ripstream_cpu_ms']:.3f} ms vs"
            f" {v['best_cpu_peer']} {v['best_cpu_peer_ms']:.3f} ms)"
        )
    return line


def fmt_summary(versus: list[dict]) -> str:
    head = [
        "scenario",
        "best peer",
        "peer median s",
        "RipStream median s",
        "ratio",
        "CPU ms/file: best peer / RipStream (ratio)",
        "RipStream RSS MiB",
        "issue-10 target",
        "met",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for v in versus:
        if "target" not in v and "best_peer" not in v:
            continue  # RipStream-only scenarios (cluster)
        cpu = "-"
        if "best_cpu_peer" in v:
            cpu = f"{v['best_cpu_peer']} {v['best_cpu_peer_ms']:.3f}"
            if "ripstream_cpu_ms" in v:
                cpu += f" / {v['ripstream_cpu_ms']:.3f} ({v['cpu_ratio']:.2f}x)"
        if "target" not in v:
            met = "-"
        elif v["met"]:
            met = "**met**"
        else:
            met = "not met: " + ", ".join(v["not_met_because"])
        lines.append(
            "| "
            + " | ".join(
                [
                    v["scenario"],
                    v.get("best_peer", "-"),
                    f"{v['best_peer_wall_s']:.3f}" if "best_peer_wall_s" in v else "-",
                    f"{v['ripstream_wall_s']:.3f}" if "ripstream_wall_s" in v else "-",
                    f"{v['wall_ratio']:.2f}" if "wall_ratio" in v else "-",
                    cpu,
                    f"{v['ripstream_rss_mib']:.1f}" if "ripstream_rss_mib" in v else "-",
                    v.get("target", "-"),
                    met,
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def fmt_table(scenario: str, rows: list[dict], job: Job) -> str:
    rip = next((r for r in rows if r["tool"] == "ripstream" and r["status"] == "ok"), None)
    small = scenario in FILE_SETS
    cluster = scenario == "cluster"
    head = ["tool", "median wall s", "min-max s", "MiB/s"]
    if small:
        head += ["files/s", "CPU ms/file"]
    head += ["CPU s", "peak RSS MiB", "tree PSS MiB", "status", "ripstream ratio"]
    if cluster:
        head += ["overhead ms/task vs threads"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        if r["status"] == "ok":
            cells = [
                r["tool"],
                f"{r['wall_median_s']:.3f}",
                f"{r['wall_min_s']:.2f}-{r['wall_max_s']:.2f}",
                f"{r['mib_per_s']:.1f}",
            ]
            if small:
                cells += [f"{r['files_per_s']:.0f}", f"{r['cpu_ms_per_file']:.3f}"]
            ratio = f"{rip['wall_median_s'] / r['wall_median_s']:.2f}" if rip else "n/a"
            cells += [
                f"{r['cpu_median_s']:.2f}",
                f"{r['peak_rss_mib']:.1f}",
                f"{r['tree_rss_mib']:.1f}",
                "ok",
                ratio,
            ]
            if cluster:
                cells += cluster_cells(r, rip, len(job.expected))
        else:
            status = r["status"].replace("|", "\\|").replace("\n", " ")
            if len(status) > 160:
                status = status[:157] + "..."
            cells = (
                [r["tool"], "-", "-", "-"]
                + (["-", "-"] if small else [])
                + ["-", "-", "-", status, "n/a"]
                + (["-"] if cluster else [])
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cluster_cells(row: dict, threads: dict | None, files: int) -> list[str]:
    """The wall time each task costs more than on threads (start-up of the processes or
    the cluster included: it is what a user waits for)."""
    if threads is None:
        return ["n/a"]
    overhead = 1000 * (row["wall_median_s"] - threads["wall_median_s"]) / files
    return [f"{overhead:+.2f}"]


def scenario_title(scenario: str, job: Job, args: argparse.Namespace) -> str:
    n, j = len(job.expected), job.parallel
    size = human(job.total_bytes // max(1, n))
    if scenario == "big":
        return f"big: one {human(job.total_bytes)} file, each tool's defaults"
    if scenario == "startup":
        return f"startup: one {size} file, the whole process, each tool's defaults"
    if scenario == "cluster":
        return (
            f"cluster: {n} files of {size}, -j {j}:"
            " RipStream on threads, --processes 2, --dask local:2"
        )
    if scenario == "small":
        return f"small: {n} files of {size}, {j} at a time (wget: 1 at a time)"
    if scenario == "many":
        return f"many: {n} files of {size}, {j} at a time (wget: 1 at a time)"
    if scenario == "latency":
        return (
            f"latency: {n} files of {size}, {args.delay_ms:g} ms before every response"
            f" (delay_server.py), {j} at a time"
        )
    return (
        f"throttled: one {human(job.total_bytes)} file, nginx limit_rate {args.rate} per"
        f" connection, {j} connections (curl: 1)"
    )


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="runs per tool and scenario (default 3; startup: 10)",
    )
    parser.add_argument("--tools", default="", help=f"comma list, subset of {','.join(TOOLS)}")
    parser.add_argument(
        "--work-dir", default=os.environ.get("RIPSTREAM_BENCH_DIR", "/tmp/ripstream-bench")
    )
    parser.add_argument(
        "--base-url",
        default=os.environ.get(
            "RIPSTREAM_BENCH_URL",
            f"http://127.0.0.1:{os.environ.get('RIPSTREAM_BENCH_PORT', '18080')}",
        ),
    )
    parser.add_argument("--big-size", type=parse_size, default=parse_size("1G"))
    parser.add_argument("--small-count", type=int, default=2000)
    parser.add_argument("--small-size", type=parse_size, default=parse_size("64K"))
    parser.add_argument("--throttled-size", type=parse_size, default=parse_size("200M"))
    parser.add_argument("--latency-count", type=int, default=400)
    parser.add_argument("--latency-size", type=parse_size, default=parse_size("64K"))
    parser.add_argument("--many-count", type=int, default=20000)
    parser.add_argument("--many-size", type=parse_size, default=parse_size("4K"))
    parser.add_argument("--startup-size", type=parse_size, default=parse_size("1K"))
    parser.add_argument(
        "--delay-url",
        default=os.environ.get(
            "RIPSTREAM_BENCH_DELAY_URL",
            f"http://127.0.0.1:{os.environ.get('RIPSTREAM_BENCH_DELAY_PORT', '18081')}",
        ),
        help="delay_server.py serving WORK/www (latency scenario)",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=float(os.environ.get("RIPSTREAM_BENCH_DELAY_MS", "50")),
        help="delay of delay_server.py per request (label only; set by run.sh)",
    )
    parser.add_argument(
        "--rate",
        default=os.environ.get("RIPSTREAM_BENCH_RATE", "20m"),
        help="nginx limit_rate of /throttled/ (label only; set by run.sh)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run (600)")
    parser.add_argument(
        "--generate-only", action="store_true", help="create the test files and exit"
    )
    args = parser.parse_args()

    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be >= 1")
    for opt in ("small_count", "latency_count", "many_count"):
        if getattr(args, opt) < 1:
            parser.error(f"--{opt.replace('_', '-')} must be >= 1")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()] or list(TOOLS)
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    work = Path(args.work_dir).resolve()
    args.work_dir = str(work)
    work.mkdir(parents=True, exist_ok=True)

    manifest = prepare_files(args, scenarios)
    if args.generate_only:
        return 0
    check_server(args, manifest, scenarios)

    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        log(
            f"WARNING: 1-minute load average is {load_before:.2f} before starting; other work"
            " on this machine will make the numbers noisy"
        )
    why, versions = probe_tools(work)
    for tool in tools:
        if why.get(tool):
            log(f"{tool}: {why[tool]}")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict = {
        "started": stamp,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "loadavg_1m_at_start": load_before,
        },
        "settings": {
            "runs": args.runs,
            "default_runs": {"startup": DEFAULT_RUNS["startup"], "others": 3},
            "big_size": args.big_size,
            "small_count": args.small_count,
            "small_size": args.small_size,
            "throttled_size": args.throttled_size,
            "latency_count": args.latency_count,
            "latency_size": args.latency_size,
            "delay_ms": args.delay_ms,
            "many_count": args.many_count,
            "many_size": args.many_size,
            "startup_size": args.startup_size,
            "rate": args.rate,
            "parallelism": PARALLELISM,
            "ripstream_max_per_host": "the scenario's parallelism"
            if PASS_MAX_PER_HOST
            else "not passed (RIPSTREAM_BENCH_MAX_PER_HOST=0)",
            "ripstream_extra": RIPSTREAM_EXTRA,
            "base_url": args.base_url,
            "delay_url": args.delay_url,
            "timeout_s": args.timeout,
            "peak_rss_from": "GNU time %M (the tool's own ru_maxrss)"
            if GNU_TIME
            else "os.wait4 ru_maxrss (includes ~30 MiB inherited from bench.py)",
        },
        "versions": versions,
        "scenarios": {},
    }
    tables = []
    versus = []
    for scenario in scenarios:
        job = make_job(scenario, args, manifest)
        entrants = [t for t in tools if t in MATRIX[scenario]]
        runnable = [t for t in entrants if not why.get(t)]
        runs: dict[str, list[RunResult]] = {t: [] for t in runnable}
        n_runs = args.runs or DEFAULT_RUNS.get(scenario, 3)
        for i in range(n_runs):
            for tool in runnable:
                res = run_once(
                    tool, job, work, args.timeout, work / "logs" / scenario / f"{tool}.run{i + 1}"
                )
                runs[tool].append(res)
                log(
                    f"{scenario} run {i + 1}/{n_runs} {tool:<12} {res.wall:8.3f} s  "
                    f"cpu {res.cpu:6.2f} s  rss {res.maxrss_kib / 1024:7.1f} MiB  "
                    f"{'ok' if res.ok else 'FAILED: ' + res.reason}"
                )
        rows = []
        for tool in entrants:
            if why.get(tool):
                rows.append({"tool": tool, "status": why[tool], "runs": []})
            else:
                rows.append(summarize(scenario, tool, runs[tool], job))
        title = scenario_title(scenario, job, args)
        vs = versus_best(scenario, rows)
        versus.append(vs)
        table = f"### {title}\n\n{fmt_table(scenario, rows, job)}\n"
        if scenario != "cluster":
            table += f"\n{fmt_versus_line(vs)}\n"
        results["scenarios"][scenario] = {
            "title": title,
            "runs": n_runs,
            "bytes": job.total_bytes,
            "files": len(job.expected),
            "results": rows,
            "vs_best_peer": vs,
        }
        tables.append(table)
        print(table, flush=True)
        # Keep what we have even if a later scenario is interrupted.
        (work / "results.json").write_text(json.dumps(results, indent=1))

    results["machine"]["loadavg_1m_at_end"] = os.getloadavg()[0]
    summary = "### RipStream vs best peer\n\n" + fmt_summary(versus) + "\n"
    print(summary, flush=True)
    tables.append(summary)
    results["summary"] = versus
    runs_text = (
        f"{args.runs} run(s)" if args.runs else f"3 runs (startup: {DEFAULT_RUNS['startup']})"
    )
    footer = (
        f"_{runs_text} per tool, round robin; median wall and CPU (user+sys of the"
        " process tree, os.wait4); peak RSS = largest ru_maxrss of the tool over the runs"
        f" ({'GNU time %M' if GNU_TIME else 'os.wait4, includes ~30 MiB inherited from bench.py'}),"
        " one process: the largest of the tree; tree PSS = largest sum of PSS over all the"
        " tool's processes (worker processes included), sampled every 50 ms; the"
        " RSS targets use the larger of the two;"
        " ripstream ratio = ripstream median wall / tool median wall"
        " (< 1: ripstream faster); best peer = the other tool with the lowest median"
        " (wall, or CPU per file); RSS limits in MiB. MiB = 2^20 bytes. Every file"
        " checked by sha256._"
    )
    print(footer)
    out = work / f"results-{stamp}.json"
    text = json.dumps(results, indent=1)
    out.write_text(text)
    (work / "results.json").write_text(text)
    (work / "results.md").write_text("\n".join(tables) + "\n" + footer + "\n")
    log(f"results: {work / 'results.json'} (copy {out.name}), tables: {work / 'results.md'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(
            "\n[bench] interrupted; partial results (finished scenarios) are in results.json",
            file=sys.stderr,
        )
        sys.exit(130)
