-- recipes/llama-3.2-1b.lua — the Llama 3.2 1B shape (Meta, 2024).
--
-- 16 layers, d 2048, 32 query heads, 8 KV heads (GQA), SwiGLU 8192, vocabulary
-- 128256, RoPE theta 500000, tied embeddings: 1.24 B parameters.
return {
  precision = "bf16",
  device = "cpu",

  model = {
    name = "llama-3.2-1b",
    vocab_size = 128256,
    dim = 2048,
    n_layers = 16,
    n_heads = 32,
    n_kv_heads = 8,
    ffn_dim = 8192,
    max_seq_len = 8192,
    tie_embeddings = true,
    rope_theta = 500000,
    norm_eps = 1e-5,
    init_std = 0.02,
  },

  train = {
    steps = 10000,
    batch = 32,
    micro_batch = 1,
    seq_len = 4096,
    lr = 3e-4,
    min_lr = 3e-5,
    schedule = "cosine",
    warmup = 1000,
    eval_every = 500,
    checkpoint_activations = true,
  },

  -- two g6e.12xlarge nodes, four L40S each: eight ranks over EFA
  cluster = {
    nodes = 2,
    instance = "g6e.12xlarge",
    image = "moonspeed:latest",
    shm_size = "32Gi",
    checkpoint_pvc = "moonspeed-checkpoints",
  },
}
