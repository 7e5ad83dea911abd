#!/usr/bin/env bash
# Mutation testing of the safety code with mutmut 3 (pip install '.[mutation]').
#
#   bash tools/mutation.sh [NAME...]     NAME from the table below; none: all of them
#
# Each NAME runs in its own copy of this checkout (tracked and new, not ignored files) under
# $MUTATION_DIR (default /tmp/ripstream-mutation)/NAME, so the checkout is never written to,
# with its own narrow test selection. Per NAME that folder gets summary.txt (counts and score)
# and survivors.txt (the diff of every mutant no test killed). It takes long: minutes to an
# hour per module on two cores; it is not part of .ci/run. MUTATION_JOBS sets the number of
# parallel mutants (default 1), and everything runs under nice.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=${MUTATION_DIR:-/tmp/ripstream-mutation}
jobs=${MUTATION_JOBS:-1}
d=tests/downloader

# NAME: the source files it mutates | the tests that must kill the mutants
declare -A table=(
  [files]="ripstream/downloader/files.py|$d/test_files.py $d/test_storage.py $d/test_final_name.py $d/test_no_clobber.py $d/test_hostile.py"
  [safefs]="ripstream/downloader/safefs.py|$d/test_storage.py $d/test_files.py $d/test_crash.py $d/test_hostile.py $d/test_no_clobber.py $d/fetch/test_stream.py"
  [placement]="ripstream/downloader/placement.py|$d/test_placement.py $d/test_no_clobber.py $d/test_final_name.py $d/test_engine.py $d/test_storage.py"
  [outcome]="ripstream/downloader/outcome.py|$d/test_outcome.py $d/test_engine.py $d/test_resume_integrity.py $d/test_no_clobber.py $d/test_base.py"
  [engine]="ripstream/downloader/engine.py|$d/test_final_name.py $d/test_outcome.py $d/test_engine.py $d/test_no_clobber.py $d/test_resume_integrity.py $d/test_base.py $d/test_state.py"
  [partfile]="ripstream/downloader/fetch/partfile.py|$d/fetch $d/test_resume_integrity.py $d/test_crash.py $d/test_hostile.py"
  [stream]="ripstream/downloader/fetch/stream.py|$d/fetch $d/test_resume_integrity.py $d/test_crash.py $d/test_hostile.py"
  [segmented]="ripstream/downloader/fetch/segmented.py|$d/fetch $d/test_resume_integrity.py $d/test_hostile.py $d/test_scheduled_runs.py::test_max_per_host_caps_downloads_and_segments_at_the_server"
  [pump]="ripstream/downloader/fetch/pump.py|$d/fetch $d/test_resume_integrity.py $d/test_hostile.py $d/test_throttle.py"
  [wire]="ripstream/downloader/wire.py|$d/test_wire.py $d/test_resume_integrity.py $d/test_hostile.py $d/fetch"
  [urls]="ripstream/downloader/urls.py|$d/test_urls.py $d/test_redaction.py tests/test_no_secret_leaks.py"
  [session]="ripstream/downloader/session.py|$d/test_session_environment.py $d/test_api_bounds.py $d/test_redirect_credentials.py $d/test_session.py $d/test_lean_get.py $d/test_redaction.py"
  [retry]="ripstream/downloader/retry.py|$d/test_retry.py $d/test_httperrors.py"
  [httperrors]="ripstream/downloader/httperrors.py|$d/test_httperrors.py $d/test_retry.py"
  [journal]="ripstream/app/journal.py|tests/app/test_journal.py tests/app/test_batch.py"
  [archive]="ripstream/library/archive.py|tests/library/test_archive.py"
)
order=(outcome urls retry httperrors journal archive session files safefs placement wire partfile stream pump segmented engine)

toml_list() { printf '['; local sep=''; for x in "$@"; do printf '%s"%s"' "$sep" "$x"; sep=', '; done; printf ']'; }

run_one() {
  local name=$1 entry=${table[$1]:?unknown module $1 (see tools/mutation.sh)}
  local source=${entry%%|*} tests=${entry#*|} work="$out/$1"
  rm -rf "$work" && mkdir -p "$work"
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work" 2>/dev/null || true)
  # shellcheck disable=SC2086
  {
    printf '\n[tool.mutmut]\nsource_paths = ["ripstream"]\nonly_mutate = %s\n' "$(toml_list $source)"
    printf 'pytest_add_cli_args_test_selection = %s\n' "$(toml_list $tests)"
    printf 'pytest_add_cli_args = ["-q", "-x", "-p", "no:randomly"]\n'
  } >>"$work/pyproject.toml"
  echo "== $name: $source against $tests"
  (cd "$work" && PYTHONPATH= nice -n 19 mutmut run --max-children "$jobs" >run.log 2>&1 || true)
  (cd "$work" && mutmut results --all true >results.txt 2>&1 || true)
  python - "$work" "$name" "$source" <<'PY'
import collections, pathlib, subprocess, sys
work, name, source = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
status = {}
for line in (work / "results.txt").read_text().splitlines():
    key, sep, value = line.strip().rpartition(": ")
    if sep and "__mutmut_" in key:
        status[key] = value
counts = collections.Counter(status.values())
# a mutant that makes the tests hang (timeout) is caught as much as one that fails them
total, killed = len(status), counts["killed"] + counts["timeout"]
score = 100 * killed / total if total else 0.0
summary = f"{name} ({source}): {total} mutants, {killed} killed, {dict(counts)}, score {score:.1f}%"
(work / "summary.txt").write_text(summary + "\n")
print(summary)
with open(work / "survivors.txt", "w") as survivors:
    for key, value in sorted(status.items()):
        if value not in ("killed", "timeout"):
            shown = subprocess.run(["mutmut", "show", key], cwd=work, capture_output=True, text=True)
            survivors.write(f"### {key}: {value}\n{shown.stdout}\n")
PY
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${order[@]}")
for name in "${names[@]}"; do run_one "$name"; done
