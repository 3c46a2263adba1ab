-- recipes/llama-3-8b.lua — the Llama 3 8B shape (Meta, 2024).
--
-- 32 layers, d 4096, 32 query heads, 8 KV heads (GQA), SwiGLU 14336, vocabulary
-- 128256, RoPE theta 500000, untied embeddings: 8.03 B parameters. Training it
-- needs ZeRO sharding over many GPUs (later releases); on one machine
-- `moonspeed plan recipes/llama-3-8b.lua` shows what it would take and why it
-- does not fit. Its cluster is the seed deployment's: four g6e.8xlarge nodes
-- (one L40S 48 GB each) over EFA; `moonspeed k8s recipes/llama-3-8b.lua
-- cluster.image=REGISTRY/moonspeed:TAG` writes the Kubeflow Trainer manifests
-- (k8s/README.md).
return {
  precision = "bf16",
  device = "cpu",

  model = {
    name = "llama-3-8b",
    vocab_size = 128256,
    dim = 4096,
    n_layers = 32,
    n_heads = 32,
    n_kv_heads = 8,
    ffn_dim = 14336,
    max_seq_len = 8192,
    tie_embeddings = false,
    rope_theta = 500000,
    norm_eps = 1e-5,
    init_std = 0.02,
  },

  train = {
    steps = 10000,
    batch = 64,
    micro_batch = 1,
    seq_len = 8192,
    lr = 3e-4,
    min_lr = 3e-5,
    schedule = "cosine",
    warmup = 2000,
    clip = 1.0,
    weight_decay = 0.1,
    beta1 = 0.9,
    beta2 = 0.95,
    eps = 1e-8,
    eval_every = 500,
    eval_batches = 16,
    checkpoint_activations = true,
  },

  cluster = {
    nodes = 4,
    gpus_per_node = 1,
    instance = "g6e.8xlarge",
    image = "moonspeed:latest",
    shm_size = "64Gi",
    tolerations = { { key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" } },
  },
}
