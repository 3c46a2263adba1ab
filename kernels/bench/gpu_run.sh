#!/bin/bash
# kernels/bench/gpu_run.sh — one device call: GPU specs, timings, the PyTorch peer.
# Expects build/spec-gpu built here (copied to .gpu/ and carried); writes logs to $OUT.
set -u
B=${1:-.gpu}
OUT=${OUT:-/tmp}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader
ldd $B/spec-gpu | grep -E "not found|cublas|gomp"
if ldd $B/spec-gpu | grep -q "not found"; then
  lib=$(python3 -c 'import nvidia.cu13, os; print(os.path.join(os.path.dirname(nvidia.cu13.__file__), "lib"))' 2>/dev/null)
  export LD_LIBRARY_PATH=$B:${lib:-}:${LD_LIBRARY_PATH:-}
  ldd $B/spec-gpu | grep -E "not found"
fi
p=0; f=0
for t in $($B/spec-gpu --list | grep -v ^bench_); do
  if timeout 120 $B/spec-gpu $t >>$OUT/specs.log 2>&1; then echo "ok $t"; p=$((p+1)); else echo "not ok $t"; f=$((f+1)); fi
done 2>&1 | tee $OUT/summary.log
grep -E "step 1|steps:" $OUT/specs.log
grep -B3 "check failed\|relative error\|failed" $OUT/specs.log | head -40
for b in bench_tiny bench_ops_1b bench_llama_1b; do timeout 200 $B/spec-gpu $b 2>&1 | tee -a $OUT/bench.log; done
PYTHONUNBUFFERED=1 timeout 200 python3 spec/peers/torch_llama.py --seq 4096 --steps 5 2>&1 | tail -3 | tee -a $OUT/bench.log
[ "${PEER_COMPILE:-0}" = 1 ] && PYTHONUNBUFFERED=1 timeout 300 python3 spec/peers/torch_llama.py --seq 4096 --steps 5 --compile 2>&1 | tail -3 | tee -a $OUT/bench.log
echo "==== table"
grep -c "^ok" $OUT/summary.log | sed 's/^/specs passed: /'; grep -c "^not ok" $OUT/summary.log | sed 's/^/specs failed: /'
grep BENCH $OUT/bench.log
