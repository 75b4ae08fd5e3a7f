#!/usr/bin/env bash
# The fuzz targets, each for a fixed number of executions (`./dev fuzz`):
#   fuzz/run.sh [--runs N] [--seconds S] [--ci] [target…]
# --runs N     executions per target (default 10,000,000)
# --seconds S  and at most this long per target (default 3,600)
# --ci         the short run CI makes: 200,000 executions, at most 20 s each,
#              from a fixed random seed (the same run each time)
# Each target starts from fuzz/corpus/<target>, seeded from RFC 4475's
# messages and sip-fixtures/ (fuzz/src/seed.rs) and grown by earlier runs.
# A target that fails leaves its input in fuzz/artifacts/<target>/; the
# run goes on with the others, prints a table, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=10000000
seconds=3600
ci=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --ci) runs=200000; seconds=20; ci=1; shift ;;
    -*) echo "fuzz/run.sh: unknown flag $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^dialgate-fuzz$' || true)
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz/run.sh: no fuzz target found in fuzz/Cargo.toml" >&2
  exit 1
fi
seed=()
[ "$ci" -eq 1 ] && seed=(-seed=1)

cargo run -q --example fuzz_seed_corpus -- fuzz/corpus
# libFuzzer's instrumentation flags are unstable rustc flags; the machine
# has one (stable) toolchain, which takes them when told it may. Only for
# the fuzz build (its own target directory): set for the gateway's own
# build, it would make crates that probe for nightly build again.
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none

logs=target/fuzz-logs
mkdir -p "$logs"
failed=0
rows=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t"
  log="$logs/$t.log"
  start=$SECONDS
  rc=0
  cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- \
    -runs="$runs" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 ${seed[@]+"${seed[@]}"} >"$log" 2>&1 || rc=$?
  # A target that fails while loading its corpus prints no stats: the
  # table shows "?" rather than the script stopping here.
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
  cov=$({ grep -o 'cov: [0-9]*' "$log" || true; } | tail -1 | cut -d' ' -f2)
  corpus=$(find "fuzz/corpus/$t" -type f 2>/dev/null | wc -l)
  found=$(find "fuzz/artifacts/$t" -type f | wc -l)
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "fuzz: $t failed (exit $rc); its log: $log" >&2
    grep -m5 -E 'panicked|SUMMARY|ERROR' "$log" >&2 || true
  fi
  rows+=("$(printf '| %s | %s | %s | %s | %s | %s | %s |' "$t" "${execs:-?}" \
    "$((SECONDS - start))" "${rate:-?}" "${cov:-?}" "$corpus" "$found")")
done

echo
echo "| target | executions | seconds | executions/s | coverage (edges) | corpus | findings kept in fuzz/artifacts |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit "$failed"
