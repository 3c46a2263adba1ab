#!/bin/bash
# kernels/bench/offload_run.sh — one device call for optimizer offload (issue 8):
# the offload GPU spec, the host AdamW next to torch's fused CPU AdamW, the
# offload overhead on a model that fits both ways (1B shape, 131 K tokens a
# step in two micro-batches of 16 sequences, optimizer on the GPU vs all of it
# on the CPU), Llama-3-8B on one H200 (throughput on random tokens, then 50 steps
# on Llama-3-tokenized text), the PyTorch 8B peer (pure bf16), peak GPU and
# host memory against the plan, and a table last. Logs go to $OUT.
#
# Build here first, then pack what the GPU machine lacks into .gpu (carried):
#   tar czf .gpu/bin.tgz build/moonspeed build/spec-gpu build/bench-adamw build/lua data/kjv/*.bin data/kjv-llama3 data/llama3/tokenizer.model
# Environment: PARTS (default "spec adamw overhead 8b loss peer") picks the parts;
# KNOBS (e.g. "threads=8 OMP_WAIT_POLICY=passive") adds an offloaded overhead run
# per item: recipe overrides (key=value with a dot or "threads") or environment.
set -u
OUT=${OUT:-/tmp}
PARTS=${PARTS:-spec adamw overhead 8b loss peer}
. kernels/bench/device_env.sh
: >$OUT/bench.log

# peak GPU memory (MiB) while a command runs, sampled by nvidia-smi; and what
# the moonspeed process's resident memory was made of when it was highest
# (/proc/PID/status every 0.5 s: anonymous, file-backed, shared)
peak_gpu() { # LOG CMD...
  local log=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$scratch/smi" 2>/dev/null & local smi=$!
  /usr/bin/time -f "host peak RSS %M KiB" "$@" >"$log" 2>&1 & local run=$!
  : >"$scratch/rss"
  while kill -0 $run 2>/dev/null; do
    local pid=$(pgrep -x moonspeed | head -1)
    [ -n "$pid" ] && awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ { v[$1] = $2 }
      END { if (v["VmRSS:"] > 0) print v["VmRSS:"], v["RssAnon:"], v["RssFile:"], v["RssShmem:"] }' /proc/$pid/status \
      2>/dev/null >>"$scratch/rss"
    sleep 0.5
  done
  wait $run; local rc=$?
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  echo "gpu peak $(sort -n "$scratch/smi" | tail -1) MiB" >>"$log"
  sort -n "$scratch/rss" | tail -1 | awk '{ printf "host RSS at its highest sample: %.2f GiB = anonymous %.2f + file-backed %.2f + shared %.2f GiB\n", $1 / 2^20, $2 / 2^20, $3 / 2^20, $4 / 2^20 }' >>"$log"
  return $rc
}

if has spec; then
  echo "==== GPU specs (make test-gpu's list: ops, model, NCCL)"
  gpu_specs
  echo "==== spec/gpu/offload_tracks.sh"
  timeout 240 spec/gpu/offload_tracks.sh build/moonspeed 2>&1 | tee $OUT/offload_tracks.log
  echo "offload_tracks exit ${PIPESTATUS[0]}" | tee -a $OUT/bench.log
fi

if has adamw; then
  echo "==== host AdamW next to torch.optim.AdamW(fused=True), one Llama-3-8B block, 16 threads"
  OUT=$OUT timeout 150 bash kernels/bench/adamw_run.sh 218112000 16 2>&1 | tail -8 | tee -a $OUT/bench.log
fi

if has overhead || has 8b; then
  python3 kernels/bench/random_shard.py $scratch/train.bin 128256 4000000 && python3 kernels/bench/random_shard.py $scratch/val.bin 128256 50000 1
fi
RANDOM_DATA="data.tokenizer=bytes data.train=$scratch/train.bin data.val=$scratch/val.bin train.eval_every=0 train.eval_batches=1 log.sample_tokens=0 log.every=1 checkpoint.every=0"

if has overhead; then
  echo "==== offload overhead: 1B shape, T=4096, 2 micro-batches of 16 sequences (131 K tokens) a step"
  for off in none cpu; do
    rm -rf $scratch/o-$off
    timeout 200 build/moonspeed run recipes/llama-3.2-1b.lua device=cuda train.batch=32 train.micro_batch=16 train.steps=5 \
      train.warmup=1 train.checkpoint_activations=false train.selective_checkpoint=true offload.optimizer=$off \
      offload.ratio=1 $RANDOM_DATA --run-dir $scratch/o-$off \
      >$OUT/overhead-$off.log 2>&1 || tail -5 $OUT/overhead-$off.log
    echo "BENCH offload-overhead $off: $(rate $scratch/o-$off) tokens/s" | tee -a $OUT/bench.log
  done
  for knob in ${KNOBS:-}; do
    case $knob in *.*=*|threads=*) pre=; arg=$knob ;; *) pre=$knob; arg= ;; esac
    rm -rf $scratch/k
    env $pre timeout 200 build/moonspeed run recipes/llama-3.2-1b.lua device=cuda train.batch=32 train.micro_batch=16 \
      train.steps=5 train.warmup=1 train.checkpoint_activations=false train.selective_checkpoint=true \
      offload.optimizer=cpu offload.ratio=1 $arg $RANDOM_DATA --run-dir $scratch/k >$OUT/overhead-$knob.log 2>&1
    echo "BENCH offload-overhead knob $knob: $(rate $scratch/k) tokens/s" | tee -a $OUT/bench.log
  done
fi

if has 8b; then
  echo "==== Llama-3-8B on one H200: throughput on random tokens"
  build/moonspeed plan recipes/llama-3-8b-h200.lua train.batch=8 $RANDOM_DATA 2>&1 | tee $OUT/plan-8b.log | head -16
  peak_gpu $OUT/run-8b.log timeout 280 build/moonspeed run recipes/llama-3-8b-h200.lua train.batch=8 train.steps=4 \
    train.warmup=1 $RANDOM_DATA --run-dir $scratch/r8b || tail -8 $OUT/run-8b.log
  grep -E "offload|^done|peak|highest" $OUT/run-8b.log
  echo "BENCH engine 8b (moonspeed run, bf16 + fp32 master, B=8 T=8192, offload auto): $(rate $scratch/r8b) tokens/s" | tee -a $OUT/bench.log
fi

if has loss; then
  echo "==== Llama-3-8B: 50 steps on Llama-3-tokenized text from a seeded init"
  timeout 300 build/moonspeed run recipes/llama-3-8b-h200.lua train.batch=1 train.steps=50 train.warmup=5 train.lr=3e-4 \
    train.eval_every=25 train.eval_batches=2 log.every=5 log.sample_tokens=0 checkpoint.every=0 --run-dir $scratch/l8b \
    >$OUT/loss-8b.log 2>&1 || tail -8 $OUT/loss-8b.log
  grep -E "^step|^done|offload" $OUT/loss-8b.log | tail -14
fi

if has peer; then
  echo "==== PyTorch peer: HF LlamaForCausalLM 8B, pure bf16, no checkpointing, T=8192"
  PYTHONUNBUFFERED=1 timeout 240 python3 spec/peers/torch_llama.py --shape 8b --pure-bf16 --seq 8192 --steps 4 2>&1 | tail -2 | tee -a $OUT/bench.log
fi

echo "==== table"
grep -E "^BENCH" $OUT/bench.log | sed 's/^BENCH //'
awk '/^BENCH offload-overhead none/ { a = $(NF-1) } /^BENCH offload-overhead cpu/ { b = $(NF-1) }
     /^BENCH engine 8b/ { e = $(NF-1) } /^BENCH torch peer 8b/ { for (i = 1; i <= NF; i++) if ($i == "tokens/s") t = $(i-1) }
     END { if (a && b) printf "offload overhead (1B, 131 K tokens/step): step time with the optimizer on the CPU = %.3fx on the GPU\n", a / b
           if (e && t) printf "8B on one H200: moonspeed %d tokens/s vs PyTorch pure bf16 %d tokens/s = %.2fx\n", e, t, e / t }' $OUT/bench.log
