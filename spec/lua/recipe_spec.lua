-- spec/lua/recipe_spec.lua — loading, merging, extend, the sandbox, overrides, round trips.

local recipe = require "moonspeed.recipe"
local schema = require "moonspeed.schema"
local support = require "support"

local function write_recipe(dir, name, text)
  return support.write(dir .. "/" .. name, text)
end

local function fails(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return err
end

describe("recipe.merge", function()
  it("merges maps deeply", function()
    local m = recipe.merge({ a = { x = 1, y = 2 }, b = 3 }, { a = { y = 20, z = 30 } })
    assert.are.same({ a = { x = 1, y = 20, z = 30 }, b = 3 }, m)
  end)

  it("replaces lists whole", function()
    local m = recipe.merge({ l = { 1, 2, 3 }, k = 1 }, { l = { 9 } })
    assert.are.same({ l = { 9 }, k = 1 }, m)
  end)

  it("replaces scalars and tables by each other", function()
    assert.are.same({ a = 5 }, recipe.merge({ a = { x = 1 } }, { a = 5 }))
    assert.are.same({ a = { x = 1 } }, recipe.merge({ a = 5 }, { a = { x = 1 } }))
  end)

  it("deletes keys set to remove", function()
    local m = recipe.merge({ a = { x = 1, y = 2 }, b = 3 }, { a = { x = recipe.remove }, b = recipe.remove })
    assert.are.same({ a = { y = 2 } }, m)
  end)

  it("does not modify its inputs", function()
    local base, over = { a = { x = 1 } }, { a = { y = 2 } }
    recipe.merge(base, over)
    assert.are.same({ a = { x = 1 } }, base)
    assert.are.same({ a = { y = 2 } }, over)
  end)
end)

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

  it("ignores keys in comments and strings when looking for lines and duplicates", function()
    local r = recipe.load(write_recipe(dir, "c.lua", table.concat({
      "-- train = { lr = 1, lr = 2 }",
      "--[[ model = { dim = 1, dim = 2 } ]]",
      "return {",
      '  model = { name = "lr = 1, lr = 2 {" },',
      "  train = { lr = 1e-3 },",
      "}",
    }, "\n")))
    assert.are.equal(1e-3, r.train.lr)
    assert.are.equal("lr = 1, lr = 2 {", r.model.name)
  end)

  it("detects duplicate keys written with brackets", function()
    local err = fails(recipe.load, write_recipe(dir, "b.lua", 'return {\n  train = {\n    ["lr"] = 1e-3,\n    lr = 2e-3,\n  },\n}\n'))
    assert.are.equal(dir .. "/b.lua:4: duplicate key train.lr (first set at line 3)", err)
  end)
end)

describe("the recipe sandbox", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.cleanup() end)

  for _, name in ipairs({ "io", "os", "require", "load", "loadstring", "dofile", "loadfile", "debug",
                          "package", "collectgarbage", "getfenv", "setfenv", "module", "jit" }) do
    it("has no " .. name, function()
      local err = fails(recipe.load, write_recipe(dir, "s.lua", ("local x = %s\nreturn {}\n"):format(name)))
      assert.are.equal(("%s/s.lua:1: %s is not available in recipes (recipes are data; helpers: extend, env, remove, deepspeed, sweep, grid, zip)")
        :format(dir, name), err)
    end)
  end

  it("has math, string and table, and cannot change the real ones", function()
    local r = recipe.load(write_recipe(dir, "m.lua",
      'string.rep = nil\nreturn { model = { name = ("ab"):upper() .. table.concat({ "x", "y" }) .. math.floor(2.7) } }\n'))
    assert.are.equal("ABxy2", r.model.name)
    assert.is_function(string.rep)
  end)

  it("cannot reach the real string library through the strings' metatable", function()
    local r = recipe.load(write_recipe(dir, "mt.lua",
      'local mt = getmetatable("")\nreturn { model = { name = tostring(mt) .. ("x"):rep(2) } }\n'))
    assert.are.equal("nilxx", r.model.name)
    local err = fails(recipe.load, write_recipe(dir, "mt2.lua", 'getmetatable("").__index.rep = nil\nreturn {}\n'))
    assert.are.equal(dir .. "/mt2.lua:1: attempt to index a nil value", err)
    assert.is_function(string.rep)
  end)

  it("has no string.dump", function()
    local err = fails(recipe.load, write_recipe(dir, "d.lua", "return { model = { name = string.dump(function() end) } }\n"))
    assert.matches("attempt to call field 'dump'", err)
  end)

  it("reads the environment through env(), converted to the default's type", function()
    local file = write_recipe(dir, "e.lua",
      'return { train = { steps = env("MS_SPEC_STEPS", 10), checkpoint_activations = env("MS_SPEC_CKPT", false) },\n' ..
      '         model = { name = env("MS_SPEC_NAME", "fallback") } }\n')
    local res = support.luajit(([[
      local recipe = require "moonspeed.recipe"
      local json = require "moonspeed.json"
      local r = recipe.load(%q)
      print(json.encode({ r.train.steps, r.train.checkpoint_activations, r.model.name }))
    ]]):format(file), { env = { MS_SPEC_STEPS = "42", MS_SPEC_CKPT = "yes", MS_SPEC_NAME = "from-env" } })
    assert.are.same({ 42, true, "from-env" }, support.json_result(res))
    local r = recipe.load(file)
    assert.are.same({ 10, false, "fallback" }, { r.train.steps, r.train.checkpoint_activations, r.model.name })
  end)
end)

describe("overrides", function()
  it("parse by the key's type", function()
    local r = recipe.load("recipes/default.lua", { "train.lr=3e-4", "train.steps=20", "model.tie_embeddings=false",
      "train.checkpoint_activations=yes", "log.sample_prompt=\"And God\"", "precision=bf16" })
    assert.are.same({ 3e-4, 20, false, true, "And God", "bf16" },
      { r.train.lr, r.train.steps, r.model.tie_embeddings, r.train.checkpoint_activations, r.log.sample_prompt, r.precision })
  end)

  it("accept a key without its section when the name is unique", function()
    local r = recipe.load("recipes/default.lua", { "lr=5e-4", "steps=3", "n_layers=2", "keep=1" })
    assert.are.same({ 5e-4, 3, 2, 1 }, { r.train.lr, r.train.steps, r.model.n_layers, r.checkpoint.keep })
  end)

  it("keep everything after the first = as the value", function()
    local r = recipe.load("recipes/default.lua", { "log.sample_prompt=a=b" })
    assert.are.equal("a=b", r.log.sample_prompt)
  end)

  it("win over the file and are recorded as the origin", function()
    local r, info = recipe.load("recipes/default.lua", { "train.steps=9" })
    assert.are.equal(9, r.train.steps)
    assert.are.equal("override train.steps=9", info.origin["train.steps"])
    assert.are.equal("recipes/default.lua:29", info.origin["train.batch"])
  end)
end)

describe("suggestions", function()
  it("find the closest key, across sections", function()
    assert.are.equal("train.lr", recipe.suggest("train.lrr"))
    assert.are.equal("train.lr", recipe.suggest("model.lr"))
    assert.are.equal("train", recipe.suggest("trian"))
    assert.are.equal("model.n_kv_heads", recipe.suggest("model.n_kv_head"))
    assert.is_nil(recipe.suggest("model.completely_different"))
  end)

  it("measure transpositions as one edit", function()
    assert.are.equal(1, recipe.distance("trian", "train"))
    assert.are.equal(3, recipe.distance("kitten", "sitting"))
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
