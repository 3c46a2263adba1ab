#!/bin/bash
# spec/gpu/run_tracks_cpu.sh — the engine drives the GPU end to end: `moonspeed
# run` of the default recipe with device=cuda tracks the CPU run of the same
# recipe, fp32 and bf16 (the loss within 1% at every one of 100 steps).
# Both runs also evaluate, save weights and sample, so every host<->device
# crossing (batches, init values, logits, weights) is exercised.
# Usage: spec/gpu/run_tracks_cpu.sh [moonspeed executable]; exit status 0 = pass.
set -u
exe=${1:-build/moonspeed}
steps=${STEPS:-100}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
loss_of() { grep -o '"loss":[-0-9.e+]*' "$1/metrics.jsonl" | cut -d: -f2; }
for prec in fp32 bf16; do
  for dev in cpu cuda; do
    if ! "$exe" run recipes/default.lua device=$dev precision=$prec train.steps=$steps train.eval_every=50 \
        log.every=50 log.sample_tokens=64 --run-dir "$tmp/$prec-$dev" >"$tmp/$prec-$dev.log" 2>&1; then
      echo "run_tracks_cpu: $prec on $dev failed:"; tail -5 "$tmp/$prec-$dev.log"; fail=1; continue
    fi
    grep -E "^done:" "$tmp/$prec-$dev.log" | sed "s/^/$prec $dev: /"
  done
  [ -f "$tmp/$prec-cpu/metrics.jsonl" ] && [ -f "$tmp/$prec-cuda/metrics.jsonl" ] || continue
  # worst relative difference of the per-step loss, and the first and last losses of both runs
  if ! paste <(loss_of "$tmp/$prec-cpu") <(loss_of "$tmp/$prec-cuda") | awk -v prec=$prec -v steps=$steps '
      { n++; d = $2 - $1; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1); if (r > worst) { worst = r; at = n }
        if (n == 1) { c0 = $1; g0 = $2 } c1 = $1; g1 = $2 }
      END { printf "%s: %d steps, loss cpu %.4f -> %.4f, cuda %.4f -> %.4f, worst relative difference %.2e at step %d\n",
                   prec, n, c0, c1, g0, g1, worst, at
            exit !(n == steps && worst <= 0.01 && g1 < g0) }'; then
    echo "run_tracks_cpu: $prec: the GPU run does not track the CPU run within 1% (or fell short of $steps steps)"
    fail=1
  fi
  cmp -s "$tmp/$prec-cpu/model.bin" "$tmp/$prec-cuda/model.bin" && echo "$prec: weights identical" ||
    echo "$prec: weights files differ bitwise (expected: the backends round differently)"
done
exit $fail
