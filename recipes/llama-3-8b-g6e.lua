-- recipes/llama-3-8b-g6e.lua — the seed's deployment: Llama 3 8B on four
-- g6e.8xlarge nodes (one L40S 48 GB and 256 GiB of RAM each) over EFA.
--
-- ZeRO stage 3 shards the bf16 parameters, the gradients and the optimizer
-- state over the four GPUs; the fp32 master weights and Adam moments of every
-- shard live in pinned host memory and the CPU updates them
-- (offload.optimizer = "cpu"), so a GPU keeps a quarter of the parameters and
-- gradients plus the activations of one sequence. `moonspeed plan
-- recipes/llama-3-8b-g6e.lua` shows what each GPU and each host holds, and the
-- traffic of a step over EFA and over PCIe.
return extend("llama-3-8b.lua", {
  device = "cuda",
  zero = { stage = 3 },
  offload = { optimizer = "cpu" },
  train = {
    batch = 16,      -- the seed's 16 sequences a step: 4 ranks x 4 micro-batches
    seq_len = 8192,
  },
})
