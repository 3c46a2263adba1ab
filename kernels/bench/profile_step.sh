#!/bin/bash
# kernels/bench/profile_step.sh — where a training step's GPU time goes: every
# kernel of a window of launches timed by Nsight Compute (one metric,
# gpu__time_duration), summed by kernel name and scaled to one step (the
# window's count of a once-a-step kernel). Run on the GPU machine:
#
#   bash kernels/bench/profile_step.sh [SKIP] [COUNT] [-- COMMAND...]
#
# Default command: build/spec-gpu bench_llama_1b (the 1B shape, B=1, T=4096);
# SKIP launches are passed over first (warm-up), COUNT timed. STEP_KERNEL names
# the once-a-step kernel (default embedding_fwd). Prints the top kernels, ms
# a step, and their share of the summed kernel time.
set -u
SKIP=${1:-3000}
COUNT=${2:-2500}
shift 2 2>/dev/null
[ "${1:-}" = "--" ] && shift
[ $# -eq 0 ] && set -- build/spec-gpu bench_llama_1b
STEP_KERNEL=${STEP_KERNEL:-embedding_fwd}
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
csv=$(mktemp)
timeout 500 "$NCU" --csv --metrics gpu__time_duration.sum --launch-skip "$SKIP" --launch-count "$COUNT" "$@" \
  >"$csv" 2>/dev/null
awk -F'","' -v step="$STEP_KERNEL" '
  /^"ID"/ { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); col[h] = i }; next }  # the header names the columns
  col["Metric Name"] && $col["Metric Name"] == "gpu__time_duration.sum" {
    name = $col["Kernel Name"]; sub(/\(.*/, "", name); sub(/<.*/, "", name); sub(/^void /, "", name); sub(/^.*::/, "", name)
    v = $col["Metric Value"]; gsub(/[",]/, "", v); u = $col["Metric Unit"]
    ns = v * (u == "usecond" ? 1e3 : u == "msecond" ? 1e6 : u == "second" ? 1e9 : 1)
    t[name] += ns; n[name]++; total += ns; launches++
    if (index(name, step)) steps++
  }
  END {
    if (!steps) { print "no " step " launch in the window: widen it"; exit 1 }
    printf "%d launches, %d steps in the window; kernels sum to %.2f ms a step\n", launches, steps, total / steps / 1e6
    for (k in t) printf "%9.3f ms %5.1f%% %6d  %s\n", t[k] / steps / 1e6, 100 * t[k] / total, n[k] / steps, k | "sort -rn | head -25"
  }' "$csv"
rm -f "$csv"
