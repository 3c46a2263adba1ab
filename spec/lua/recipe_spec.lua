-- spec/lua/recipe_spec.lua — loading (defaults, extend, computed values), the
-- overrides' place among the layers, round trips through serialize. The parts
-- have their own specs: srcindex_spec, layer_spec, sandbox_spec, overrides_spec.

local recipe = require "moonspeed.recipe"
local schema = require "moonspeed.schema"
local support = require "support"

local function write_recipe(dir, name, text)
  return support.write(dir .. "/" .. name, text)
end

local fails = support.fails

describe("recipe.load", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.cleanup() end)

  it("fills every key from the schema defaults", function()
    local r = recipe.load(write_recipe(dir, "empty.lua", "return {}\n"))
    assert.are.same(schema.defaults(), r)
  end)

  it("loads the shipped recipes with the shapes they promise", function()
    local r = recipe.load("recipes/llama-3-8b.lua")
    assert.are.same({ 32, 4096, 32, 8, 14336, 128256, 500000, false, 1e-5 },
      { r.model.n_layers, r.model.dim, r.model.n_heads, r.model.n_kv_heads, r.model.ffn_dim,
        r.model.vocab_size, r.model.rope_theta, r.model.tie_embeddings, r.model.norm_eps })
    r = recipe.load("recipes/llama-3.2-1b.lua")
    assert.are.same({ 16, 2048, 32, 8, 8192, 128256, 500000, true },
      { r.model.n_layers, r.model.dim, r.model.n_heads, r.model.n_kv_heads, r.model.ffn_dim,
        r.model.vocab_size, r.model.rope_theta, r.model.tie_embeddings })
    r = recipe.load("recipes/default.lua")
    assert.are.equal(258, r.model.vocab_size)
    assert.are.equal("data/kjv/train.bin", r.data.train)
  end)

  it("extends a base file: maps merge, remove restores the default, functions compute", function()
    local r, info = recipe.load("recipes/experiments/kjv-wide.lua")
    local base = recipe.load("recipes/default.lua")
    assert.are.equal("bf16", r.precision)
    assert.are.equal(192, r.model.dim)
    assert.are.equal(base.model.ffn_dim ~= r.model.ffn_dim, true)
    assert.are.equal(base.train.seq_len, r.train.seq_len)        -- inherited
    assert.are.equal(base.data.train, r.data.train)
    assert.are.equal(schema.field_by_path["train.warmup"].default, r.train.warmup)  -- removed
    assert.are.equal(2e-3 * r.train.batch / 16, r.train.lr)       -- computed
    assert.are.equal("kjv-wide", info.name)
    -- the computed value sees overrides
    r = recipe.load("recipes/experiments/kjv-wide.lua", { "train.batch=32", "train.micro_batch=16" })
    assert.are.equal(4e-3, r.train.lr)
  end)

  it("extends relative to the recipe's own folder, then the recipes folder", function()
    support.write(dir .. "/base.lua", "return { train = { steps = 7 } }\n")
    local r = recipe.load(write_recipe(dir, "child.lua", 'return extend("base.lua", { train = { batch = 8, micro_batch = 8 } })\n'))
    assert.are.same({ 7, 8 }, { r.train.steps, r.train.batch })
    r = recipe.load(write_recipe(dir, "child2.lua", 'return extend("default", { train = { steps = 3 } })\n'))
    assert.are.equal(3, r.train.steps)
    assert.are.equal(30, r.train.warmup)       -- from recipes/default.lua
  end)

  it("extends a table base", function()
    local r = recipe.load(write_recipe(dir, "t.lua",
      'local base = { model = { dim = 64, n_heads = 2 } }\nreturn extend(base, { model = { dim = 96 } })\n'))
    assert.are.same({ 96, 2 }, { r.model.dim, r.model.n_heads })
  end)

  it("lets a recipe change the result of extend before returning it", function()
    local r = recipe.load(write_recipe(dir, "m.lua",
      'local r = extend("default.lua", {})\nr.train.steps = 11\nreturn r\n'))
    assert.are.equal(11, r.train.steps)
  end)

  it("reports unknown keys from a base file at the base file's line", function()
    support.write(dir .. "/base.lua", "return {\n  model = { dimm = 3 },\n}\n")
    local err = fails(recipe.load, write_recipe(dir, "c.lua", 'return extend("base.lua", {})\n'))
    assert.are.equal(dir .. "/base.lua:2: unknown key model.dimm; did you mean model.dim?", err)
  end)

  it("finds the line of a key defined in a local table", function()
    local err = fails(recipe.load, write_recipe(dir, "l.lua",
      "local m = {\n  dim = 64,\n  n_layerz = 2,\n}\nreturn { model = m }\n"))
    assert.are.equal(dir .. "/l.lua:3: unknown key model.n_layerz; did you mean model.n_layers?", err)
  end)
end)

describe("overrides", function()
  it("win over the file and are recorded as the origin", function()
    local r, info = recipe.load("recipes/default.lua", { "train.steps=9" })
    assert.are.equal(9, r.train.steps)
    assert.are.equal("override train.steps=9", info.origin["train.steps"])
    assert.are.equal("recipes/default.lua:29", info.origin["train.batch"])
  end)
end)

describe("recipe.serialize", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.cleanup() end)

  it("writes a file that loads back to the same recipe", function()
    for _, path in ipairs({ "recipes/default.lua", "recipes/llama-3-8b.lua", "recipes/experiments/kjv-wide.lua" }) do
      local r = recipe.load(path, { "log.sample_prompt=quote \" and\nnewline", "train.lr=0.1234567" })
      local file = support.write(dir .. "/recipe.lua", recipe.serialize(r, "a header\nsecond line"))
      local again = recipe.load(file)
      assert.are.same(r, again)
      assert.matches("^%-%- a header\n%-%- second line\nreturn {", support.read(file))
    end
  end)
end)
