#!/bin/bash
# kernels/bench/adamw_run.sh — the host AdamW next to PyTorch's, same host, same
# N and threads, one call: build/bench-adamw (checks every ISA path against the
# scalar reference, then times), spec/peers/torch_adamw.py (torch.optim.AdamW,
# fused=True), and a table last: moonspeed params/s, torch fused params/s, ratio.
#
#   kernels/bench/adamw_run.sh [N] [THREADS] [ITERS]
#       N        default 218112000 (one Llama-3-8B block)
#       THREADS  default: every core (nproc)
#       ITERS    timed steps after 2 warm-ups, median (default 7)
#
# Build first (make build/bench-adamw); on a machine without the build tools
# carry that binary. Logs go to $OUT (default /tmp). Without torch the
# moonspeed side still runs and the table says the peer is missing.
set -u
cd "$(dirname "$0")/../.."
N=${1:-218112000}
T=${2:-$(nproc)}
ITERS=${3:-7}
OUT=${OUT:-/tmp}
BENCH=${BENCH:-build/bench-adamw}
log=$OUT/adamw.log
: >"$log"

echo "==== host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores," \
     "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); N=$N threads=$T" | tee -a "$log"
if [ ! -x "$BENCH" ]; then
  echo "adamw_run: $BENCH is missing; build it with: make build/bench-adamw" | tee -a "$log"; exit 1
fi
echo "==== moonspeed ($BENCH -n $N -t $T -i $ITERS)"
OMP_PROC_BIND=${OMP_PROC_BIND:-spread} "$BENCH" -n "$N" -t "$T" -i "$ITERS" 2>&1 | tee -a "$log"
ok=${PIPESTATUS[0]}

echo "==== torch (spec/peers/torch_adamw.py --n $N --threads $T --iters $ITERS)"
if python3 -c 'import torch' 2>/dev/null; then
  PYTHONUNBUFFERED=1 python3 spec/peers/torch_adamw.py --n "$N" --threads "$T" --iters "$ITERS" 2>&1 | tee -a "$log"
else
  echo "adamw_run: python3 has no torch here: no peer figures (the moonspeed side above stands alone)" | tee -a "$log"
fi

echo "==== table (params/s; ratio = moonspeed / torch on the same host, N, threads)"
awk -v n="$N" -v t="$T" '
  /^RESULT moonspeed/ { ms[$3] = $4 }
  /^RESULT torch/     { tc[$4] = $5; impl[$4] = $3 }
  END {
    printf "%-44s %14s %18s %7s\n", "case (N=" n ", T=" t ")", "moonspeed", "torch", "ratio"
    row("fp32 grads, flat", ms["fp32"], "flat")
    row("bf16 grads + bf16 out, flat (offload)", ms["bf16"], "flat")
    row("bf16 grads + bf16 out vs torch on a block", ms["bf16"], "block")
  }
  function row(name, ours, layout,   peer, r) {
    peer = tc[layout]
    r = (ours > 0 && peer > 0) ? sprintf("%.2fx", ours / peer) : "-"
    printf "%-44s %14s %18s %7s\n", name, (ours > 0 ? sprintf("%.3f G", ours / 1e9) : "missing"),
           (peer > 0 ? sprintf("%.3f G %s", peer / 1e9, impl[layout]) : "no torch"), r
  }' "$log"
exit "$ok"
