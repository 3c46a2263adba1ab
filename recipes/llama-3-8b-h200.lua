-- recipes/llama-3-8b-h200.lua — Llama 3 8B on ONE H200 (141 GB), T=8192.
--
-- bf16 compute with fp32 master weights and AdamW. The weights, their
-- gradients and the optimizer state alone take 8.03 B x 16 bytes = 128 GB,
-- and a sequence of 8192 tokens keeps tens of GB of activations: together
-- they do not fit. offload.optimizer = "auto" keeps on the GPU all the
-- optimizer state that fits and moves the rest, in whole units from the last
-- block back, to pinned host memory, where the CPU updates each unit as its
-- gradient arrives during the backward (`moonspeed plan` on the machine names
-- the units). Selective checkpointing recomputes only the norms and SwiGLU,
-- which leaves more room for optimizer state than keeping everything. The
-- data: the KJV in Llama 3 tokens (make data-kjv-llama3).
return extend("llama-3-8b.lua", {
  device = "cuda",
  train = {
    batch = 16,
    checkpoint_activations = false,
    selective_checkpoint = true,
  },
  data = {
    tokenizer = "data/llama3/tokenizer.model",
    train = "data/kjv-llama3/train-*.bin",
    val = "data/kjv-llama3/val-*.bin",
  },
  -- overlap: the host updates each offloaded unit as its gradient lands,
  -- during the backward, into a second copy of its state (30 GiB more pinned
  -- host memory): the next forward then finds its parameters ready
  offload = { optimizer = "auto", overlap = true },
  -- one H200 of a p5e.48xlarge: what `moonspeed plan` resolves "auto" against
  -- away from the GPU (a run resolves it against the GPU it finds)
  cluster = { nodes = 1, gpus_per_node = 1, instance = "p5e.48xlarge" },
})
