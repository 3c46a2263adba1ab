# kernels/bench/device_env.sh — sourced by the scripts of one device call
# (gpu_run.sh, offload_run.sh, multi_gpu_run.sh): unpacks the binaries built
# here and carried as .gpu/bin.tgz, says what the machine is, points the
# loader at the CUDA libraries of the machine's torch when the system lacks
# them, and gives `has PART` (whether $PARTS names it), $scratch, gpu_specs
# and rate.
[ -f .gpu/bin.tgz ] && tar xzf .gpu/bin.tgz
# NVLink multicast stays off on shared machines (NCCL, and torch in the peers)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.sm --format=csv,noheader
lscpu | grep -E "^Model name|^CPU\(s\)"; grep -E "MemTotal|MemAvailable" /proc/meminfo; df -h / /dev/shm | tail -2
if ldd build/moonspeed | grep -q "not found"; then
  lib=$(python3 -c 'import nvidia.cu13, os; print(os.path.join(os.path.dirname(nvidia.cu13.__file__), "lib"))' 2>/dev/null)
  export LD_LIBRARY_PATH=${lib:-}:${LD_LIBRARY_PATH:-}
  ldd build/moonspeed | grep -E "not found"
fi
has() { case " ${PARTS:-} " in *" $1 "*) return 0 ;; esac; return 1; }
scratch=$(mktemp -d)
# gpu_specs: every spec of build/spec-gpu but the benchmarks, logs in
# $OUT/specs.log, a "BENCH gpu-specs" line in $OUT/bench.log, failures named
gpu_specs() {
  local p=0 f=0 t
  for t in $(build/spec-gpu --list | grep -v ^bench_); do
    if timeout 120 build/spec-gpu $t >>$OUT/specs.log 2>&1; then p=$((p+1)); else echo "not ok $t"; f=$((f+1)); fi
  done
  echo "BENCH gpu-specs: $p passed, $f failed" | tee -a $OUT/bench.log
  grep -iE "skipped|failed" $OUT/specs.log | head -8
}
# rate DIR [WARM]: tokens/s of a run's metrics.jsonl over its steps after the
# first WARM (default 1: the host's updates of one step overlap the next)
rate() { awk -F'[:,}]' -v warm=${2:-1} '{ for (i = 1; i < NF; i++) { if ($i ~ /"tokens"$/) t = $(i+1); if ($i ~ /"elapsed"$/) e = $(i+1) }
                                          n++; if (n == warm) e1 = e; else if (n > warm) tok += t }
                                        END { if (n > warm) printf "%.0f", tok / (e - e1); else print 0 }' "$1/metrics.jsonl"; }
