#!/bin/bash
# kernels/bench/offload_run.sh — device calls for optimizer offload: the
# offload GPU spec, the host AdamW next to torch's fused CPU AdamW, the
# offload overhead on a model that fits both ways (1B shape, 131 K tokens a
# step in two micro-batches of 16 sequences, optimizer on the GPU vs all of it
# on the CPU), the same at the 8B's width (24 layers, B=8: the optimizer on the
# GPU vs its last 8 units on the CPU), Llama-3-8B on one H200 (throughput on
# random tokens), 52 steps of it on Llama-3-tokenized text straight and
# stopped at 50 + resumed from the checkpoint, the PyTorch 8B peer (pure
# bf16), peak GPU and host memory against the plan, and a table last. Logs go
# to $OUT.
#
# Build here first, then pack what the GPU machine lacks into .gpu (carried):
#   tar czf .gpu/bin.tgz build/moonspeed build/spec-gpu build/bench-adamw build/lua data/kjv/*.bin data/kjv-llama3 data/llama3/tokenizer.model
# Environment: PARTS (default "spec adamw overhead 8b peer") picks the parts
# (also: layers, loss); RUNS_8B (default "train.steps=3": the recipe as it
# is, 16 sequences a step) the 8B runs, each a comma-separated list of recipe
# overrides; KNOBS (e.g. "threads=8 OMP_WAIT_POLICY=passive") adds an
# offloaded overhead run per item: recipe overrides (key=value with a dot or
# "threads") or environment. "loss" wants a call of its own (about 420 s
# on an H200) and room for a 90 GiB checkpoint in CKPT_ROOT (default: under
# $TMPDIR) plus 30 GiB of weights: a machine whose memory holds them can point
# TMPDIR at a tmpfs, which also spares the disk's time. GROW_GIB touches that
# much memory before each 8B run, for machines whose memory grows as it is used.
set -u
OUT=${OUT:-/tmp}
PARTS=${PARTS:-spec adamw overhead 8b peer}
. kernels/bench/device_env.sh
: >$OUT/bench.log

# peak GPU memory (MiB) while a command runs, sampled by nvidia-smi, with the
# SM clock and power over the samples that had the GPU busy (a sustained
# step may run below the clocks a short workbench sees); and what
# the moonspeed process's resident memory was made of when it was highest
# (/proc/PID/status every 0.5 s: anonymous, file-backed, shared)
peak_gpu() { # LOG CMD...
  local log=$1; shift
  nvidia-smi --query-gpu=memory.used,utilization.gpu,clocks.sm,power.draw --format=csv,noheader,nounits -lms 200 \
    >"$scratch/smi" 2>/dev/null & local smi=$!
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
  echo "gpu peak $(cut -d, -f1 "$scratch/smi" | sort -n | tail -1) MiB" >>"$log"
  awk -F', *' '$2 >= 90' "$scratch/smi" >"$scratch/busy"
  [ -s "$scratch/busy" ] && echo "gpu busy in $(wc -l <"$scratch/busy") samples: SM clock $(col 3 | median) MHz" \
    "(lowest $(col 3 | head -1)), power $(col 4 | median) W (highest $(col 4 | tail -1))" >>"$log"
  sort -n "$scratch/rss" | tail -1 | awk '{ printf "host RSS at its highest sample: %.2f GiB = anonymous %.2f + file-backed %.2f + shared %.2f GiB\n", $1 / 2^20, $2 / 2^20, $3 / 2^20, $4 / 2^20 }' >>"$log"
  return $rc
}

col() { cut -d, -f$1 "$scratch/busy" | tr -d ' ' | sort -n; } # column N of the busy samples, sorted
median() { awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; } # of sorted numbers, one a line

# a machine whose memory grows as it is used reports too little MemAvailable
# at first (KINDS.md): touch GROW_GIB (default 0) so the plan sees the host
grow_host() { [ "${GROW_GIB:-0}" -gt 0 ] && python3 -c "import numpy; numpy.ones(${GROW_GIB} << 30, numpy.uint8)"; grep MemAvailable /proc/meminfo; }

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

if has overhead || has 8b || has layers; then
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
  n8b=0
  for run in ${RUNS_8B:-train.steps=3}; do
    args=${run//,/ } n8b=$((n8b + 1))
    build/moonspeed plan recipes/llama-3-8b-h200.lua $args $RANDOM_DATA 2>&1 | tee $OUT/plan-8b.log | head -4
    rm -rf $scratch/r8b
    peak_gpu $OUT/run-8b-$n8b.log timeout 280 build/moonspeed run recipes/llama-3-8b-h200.lua train.steps=4 \
      train.warmup=1 $args $RANDOM_DATA --run-dir $scratch/r8b || tail -8 $OUT/run-8b-$n8b.log
    grep -E "offload|^done|peak|highest|busy in|^profile" $OUT/run-8b-$n8b.log | head -70
    echo "BENCH engine 8b $run (bf16 + fp32 master, T=8192, offload auto): $(rate $scratch/r8b) tokens/s" | tee -a $OUT/bench.log
  done
fi

if has layers; then
  echo "==== 8B width, 24 layers (fits either way), B=8: the optimizer on the GPU vs its last 8 of 26 units on the CPU"
  for off in none cpu; do
    rm -rf $scratch/w-$off
    timeout 200 build/moonspeed run recipes/llama-3-8b-h200.lua model.n_layers=24 train.batch=8 train.steps=4 \
      train.warmup=1 offload.optimizer=$off offload.ratio=0.31 $RANDOM_DATA --run-dir $scratch/w-$off \
      >$OUT/layers-$off.log 2>&1 || tail -5 $OUT/layers-$off.log
    grep -E "offload" $OUT/layers-$off.log | head -2
    echo "BENCH 8b-width 24 layers offload $off: $(rate $scratch/w-$off) tokens/s" | tee -a $OUT/bench.log
  done
fi

if has loss; then
  # the checkpoint (fp32 master weights and both Adam moments: 96 GB) goes to
  # CKPT_ROOT; the straight run's weights are removed before the split run's
  # are written, so that at most one model.bin (32 GB) is on the disk
  ckroot=${CKPT_ROOT:-$scratch/ck}
  echo "==== Llama-3-8B: 52 steps on Llama-3-tokenized text from a seeded init, straight and stopped at 50 + resumed"
  loss8b() { # NAME ARGS...
    local name=$1 t0=$SECONDS; shift
    grow_host
    timeout 400 build/moonspeed run recipes/llama-3-8b-h200.lua train.batch=1 train.steps=52 train.warmup=5 train.lr=3e-4 \
      train.eval_every=25 train.eval_batches=2 log.every=5 log.sample_tokens=0 checkpoint.dir=$ckroot "$@" \
      --run-dir $scratch/l8b >>$OUT/loss-8b-$name.log 2>&1 || { echo "$name failed:"; tail -8 $OUT/loss-8b-$name.log; }
    echo "($name: $((SECONDS - t0)) s)"
  }
  loss8b straight checkpoint.resume=none
  grep -E "^step|^done|offload" $OUT/loss-8b-straight.log | tail -14
  cp $scratch/l8b/metrics.jsonl $scratch/straight.jsonl; rm -rf $scratch/l8b
  loss8b split --stop-at 50
  grep -E "checkpoint|stopped|^done" $OUT/loss-8b-split.log | tail -4; du -sh $ckroot
  loss8b split
  grep -E "resumed|^done" $OUT/loss-8b-split.log | tail -3
  paste <(grep -o '"loss":[-0-9.e+]*' $scratch/straight.jsonl | cut -d: -f2) \
        <(grep -o '"loss":[-0-9.e+]*' $scratch/l8b/metrics.jsonl | cut -d: -f2) | awk '
    { n++; d = $2 - $1; if (d < 0) d = -d; r = d / $1; if (n <= 50 && r > before) before = r; if (n > 50 && r > after) after = r
      if (n == 1) first = $1; if (n == 50) at50 = $1; if (n > 50) tail = tail sprintf(" %.4f/%.4f", $1, $2) }
    END { printf "BENCH 8b loss: %.4f at step 1 -> %.4f at step 50; resumed at 50: steps 51-52 straight/resumed%s, worst relative difference %.2e (steps 1-50 of the two runs: %.2e)\n",
                 first, at50, tail, after, before }' | tee -a $OUT/bench.log
  rm -rf $ckroot $scratch/l8b
fi

if has peer; then
  echo "==== PyTorch peer: HF LlamaForCausalLM 8B, pure bf16, no checkpointing, T=8192"
  PYTHONUNBUFFERED=1 timeout 240 python3 spec/peers/torch_llama.py --shape 8b --pure-bf16 --seq 8192 --steps 4 2>&1 | tail -2 | tee -a $OUT/bench.log
fi

echo "==== table"
grep -E "^BENCH" $OUT/bench.log | sed 's/^BENCH //'
awk '/^BENCH offload-overhead none/ { a = $(NF-1) } /^BENCH offload-overhead cpu/ { b = $(NF-1) }
     /^BENCH engine 8b/ { runs[++n] = $4; e[n] = $(NF-1) }
     /^BENCH torch peer 8b/ { for (i = 1; i <= NF; i++) if ($i == "tokens/s") t = $(i-1) }
     END { if (a && b) printf "offload overhead (1B, 131 K tokens/step): step time with the optimizer on the CPU = %.3fx on the GPU\n", a / b
           for (i = 1; i <= n && t; i++)
             printf "8B on one H200, %s: moonspeed %d tokens/s vs PyTorch pure bf16 %d tokens/s = %.2fx\n", runs[i], e[i], t, e[i] / t }' $OUT/bench.log
