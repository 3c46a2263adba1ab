#!/bin/bash
# kernels/bench/multi_gpu_run.sh — one device call on a machine with two or
# more GPUs: the GPU specs (the two-rank NCCL ones run here),
# spec/gpu/zero_tracks.sh (every stage on two GPUs against one), NCCL bus
# bandwidth, two "nodes" on the host (a launcher each, one GPU each: NCCL's
# unique id through the rendezvous) against one launcher, then the
# Llama-3.2-1B shape on the KJV in Llama 3 tokens: weak scaling (4 sequences
# a GPU on 1, 2, 4, 8 GPUs, as many as the machine has: stage 3, and stages 0
# and 2 on all of them), and ZeRO-3 on all of them against one GPU running
# the same global batch (loss at every step); with PARTS naming "8b", the
# Llama-3-8B on one GPU and at ZeRO-3 on all of them; a table last. Logs go
# to $OUT.
#
# Build here first, then pack what the GPU machine lacks into .gpu (carried):
#   tar czf .gpu/bin.tgz build/moonspeed build/spec-gpu build/lua data/kjv/*.bin data/kjv-llama3 data/llama3/tokenizer.model
# About 310 s on two H200s; the 1B part grows with the GPUs.
# Environment: PARTS (default "spec tracks comm nodes 1b") picks the parts; STEPS the 1B steps (default 20).
set -u
OUT=${OUT:-/tmp}
PARTS=${PARTS:-spec tracks comm nodes 1b}
STEPS=${STEPS:-20}
. kernels/bench/device_env.sh
nvidia-smi topo -m 2>/dev/null | head -4
gpus=$(nvidia-smi -L | grep -c "^GPU")
: >$OUT/bench.log

if has spec; then
  echo "==== GPU specs (make test-gpu's list)"
  gpu_specs
fi

if has tracks; then
  echo "==== spec/gpu/zero_tracks.sh"
  timeout 400 spec/gpu/zero_tracks.sh build/moonspeed 2>&1 | tee $OUT/zero_tracks.log
  echo "BENCH zero_tracks exit ${PIPESTATUS[0]}" | tee -a $OUT/bench.log
fi

if has comm; then
  echo "==== NCCL bus bandwidth, $gpus ranks"
  timeout 120 build/moonspeed bench comm --provider nccl --world $gpus --min-bytes 1048576 --max-bytes 268435456 2>&1 |
    tee $OUT/comm.log | tail -12
fi

loss_of() { grep -o '"loss":[-0-9.e+]*' "$1/metrics.jsonl" | cut -d: -f2; }

if has 1b; then
  echo "==== Llama-3.2-1B shape, bf16 + fp32 master, T=4096, KJV in Llama 3 tokens"
  one() { # NAME RANKS BATCH ARGS...
    local name=$1 ranks=$2 batch=$3; shift 3
    timeout 150 build/moonspeed launch --nproc-per-node $ranks recipes/llama-3.2-1b.lua device=cuda train.batch=$batch \
      train.micro_batch=2 train.steps=$STEPS train.warmup=5 train.lr=3e-4 train.checkpoint_activations=false \
      train.eval_every=0 train.eval_batches=1 log.every=1 log.sample_tokens=0 checkpoint.every=0 comm.timeout_s=60 \
      data.tokenizer=data/llama3/tokenizer.model data.train=data/kjv-llama3/train-00000.bin \
      data.val=data/kjv-llama3/val-00000.bin "$@" --run-dir $scratch/$name >$OUT/1b-$name.log 2>&1 ||
      { echo "$name failed:"; tail -6 $OUT/1b-$name.log; }
    grep -E "done:" $OUT/1b-$name.log | tail -1
    echo "BENCH 1b $name: ranks $ranks, batch $batch, $(rate $scratch/$name 2) tokens/s" | tee -a $OUT/bench.log
  }
  # weak scaling: 4 sequences a GPU on 1, 2, 4, ... GPUs (stage 3; stages 0
  # and 2 too on all of them); loss: stage 3 on all GPUs against one GPU
  # running the same global batch
  all=1
  one 1gpu-b4 1 4
  for n in 2 4 8 16; do
    [ $n -le $gpus ] || break
    all=$n
    one ${n}gpu-stage3 $n $((4 * n)) zero.stage=3
  done
  for stage in 0 2; do one ${all}gpu-stage$stage $all $((4 * all)) zero.stage=$stage; done
  one 1gpu-b$((4 * all)) 1 $((4 * all))
  paste <(loss_of $scratch/1gpu-b$((4 * all))) <(loss_of $scratch/${all}gpu-stage3) | awk -v g=$all '
    { n++; d = $2 - $1; if (d < 0) d = -d; r = d / $1; if (r > worst) { worst = r; at = n }; if (n == 1) first = $1; last = $1 }
    END { printf "BENCH 1b loss: %d GPUs ZeRO-3 vs 1 GPU, same batch of %d: %d steps, loss %.4f -> %.4f, worst relative difference %.2e at step %d\n",
                 g, 4 * g, n, first, last, worst, at }' | tee -a $OUT/bench.log
fi

if has nodes; then
  echo "==== two nodes on one host: a launcher each (--nnodes 2), one GPU each, NCCL's id through the rendezvous"
  node() { # RANK
    CUDA_VISIBLE_DEVICES=$1 timeout 150 build/moonspeed launch --nnodes 2 --node-rank $1 --nproc-per-node 1 \
      --master 127.0.0.1:29653 recipes/default.lua device=cuda train.steps=60 train.batch=16 train.micro_batch=8 \
      train.eval_every=0 log.every=20 log.sample_tokens=0 zero.stage=3 comm.timeout_s=60 --run-dir $scratch/node$1 \
      >$OUT/node$1.log 2>&1
  }
  node 1 & node 0; a=$?; wait $!; b=$?
  timeout 150 build/moonspeed launch --nproc-per-node 2 recipes/default.lua device=cuda train.steps=60 train.batch=16 \
    train.micro_batch=8 train.eval_every=0 log.every=20 log.sample_tokens=0 zero.stage=3 comm.timeout_s=60 \
    --run-dir $scratch/one-node >$OUT/one-node.log 2>&1
  paste <(loss_of $scratch/one-node) <(loss_of $scratch/node0) | awk -v a=$a -v b=$b '
    { n++; if ($1 != $2) differ++ }
    END { printf "BENCH two nodes: exit %d %d, %d steps, %d losses differ from one launcher with two ranks\n", a, b, n, differ }' |
    tee -a $OUT/bench.log
fi

if has 8b; then
  echo "==== Llama-3-8B, T=8192, 8 sequences a GPU: one GPU (optimizer offload as the plan needs) vs all of them at ZeRO-3"
  for g in 1 $gpus; do
    rm -rf $scratch/8b
    timeout 280 build/moonspeed launch --nproc-per-node $g recipes/llama-3-8b-h200.lua zero.stage=$([ $g = 1 ] && echo 0 || echo 3) \
      train.batch=$((8 * g)) train.steps=3 train.warmup=1 train.eval_every=0 train.eval_batches=1 log.every=1 \
      log.sample_tokens=0 checkpoint.every=0 comm.timeout_s=120 data.train=data/kjv-llama3/train-00000.bin \
      data.val=data/kjv-llama3/val-00000.bin --run-dir $scratch/8b >$OUT/8b-$g.log 2>&1 || tail -5 $OUT/8b-$g.log
    grep -E "offload|memory plan|done:" $OUT/8b-$g.log | head -4
    echo "BENCH 8b on $g GPUs: $(rate $scratch/8b) tokens/s" | tee -a $OUT/bench.log
  done
fi

echo "==== table"
grep -E "^BENCH" $OUT/bench.log | sed 's/^BENCH //'
grep -E "^[a-z0-9-]+: [0-9]+ steps" $OUT/zero_tracks.log 2>/dev/null
awk '/^BENCH 1b 1gpu-b4/ { base = $(NF-1) }
     /^BENCH 1b [0-9]+gpu-stage/ { name = $3; sub(/:$/, "", name); g = $5 + 0
                                  if (base) printf "weak scaling %s: %d tokens/s on %d GPUs vs %d on 1 = %.1f%% efficiency\n", name, $(NF-1), g, base, 100 * $(NF-1) / (g * base) }' $OUT/bench.log
