#!/bin/bash
# kernels/bench/gpu_run.sh — one device call: the GPU specs (make test-gpu's
# list), the attention workbench next to torch's SDPA, the elementwise workbench, the 1B-shape step next
# to the PyTorch peer; a table of ratios last. Logs go to $OUT.
#
# Build here first (make all build/spec-gpu build/bench-attention build/bench-elementwise), then pack
# what the GPU machine lacks into an ignored folder and carry it:
#   tar czf .gpu/bin.tgz build/moonspeed build/spec-gpu build/bench-attention build/bench-elementwise build/lua data/kjv/*.bin
# Environment: PEER_COMPILE=1 also times the torch.compile peer; SPECS=0 skips the specs, PEER=0 the peers,
# WORKBENCH=0 the attention and elementwise workbenches and the backend-only 1B model; BATCHES (default 1)
# the batch sizes (sequences of 4096 tokens a step, in one micro-batch) of the 1B engine and peer runs;
# ENGINES (default build/moonspeed) the 1B engine runs: each a binary (builds of other kernel choices),
# optionally followed by :OVERRIDE,OVERRIDE... (recipe keys, e.g. build/moonspeed:train.loss_chunk=4096).
set -u
OUT=${OUT:-/tmp}
. kernels/bench/device_env.sh
: >$OUT/bench.log
if [ "${WORKBENCH:-1}" = 1 ]; then
  echo "==== attention workbench"
  timeout 120 build/bench-attention 2>&1 | tee -a $OUT/bench.log
  PYTHONUNBUFFERED=1 timeout 120 python3 kernels/bench/attention_sdpa.py 2>&1 | tail -4 | tee -a $OUT/bench.log
  echo "==== elementwise workbench"
  timeout 120 build/bench-elementwise 2>&1 | tee -a $OUT/bench.log
fi
if [ "${SPECS:-1}" = 1 ]; then
  echo "==== GPU specs"
  gpu_specs
  timeout 300 spec/gpu/run_tracks_cpu.sh build/moonspeed >$OUT/tracks.log 2>&1
  echo "BENCH run_tracks_cpu exit $?" | tee -a $OUT/bench.log
  cat $OUT/tracks.log
  grep -B2 -A2 "relative error\|failed\|FAIL" $OUT/specs.log | head -30
fi
echo "==== 1B shape"
[ "${WORKBENCH:-1}" = 1 ] && for b in bench_ops_1b bench_llama_1b; do timeout 200 build/spec-gpu $b 2>&1 | tee -a $OUT/bench.log; done
# the engine itself: `moonspeed run` of the 1B recipe on random tokens at the real vocabulary
python3 kernels/bench/random_shard.py $scratch/train.bin 128256 1000000 && python3 kernels/bench/random_shard.py $scratch/val.bin 128256 50000 1
ENGINES=${ENGINES:-build/moonspeed}
for B in ${BATCHES:-1}; do
  for engine in $ENGINES; do
    exe=${engine%%:*}; extra=; [ "$engine" != "$exe" ] && extra=$(echo "${engine#*:}" | tr , ' ')
    label=$(basename $exe)${extra:+ $extra}
    for mode in plain selective; do
      [ $B != 1 ] || [ "$engine" != "${ENGINES%% *}" ] && [ $mode = selective ] && continue
      name=$(echo "$(basename $exe)-$mode-b$B-$extra" | tr ' =' '_-')
      rm -rf $scratch/run
      timeout 300 $exe run recipes/llama-3.2-1b.lua device=cuda train.batch=$B train.micro_batch=$B train.steps=10 \
        train.warmup=2 train.checkpoint_activations=false train.selective_checkpoint=$([ $mode = selective ] && echo true || echo false) \
        train.eval_every=0 train.eval_batches=1 log.sample_tokens=0 log.every=1 data.train=$scratch/train.bin \
        data.val=$scratch/val.bin $extra --run-dir $scratch/run >$OUT/engine1b-$name.log 2>&1 || tail -5 $OUT/engine1b-$name.log
      grep -o '"tokens_per_s":[0-9.]*' $scratch/run/metrics.jsonl 2>/dev/null | cut -d: -f2 | tail -7 | sort -n | sed -n 4p |
        awk -v m=$mode -v b=$B -v x="$label" '{ printf "BENCH engine llama-3.2-1b (%s run, bf16, B=%d T=4096, %s, median of steps 4-10): %.0f tokens/s\n", x, b, m, $1 }' |
        tee -a $OUT/bench.log
      grep -E "^done" $OUT/engine1b-$name.log
    done
  done
  [ "${PEER:-1}" = 1 ] && PYTHONUNBUFFERED=1 timeout 200 python3 spec/peers/torch_llama.py --seq 4096 --batch $B --steps 5 2>&1 | tail -1 | tee -a $OUT/bench.log
  [ "${PEER_COMPILE:-0}" = 1 ] && PYTHONUNBUFFERED=1 timeout 300 python3 spec/peers/torch_llama.py --seq 4096 --batch $B --steps 5 --compile 2>&1 | tail -1 | tee -a $OUT/bench.log
done
echo "==== table"
grep -E "^BENCH (gpu-specs|run_tracks)" $OUT/bench.log | sed 's/^BENCH //'
grep -o "run_tracks.*\|^[a-z0-9]*: [0-9]* steps.*" $OUT/tracks.log 2>/dev/null
awk '
  /^BENCH (flash|sdpa)/ { k = $3 " " $4 " " $5 " " $6 " " $7; sub(/:$/, "", k)
                          for (i = 1; i <= NF; i++) { if ($i == "fwd") f = $(i+3); if ($i == "bwd") b = $(i+3) } }
  /^BENCH flash/ { ff[k] = f; fb[k] = b; order[++n] = k }
  /^BENCH sdpa/  { sf[k] = f; sb[k] = b }
  END { printf "%-36s %18s %18s\n", "attention (TFLOP/s)", "fwd ours/sdpa", "bwd ours/sdpa"
        for (j = 1; j <= n; j++) { k = order[j]; if (k in sf) printf "%-36s %6s/%-4s %.2fx %6s/%-4s %.2fx\n", k, ff[k], sf[k], ff[k]/sf[k], fb[k], sb[k], fb[k]/sb[k]
                                   else printf "%-36s %6s %18s\n", k, ff[k], fb[k] } }' $OUT/bench.log
grep -E "^BENCH (matmul|attention|llama|torch|engine)" $OUT/bench.log | sed 's/^BENCH //'
awk '/^BENCH llama/ { for (i = 1; i <= NF; i++) if ($i == "tokens/s") bk = $(i-1) }
     /^BENCH engine.*plain/ { for (i = 1; i <= NF; i++) if ($i ~ /^B=/) b = substr($i, 3)
                              x = $0; sub(/^[^(]*\(/, "", x); sub(/ run,.*/, "", x)
                              k = b "|" x; eng[k] = $(NF-1); order[++n] = k }
     /^BENCH torch/ { for (i = 1; i <= NF; i++) { if ($i == "tokens/s") t = $(i-1); if ($i ~ /^B=|^batch=/) pb = $i }
                      sub(/^(B|batch)=/, "", pb); sub(/,$/, "", pb); if (t > best[pb]) best[pb] = t }
     END { for (j = 1; j <= n; j++) { k = order[j]; split(k, kb, "|"); b = kb[1]
                                      if (best[b]) printf "1B step, B=%s: %s run %d tokens/s vs best PyTorch peer %d tokens/s = %.2fx\n", b, kb[2], eng[k], best[b], eng[k] / best[b] }
           if (bk && best[1]) printf "1B step: backend-only model %d tokens/s vs best PyTorch peer = %.2fx\n", bk, bk / best[1] }' $OUT/bench.log
