-- recipes/experiments/kjv-wide.lua — an experiment written as a difference.
--
-- extend() takes the default recipe and changes only what this experiment is
-- about: a wider, shallower model in bf16, with a few more steps. Maps merge
-- key by key, so everything not named here (data, log, the rest of train)
-- comes from the base. `remove` puts a key back to its schema default.
-- Overrides still work on top: moonspeed run recipes/experiments/kjv-wide.lua train.steps=50
return extend("../default.lua", {
  precision = "bf16",
  model = {
    name = "kjv-wide",
    dim = 192,
    n_layers = 3,
    n_heads = 6,
    n_kv_heads = 3,
    ffn_dim = 512,
  },
  train = {
    steps = 800,
    -- the learning rate scales with the batch: computed after every merge and override
    lr = function(r) return 2e-3 * r.train.batch / 16 end,
    warmup = remove,          -- back to the schema default (no warmup)
  },
})
