-- spec/lua/overrides_spec.lua — command-line overrides (overrides.lua):
-- "section.key=value" parsed by the key's type, short names, map entries, and
-- the refusals; applying them to a recipe table with their origin.

local overrides = require "moonspeed.overrides"

local fails = require("support").fails

local function value(text)
  local f, v = overrides.parse(text)
  return f.path, v
end

describe("overrides.parse", function()
  it("parses by the key's type", function()
    assert.are.same({ "train.lr", 3e-4 }, { value("train.lr=3e-4") })
    assert.are.same({ "train.steps", 20 }, { value("train.steps=20") })
    assert.are.same({ "model.tie_embeddings", false }, { value("model.tie_embeddings=false") })
    assert.are.same({ "train.checkpoint_activations", true }, { value("train.checkpoint_activations=yes") })
    assert.are.same({ "log.sample_prompt", "And God" }, { value('log.sample_prompt="And God"') })
    assert.are.same({ "precision", "bf16" }, { value("precision=bf16") })
  end)

  it("accepts a key without its section when the name is unique", function()
    assert.are.same({ "train.lr", 5e-4 }, { value("lr=5e-4") })
    assert.are.same({ "model.n_layers", 2 }, { value("n_layers=2") })
    assert.are.same({ "checkpoint.keep", 1 }, { value("keep=1") })
  end)

  it("keeps everything after the first = as the value", function()
    assert.are.same({ "log.sample_prompt", "a=b" }, { value("log.sample_prompt=a=b") })
  end)

  it("sets one entry of a map", function()
    local f, v, entry = overrides.parse("cluster.env.NCCL_DEBUG=INFO")
    assert.are.same({ "cluster.env", { NCCL_DEBUG = "INFO" }, true }, { f.path, v, entry })
  end)

  it("refuses what it cannot mean, saying why", function()
    assert.are.equal("override train.lr: expected section.key=value (e.g. train.lr=3e-4)", fails(overrides.parse, "train.lr"))
    assert.are.equal("override train.lrr=1: unknown key train.lrr; did you mean train.lr?", fails(overrides.parse, "train.lrr=1"))
    assert.are.equal("override zero=1: zero is a section; set one of its keys, e.g. zero.stage=...",
      fails(overrides.parse, "zero=1"))
    assert.are.equal("override every=1: every is ambiguous: write one of checkpoint.every, log.every",
      fails(overrides.parse, "every=1"))
    assert.matches("^override train%.steps=many: train%.steps must be an integer", fails(overrides.parse, "train.steps=many"))
    assert.matches("^override cluster%.env=x: cluster%.env is a table: set it in the recipe file, or one entry with",
      fails(overrides.parse, "cluster.env=x"))
  end)
end)

describe("overrides.apply", function()
  it("sets each key, merges map entries, and records the override as the origin", function()
    local origin = { ["train.lr"] = "r.lua:3" }
    local t = overrides.apply({ train = { lr = 1e-3, steps = 5 }, cluster = { env = { A = "1" } } },
      { "train.lr=2e-3", "precision=bf16", "cluster.env.B=2", "zero.stage=2" }, origin)
    assert.are.same({ train = { lr = 2e-3, steps = 5 }, precision = "bf16", cluster = { env = { A = "1", B = "2" } },
      zero = { stage = 2 } }, t)
    assert.are.same({ ["train.lr"] = "override train.lr=2e-3", precision = "override precision=bf16",
      ["cluster.env"] = "override cluster.env.B=2", ["zero.stage"] = "override zero.stage=2" }, origin)
  end)
end)
