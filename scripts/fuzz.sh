#!/usr/bin/env bash
# Fuzzing: builds every cargo-fuzz target under fuzz/ once (libFuzzer + AddressSanitizer) and
# runs each for N seconds (default 20) from its seed corpus, then prints per target the run
# time, execs/s and libFuzzer's final coverage (cov: edges, ft: features). Fails if any target
# crashes, leaks, times out or runs out of memory; the input that did it is left under
# $CULLIS_FUZZ_WORK/artifacts/<target>/.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Works with the stable toolchain: cargo-fuzz needs nightly-only flags, so this sets
# RUSTC_BOOTSTRAP=1 for its own cargo commands only. Builds go to CULLIS_FUZZ_TARGET_DIR
# (default /var/tmp/cullis-fuzz-target; an inherited CARGO_TARGET_DIR is deliberately not used,
# so sanitizer builds never mix with the workspace's). What the fuzzer learns goes to
# CULLIS_FUZZ_WORK/corpus/<target> (default /var/tmp/cullis-fuzz-work), never into the repo;
# the committed seeds in fuzz/corpus/<target> are only read.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
shift || true
export CARGO_TARGET_DIR="${CULLIS_FUZZ_TARGET_DIR:-/var/tmp/cullis-fuzz-target}"
work="${CULLIS_FUZZ_WORK:-/var/tmp/cullis-fuzz-work}"
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install --locked cargo-fuzz --version 0.13.2
fi

cd fuzz
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
build_start=$(date +%s)
# The default profile: optimised, with debug assertions and overflow checks (not `-O`, which
# turns them off).
RUSTC_BOOTSTRAP=1 cargo fuzz build
echo "built ${#targets[@]} targets in $(( $(date +%s) - build_start )) s"

triple=$(rustc -vV | sed -n 's/^host: //p')
bin="$CARGO_TARGET_DIR/$triple/release"
failed=()
rows=()
for target in "${targets[@]}"; do
  mkdir -p "$work/corpus/$target" "$work/artifacts/$target" "$work/logs"
  log="$work/logs/$target.log"
  status=0
  "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/$target/" \
    "$work/corpus/$target" "corpus/$target" >"$log" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  last_line=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1 || true)
  line=${done_line:-$last_line}
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  verdict=ok
  if [ "$status" -ne 0 ]; then
    verdict="FAILED (exit $status)"
    failed+=("$target")
  fi
  rows+=("$(printf '%-18s %6ss %10s %10s %7s %7s  %s' "$target" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$verdict")")
  echo "${rows[-1]}"
done

echo
printf '%-18s %7s %10s %10s %7s %7s  %s\n' target time execs execs/s cov ft result
printf '%s\n' "${rows[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  for target in "${failed[@]}"; do
    echo
    echo "==> $target (log: $work/logs/$target.log)"
    grep -E 'ERROR: |panicked at|SUMMARY: |Test unit written to' "$work/logs/$target.log" | head -20 || true
  done
  echo
  echo "fuzzing failed: ${failed[*]}"
  exit 1
fi
