#!/usr/bin/env bash
# spec/fuzz/run.sh BUILD TARGET SECONDS — seed and run one fuzz target (make fuzz).
#
# The corpus lives in BUILD/corpus/TARGET (seeded by the target itself, then
# grown by each run), crashes in BUILD/crashes/TARGET, the log in
# BUILD/logs/TARGET.log. Prints one line of figures; exits 1 on a finding.
# FUZZ_FLAGS adds libFuzzer options.
set -uo pipefail
build=$1 target=$2 seconds=$3
exe=$build/fuzz-$target corpus=$build/corpus/$target crashes=$build/crashes/$target log=$build/logs/$target.log
mkdir -p "$corpus" "$crashes" "$build/logs"
SECONDS=0
MS_FUZZ_SEEDS=$corpus "$exe" || { echo "fuzz $target: writing the seed corpus failed" >&2; exit 1; }
# -timeout: an input that runs 10 s is a hang; -max_len: patch inputs keep the big bases small.
"$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$crashes/" ${FUZZ_FLAGS:-} "$corpus" >"$log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
found=$(find "$crashes" -type f | wc -l)
line="fuzz $target: ${runs:-0} runs in $SECONDS s, coverage ${cov:-0} edges / ${ft:-0} features, corpus $(find "$corpus" -type f | wc -l) inputs, $found findings in $crashes"
echo "$line"
echo "$(date -u +%FT%TZ) $line" >>"$build/logs/summary.txt"
if [ "$rc" != 0 ] || [ "$found" != 0 ]; then
  grep -m1 -A12 'ERROR: \|fuzz [a-z_]*: \|SUMMARY' "$log" >&2
  exit 1
fi
