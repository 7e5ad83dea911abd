#!/usr/bin/env bash
# RipStream benchmark harness: one command, everything side by side.
#
#   bash benchmarks/run.sh [bench.py options]
#
# e.g.  bash benchmarks/run.sh                                 # full run (1 GiB, 2000 files, 3 runs)
#       bash benchmarks/run.sh --big-size 64M --small-count 200 --runs 1   # quick check
#       bash benchmarks/run.sh --scenario throttled --tools curl,aria2c,ripstream
#       bash benchmarks/run.sh --scenario latency --runs 1
#       bash benchmarks/run.sh --scenario many --many-count 500 --runs 1
#       bash benchmarks/run.sh --scenario startup --runs 3
#
# What it does:
#   1. installs what is missing (unless RIPSTREAM_BENCH_NO_INSTALL=1):
#        apt-get install -y nginx-light aria2 curl wget time   (time: GNU time, for peak RSS)
#        pip install parfive pypdl           (and requests, if missing)
#        pip install -e .                    (so `python -m ripstream` runs this repo)
#   2. generates the test files in $RIPSTREAM_BENCH_DIR (default /tmp/ripstream-bench);
#      they are reused by later runs with the same sizes
#   3. starts nginx on 127.0.0.1:$RIPSTREAM_BENCH_PORT (default 18080) from the
#      template benchmarks/nginx.conf, in the foreground as a background job, and
#      benchmarks/delay_server.py (the latency scenario: every answer after
#      $RIPSTREAM_BENCH_DELAY_MS, default 50 ms) on 127.0.0.1:$RIPSTREAM_BENCH_DELAY_PORT
#      (default 18081); an EXIT trap stops both whatever happens
#   4. runs `python benchmarks/bench.py "$@"`, which prints one Markdown table per
#      scenario and writes $RIPSTREAM_BENCH_DIR/results.json and results.md
#
# Environment: RIPSTREAM_BENCH_DIR, RIPSTREAM_BENCH_PORT, RIPSTREAM_BENCH_RATE
# (nginx limit_rate of the throttled scenario, default 20m), RIPSTREAM_BENCH_DELAY_PORT,
# RIPSTREAM_BENCH_DELAY_MS, PYTHON (default python3, resolved to the real interpreter),
# RIPSTREAM_BENCH_NO_INSTALL=1 (install nothing). Only 127.0.0.1 is ever contacted
# (apart from the package registries during step 1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# The real interpreter, not a pyenv/asdf shim: bench.py starts every Python tool with
# sys.executable, and the shim would cost each run ~50 ms of shell start-up.
PYTHON="$("$PYTHON" -c 'import sys; print(sys.executable)')"
export RIPSTREAM_BENCH_DIR="${RIPSTREAM_BENCH_DIR:-/tmp/ripstream-bench}"
export RIPSTREAM_BENCH_PORT="${RIPSTREAM_BENCH_PORT:-18080}"
export RIPSTREAM_BENCH_RATE="${RIPSTREAM_BENCH_RATE:-20m}"
export RIPSTREAM_BENCH_DELAY_PORT="${RIPSTREAM_BENCH_DELAY_PORT:-18081}"
export RIPSTREAM_BENCH_DELAY_MS="${RIPSTREAM_BENCH_DELAY_MS:-50}"
WORK="$RIPSTREAM_BENCH_DIR"
RUN_DIR="$WORK/nginx"

say() { printf '[run.sh] %s\n' "$*" >&2; }

for arg in "$@"; do
    case "$arg" in
        -h|--help) exec "$PYTHON" "$HERE/bench.py" --help ;;
        --work-dir*|--base-url*|--rate*|--delay-url*|--delay-ms*)
            say "set RIPSTREAM_BENCH_DIR / _PORT / _RATE / _DELAY_PORT / _DELAY_MS instead of $arg"
            exit 2 ;;
    esac
done

# ---------------------------------------------------------------- 1. install
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else say "not root and no sudo: cannot run $*"; return 1
    fi
}

if [ "${RIPSTREAM_BENCH_NO_INSTALL:-0}" != 1 ]; then
    missing=()
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    command -v aria2c >/dev/null 2>&1 || missing+=(aria2)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v wget >/dev/null 2>&1 || missing+=(wget)
    [ -x /usr/bin/time ] || missing+=(time)  # GNU time: the tools' own peak RSS
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]} with apt-get"
        if ! { as_root apt-get update -qq &&
               as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2; then
            say "WARNING: apt-get install ${missing[*]} failed; missing tools will be skipped"
        fi
    fi

    if ! "$PYTHON" -c 'import parfive, pypdl, requests' 2>/dev/null; then
        say "installing parfive pypdl requests with pip"
        "$PYTHON" -m pip install -q parfive pypdl requests >&2 ||
            say "WARNING: pip install parfive pypdl failed; they will be skipped"
    fi

    # Editable install of this repo, unless `import ripstream` already resolves here.
    rip_file="$(cd / && "$PYTHON" -c 'import ripstream; print(ripstream.__file__)' 2>/dev/null || true)"
    case "$rip_file" in
        "$REPO"/*) ;;
        *)  say "pip install -e $REPO"
            "$PYTHON" -m pip install -q -e "$REPO" >&2 ||
                say "WARNING: pip install -e . failed; bench.py still tries the repo's code via PYTHONPATH" ;;
    esac
fi

NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"
if [ ! -x "$NGINX" ]; then
    say "nginx is required (apt-get install nginx-light) and was not found"
    exit 1
fi

# ---------------------------------------------------------------- 2. test files
mkdir -p "$WORK"
"$PYTHON" "$HERE/bench.py" --generate-only "$@"

# ---------------------------------------------------------------- 3. nginx + delay server
for port in "$RIPSTREAM_BENCH_PORT" "$RIPSTREAM_BENCH_DELAY_PORT"; do
    if "$PYTHON" - "$port" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)  # nothing listening: good
EOF
    then
        say "something already listens on 127.0.0.1:$port; set RIPSTREAM_BENCH_PORT /" \
            "RIPSTREAM_BENCH_DELAY_PORT to free ports"
        exit 1
    fi
done

mkdir -p "$RUN_DIR/tmp"
sed -e "s#@PORT@#$RIPSTREAM_BENCH_PORT#g" \
    -e "s#@WWW@#$WORK/www#g" \
    -e "s#@RUN@#$RUN_DIR#g" \
    -e "s#@RATE@#$RIPSTREAM_BENCH_RATE#g" \
    "$HERE/nginx.conf" > "$RUN_DIR/nginx.conf"
"$NGINX" -q -t -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log"

NGINX_PID=""
DELAY_PID=""
stop_job() {  # stop_job NAME PID
    if [ -n "$2" ] && kill -0 "$2" 2>/dev/null; then
        say "stopping $1 (pid $2)"
        kill -TERM "$2" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$2" 2>/dev/null || true
        wait "$2" 2>/dev/null || true
    fi
}
cleanup() {
    local rc=$?
    stop_job delay_server "$DELAY_PID"
    stop_job nginx "$NGINX_PID"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$NGINX" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -e "$RUN_DIR/error.log" &
NGINX_PID=$!
say "nginx pid $NGINX_PID on http://127.0.0.1:$RIPSTREAM_BENCH_PORT/ serving $WORK/www"

"$PYTHON" "$HERE/delay_server.py" --root "$WORK/www" --port "$RIPSTREAM_BENCH_DELAY_PORT" \
    --delay-ms "$RIPSTREAM_BENCH_DELAY_MS" 2>"$WORK/delay_server.log" &
DELAY_PID=$!
say "delay_server pid $DELAY_PID on http://127.0.0.1:$RIPSTREAM_BENCH_DELAY_PORT/" \
    "($RIPSTREAM_BENCH_DELAY_MS ms per request)"

"$PYTHON" - "$RIPSTREAM_BENCH_PORT" "$RIPSTREAM_BENCH_DELAY_PORT" <<'EOF'
import sys, time, urllib.request
for port in sys.argv[1:]:
    url = f"http://127.0.0.1:{port}/healthz"
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(f"server did not come up at {url}")
EOF

# ---------------------------------------------------------------- 4. benchmark
"$PYTHON" "$HERE/bench.py" "$@"
