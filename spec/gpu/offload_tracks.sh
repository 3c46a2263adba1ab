#!/bin/bash
# spec/gpu/offload_tracks.sh — optimizer offload on the GPU (zero/offload.h):
# `moonspeed run` of the default recipe on the GPU with half and then all of
# the optimizer state offloaded tracks the run that keeps it on the GPU, fp32
# (the host's AdamW against the device's: within 1e-4 at every step) and bf16
# (the gradients travel as bf16: within 1%), with and without the host's
# speculative update during the backward (offload.overlap); ZeRO stage 3 on
# one GPU, plain and with the parameter shards offloaded too; and an
# offloaded run stopped and resumed from its checkpoint ends with the losses
# of the run never stopped.
# Usage: spec/gpu/offload_tracks.sh [moonspeed executable]; exit status 0 = pass.
set -u
exe=${1:-build/moonspeed}
steps=${STEPS:-60}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
spec=offload_tracks
. "$(dirname "$0")/tracks.sh"
run() { # NAME ARGS...
  local name=$1; shift
  ran "$name" "$exe" run recipes/default.lua device=cuda train.steps=$steps train.eval_every=0 log.every=20 \
    log.sample_tokens=16 "$@"
}
for prec in fp32 bf16; do
  lim=$([ $prec = fp32 ] && echo 1e-4 || echo 1e-2)
  run $prec-none precision=$prec || continue
  for ratio in 0.5 1; do
    run $prec-offload-$ratio precision=$prec offload.optimizer=cpu offload.ratio=$ratio && compare $prec-none $prec-offload-$ratio $lim
  done
  run $prec-overlap precision=$prec offload.optimizer=cpu offload.overlap=true && compare $prec-none $prec-overlap $lim
  run $prec-stage3 precision=$prec zero.stage=3 && compare $prec-none $prec-stage3 $lim
  run $prec-stage3-params precision=$prec zero.stage=3 offload.optimizer=cpu offload.params=cpu &&
    compare $prec-none $prec-stage3-params $lim
done
# stop at half way and resume: the same losses as the straight offloaded run
run fp32-split precision=fp32 offload.optimizer=cpu offload.ratio=0.5 --stop-at $((steps / 2)) &&
  run fp32-split precision=fp32 offload.optimizer=cpu offload.ratio=0.5 && compare fp32-offload-0.5 fp32-split 1e-6
exit $fail
