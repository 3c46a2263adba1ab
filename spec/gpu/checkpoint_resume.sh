#!/bin/bash
# spec/gpu/checkpoint_resume.sh — checkpoints on the GPU: 40 steps of the default
# recipe with device=cuda straight, and 20 + stop + resume + 20. The CUDA
# embedding and RMSNorm backward sum with atomics, so two GPU runs are not
# bitwise equal; the resumed run must stay as close to the straight one as a
# second straight run does (every loss within 1e-3 relative). A GPU checkpoint
# also resumes on the CPU.
# Usage: spec/gpu/checkpoint_resume.sh [moonspeed executable]; exit status 0 = pass.
set -u
exe=${1:-build/moonspeed}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
common="recipes/default.lua device=cuda train.steps=40 train.eval_every=0 log.sample_tokens=0"
loss_of() { grep -o '"loss":[-0-9.e+]*' "$1/metrics.jsonl" | cut -d: -f2; }
worst() { paste <(loss_of "$1") <(loss_of "$2") | awk '{ d = $2 - $1; if (d < 0) d = -d; r = d / $1; if (r > w) w = r; n++ }
  END { printf "%.2e %d\n", w, n }'; }
for prec in fp32 bf16; do
  for run in straight again; do
    "$exe" run $common precision=$prec --run-dir "$tmp/$prec-$run" >"$tmp/log" 2>&1 ||
      { echo "checkpoint_resume: $prec $run run failed:"; tail -5 "$tmp/log"; fail=1; continue 2; }
  done
  "$exe" run $common precision=$prec --run-dir "$tmp/$prec-split" --stop-at 20 >"$tmp/log" 2>&1 &&
    "$exe" run $common precision=$prec --run-dir "$tmp/$prec-split" >"$tmp/log" 2>&1 ||
    { echo "checkpoint_resume: $prec stop and resume failed:"; tail -5 "$tmp/log"; fail=1; continue; }
  grep -q "resumed from .*step-00000020 at step 20" "$tmp/log" || { echo "checkpoint_resume: $prec did not resume"; fail=1; }
  read -r again n1 <<<"$(worst "$tmp/$prec-straight" "$tmp/$prec-again")"
  read -r resumed n2 <<<"$(worst "$tmp/$prec-straight" "$tmp/$prec-split")"
  echo "$prec: worst relative loss difference over 40 steps: straight vs straight $again, straight vs resumed $resumed"
  awk -v r="$resumed" -v n="$n2" 'BEGIN { exit !(n == 40 && r <= 1e-3) }' ||
    { echo "checkpoint_resume: $prec: the resumed run strays from the straight run"; fail=1; }
done
if "$exe" run recipes/default.lua device=cpu train.steps=40 train.eval_every=0 log.sample_tokens=0 \
     checkpoint.resume="$tmp/fp32-split/checkpoints/step-00000020" --stop-at 21 --run-dir "$tmp/on-cpu" >"$tmp/log" 2>&1; then
  echo "fp32: the GPU checkpoint resumed on the CPU"
else
  echo "checkpoint_resume: the GPU checkpoint did not resume on the CPU:"; tail -5 "$tmp/log"; fail=1
fi
exit $fail
