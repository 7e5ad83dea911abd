#!/usr/bin/env bash
# RipStream against an earlier revision of itself, side by side on one machine.
#
#   bash benchmarks/revisions.sh OLD_REV [ROUNDS] [bench.py options]
#
# e.g.  bash benchmarks/revisions.sh 282fee0 3
#
# OLD_DIR_FLAG: the old revision's output-folder flag (default -o, as before -d existed).
# OLD_EXTRA / NEW_EXTRA: extra ripstream options for one side.
# bench.py passes ripstream --max-per-host N (N = the scenario's parallelism); OLD_MAX_PER_HOST=0
# leaves it out for an old revision that does not know the flag.
#
# Checks OLD_REV out into a temporary worktree, then runs benchmarks/run.sh with only the
# ripstream tool, once per round for each revision, alternating (old, new, old, new...) so
# that drifting machine load hits both alike. Prints the median wall time, CPU time and peak
# RSS per scenario for each revision and the ratio new/old (below 1: this checkout is faster).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
OLD="${1:?usage: revisions.sh OLD_REV [ROUNDS] [bench.py options]}"
ROUNDS="${2:-3}"
shift $(( $# >= 2 ? 2 : 1 ))
PYTHON="${PYTHON:-python3}"
OUT="$(mktemp -d)"
TREE="$OUT/old"
git -C "$REPO" worktree add -q --detach "$TREE" "$OLD"
trap 'git -C "$REPO" worktree remove --force "$TREE"' EXIT
export RIPSTREAM_BENCH_DIR="${RIPSTREAM_BENCH_DIR:-/tmp/ripstream-bench}"
for round in $(seq 1 "$ROUNDS"); do
    for rev in old new; do
        if [ "$rev" = old ]; then
            code="$TREE" flag="${OLD_DIR_FLAG:--o}" extra="${OLD_EXTRA:-}" mph="${OLD_MAX_PER_HOST:-1}"
        else
            code="$REPO" flag=-d extra="${NEW_EXTRA:-}" mph=1
        fi
        RIPSTREAM_BENCH_NO_INSTALL=1 RIPSTREAM_BENCH_DIR_FLAG="$flag" RIPSTREAM_BENCH_EXTRA="$extra" \
        RIPSTREAM_BENCH_MAX_PER_HOST="$mph" \
        RIPSTREAM_BENCH_CMD="env PYTHONPATH=$code $PYTHON -m ripstream" \
            bash "$HERE/run.sh" --tools ripstream --runs 1 "$@" >&2
        cp "$RIPSTREAM_BENCH_DIR/results.json" "$OUT/$rev-$round.json"
    done
done
"$PYTHON" - "$OUT" "$OLD" <<'PY'
import json, statistics, sys
from pathlib import Path
out, old = Path(sys.argv[1]), sys.argv[2]
rows = {}
for path in sorted(out.glob("*.json")):
    rev = path.stem.split("-")[0]
    for scenario, result in json.loads(path.read_text())["scenarios"].items():
        row = next(r for r in result["results"] if r["tool"] == "ripstream")
        for run in row["runs"]:
            if not run["ok"]:
                sys.exit(f"{rev} failed in {scenario}: {run['reason']}")
            for key, value in (("wall s", run["wall"]), ("CPU s", run["cpu"]),
                               ("peak RSS MiB", run["maxrss_kib"] / 1024)):
                rows.setdefault((scenario, key), {}).setdefault(rev, []).append(value)
print(f"| scenario | measure | {old} (median) | this checkout (median) | ratio new/old |")
print("|---|---|---|---|---|")
for (scenario, key), revs in sorted(rows.items()):
    a, b = statistics.median(revs["old"]), statistics.median(revs["new"])
    print(f"| {scenario} | {key} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
PY
