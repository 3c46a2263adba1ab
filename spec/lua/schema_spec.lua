-- spec/lua/schema_spec.lua — the one description of a recipe.

local schema = require "moonspeed.schema"
local support = require "support"

describe("schema", function()
  it("gives every key a type, a default, a doc line and a section", function()
    local types = { int = true, number = true, bool = true, string = true, enum = true, map = true, list = true }
    assert.is_true(#schema.fields >= 40)
    for _, f in ipairs(schema.fields) do
      assert.is_true(types[f.type], f.path)
      assert.is_not_nil(f.default, f.path)
      assert.is_string(f.doc, f.path)
      assert.is_true(#f.doc > 10 and not f.doc:find("\n"), f.path)
    end
  end)

  it("has defaults that pass their own checks", function()
    for _, f in ipairs(schema.fields) do
      assert.is_nil(schema.check(f, f.default), f.path)
    end
  end)

  it("names the keys the engine's ms_config needs", function()
    for _, path in ipairs({ "model.vocab_size", "model.dim", "model.n_layers", "model.n_heads", "model.n_kv_heads",
      "model.ffn_dim", "model.max_seq_len", "model.tie_embeddings", "model.rope_theta", "model.norm_eps",
      "model.init_std", "precision", "device", "threads", "train.steps", "train.batch", "train.micro_batch",
      "train.seq_len", "train.lr", "train.min_lr", "train.schedule", "train.warmup", "train.clip",
      "train.weight_decay", "train.beta1", "train.beta2", "train.eps", "train.eval_every", "train.eval_batches",
      "train.seed", "train.checkpoint_activations", "train.loss_chunk", "data.tokenizer", "data.train", "data.val",
      "log.every", "log.sample_tokens", "log.sample_prompt", "log.sample_temperature", "log.sample_top_k",
      "log.peak_gflops", "log.dir" }) do
      assert.is_not_nil(schema.field_by_path[path], path)
    end
    for _, path in ipairs({ "zero.stage", "zero.prefetch", "comm.provider", "comm.timeout_s", "checkpoint.dir",
      "checkpoint.every", "checkpoint.keep", "checkpoint.async", "checkpoint.resume", "offload.optimizer",
      "offload.params", "offload.ratio" }) do
      assert.is_not_nil(schema.field_by_path[path], path)
    end
  end)

  it("checks values and says what is allowed", function()
    local f = schema.field_by_path
    assert.is_nil(schema.check(f["train.lr"], 3e-4))
    assert.are.equal("train.lr must be a number > 0 and < 10, got -1", schema.check(f["train.lr"], -1))
    assert.are.equal("train.steps must be an integer in [1, 1000000000], got 1.5", schema.check(f["train.steps"], 1.5))
    assert.are.equal("train.steps must be an integer in [1, 1000000000], got nothing", schema.check(f["train.steps"], nil))
    assert.are.equal('precision must be one of "fp32", "bf16", got true', schema.check(f["precision"], true))
    assert.are.equal("data.train must be a non-empty string, got \"\" (a string)", schema.check(f["data.train"], ""))
    assert.are.equal("train.lr must be a number > 0 and < 10, got a table", schema.check(f["train.lr"], {}))
    assert.are.equal("train.beta2 must be a number >= 0 and < 1, got 1", schema.check(f["train.beta2"], 1))
  end)

  it("generates the key reference, every key in it", function()
    local text = schema.reference()
    local md = schema.reference(true)
    for _, f in ipairs(schema.fields) do
      assert.truthy(text:find("  " .. f.path .. " ", 1, true), f.path)
      assert.truthy(text:find(f.doc, 1, true), f.path)
      assert.truthy(md:find("| `" .. f.path .. "` |", 1, true), f.path)
    end
  end)

  it("prints the same reference through `moonspeed keys`", function()
    assert.is_nil(support.missing_build())
    local res = support.moonspeed({ "keys" })
    assert.are.equal(0, res.code)
    assert.are.equal(schema.reference(), res.stdout)
    res = support.moonspeed({ "keys", "--markdown" })
    assert.are.equal(schema.reference(true), res.stdout)
  end)
end)
