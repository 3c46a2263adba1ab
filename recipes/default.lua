-- recipes/default.lua — the tiny byte-level model on the King James Bible.
--
-- About 0.8 M parameters: small enough that `make run` trains it on two CPU
-- cores in a few minutes to a held-out loss below 2.0 nats/byte, big enough
-- that its samples read like scripture (spelling, verse structure, names).
-- Every key is spelled out here; `moonspeed keys` documents them.
return {
  precision = "fp32",
  device = "cpu",
  threads = 0,                -- all cores

  model = {
    name = "kjv-tiny",
    vocab_size = 258,         -- bytes + BOS + EOS
    dim = 128,
    n_layers = 4,
    n_heads = 4,
    n_kv_heads = 2,
    ffn_dim = 384,
    max_seq_len = 256,
    tie_embeddings = true,
    rope_theta = 10000,
    norm_eps = 1e-5,
    init_std = 0.02,
  },

  train = {
    steps = 800,
    batch = 16,
    micro_batch = 16,
    seq_len = 128,
    lr = 2e-3,
    min_lr = 2e-4,
    schedule = "cosine",
    warmup = 30,
    clip = 1.0,
    weight_decay = 0.1,
    beta1 = 0.9,
    beta2 = 0.95,
    eps = 1e-8,
    eval_every = 100,
    eval_batches = 16,
    seed = 1234,
    checkpoint_activations = false,
  },

  data = {
    tokenizer = "bytes",
    train = "data/kjv/train.bin",
    val = "data/kjv/val.bin",
  },

  log = {
    every = 50,
    sample_tokens = 200,
    sample_prompt = "In the beginning",
    sample_temperature = 0.8,
    sample_top_k = 40,
    dir = "runs",
  },

  -- reserved for later releases: zero = {}, offload = {}, checkpoint = {}, cluster = {}
}
