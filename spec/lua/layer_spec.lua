-- spec/lua/layer_spec.lua — recipe layers (layer.lua): the merge rules, the
-- checks of a layer's keys and values, and "did you mean".

local layer = require "moonspeed.layer"
local srcindex = require "moonspeed.srcindex"

local fails = require("support").fails

describe("layer.merge", function()
  it("merges maps deeply", function()
    local m = layer.merge({ a = { x = 1, y = 2 }, b = 3 }, { a = { y = 20, z = 30 } })
    assert.are.same({ a = { x = 1, y = 20, z = 30 }, b = 3 }, m)
  end)

  it("replaces lists whole", function()
    local m = layer.merge({ l = { 1, 2, 3 }, k = 1 }, { l = { 9 } })
    assert.are.same({ l = { 9 }, k = 1 }, m)
  end)

  it("replaces scalars and tables by each other", function()
    assert.are.same({ a = 5 }, layer.merge({ a = { x = 1 } }, { a = 5 }))
    assert.are.same({ a = { x = 1 } }, layer.merge({ a = 5 }, { a = { x = 1 } }))
  end)

  it("deletes keys set to remove", function()
    local m = layer.merge({ a = { x = 1, y = 2 }, b = 3 }, { a = { x = layer.remove }, b = layer.remove })
    assert.are.same({ a = { y = 2 } }, m)
  end)

  it("does not modify its inputs", function()
    local base, over = { a = { x = 1 } }, { a = { y = 2 } }
    layer.merge(base, over)
    assert.are.same({ a = { x = 1 } }, base)
    assert.are.same({ a = { y = 2 } }, over)
  end)

  it("is what recipe.lua gives its callers", function()
    local recipe = require "moonspeed.recipe"
    assert.are.equal(layer.merge, recipe.merge)
    assert.are.equal(layer.remove, recipe.remove)
    assert.are.equal("remove", tostring(recipe.remove))
  end)
end)

describe("layer.check", function()
  it("records where each key was set, from the source index", function()
    local src = "return {\n  precision = 'bf16',\n  train = {\n    lr = 1e-3,\n  },\n}\n"
    local origin = {}
    layer.check({ precision = "bf16", train = { lr = 1e-3 } }, "r.lua", srcindex.index(src, "r.lua"), origin)
    assert.are.same({ precision = "r.lua:2", ["train.lr"] = "r.lua:4" }, origin)
  end)

  it("names an unknown key at its line with the closest valid key, or the section's keys", function()
    local idx = srcindex.index("return {\n  model = {\n    dimm = 3,\n  },\n}\n", "u.lua")
    assert.are.equal("u.lua:3: unknown key model.dimm; did you mean model.dim?",
      fails(layer.check, { model = { dimm = 3 } }, "u.lua", idx, {}))
    assert.matches("^t: unknown key log%.zzzzzzzzzzzz; log has: ",
      fails(layer.check, { log = { zzzzzzzzzzzz = 1 } }, "t", nil, {}))
  end)

  it("refuses a wrong value, a section that is no table and a list as a recipe", function()
    assert.are.equal("t: train.steps must be an integer in [1, 1000000000], got 0",
      fails(layer.check, { train = { steps = 0 } }, "t", nil, {}))
    assert.are.equal("t: train must be a table of keys (a section), got 3", fails(layer.check, { train = 3 }, "t", nil, {}))
    assert.are.equal("t: a recipe is a table of named keys; found a value at index 1 (1)", fails(layer.check, { 1 }, "t", nil, {}))
  end)

  it("lets remove and computed values through", function()
    local origin = {}
    layer.check({ train = { warmup = layer.remove, lr = function() return 1 end } }, "t", nil, origin)
    assert.are.same({ ["train.lr"] = "t", ["train.warmup"] = "t" }, origin)
  end)
end)

describe("layer.value_problem", function()
  it("is nil for a good value and suggests the closest enum value", function()
    local schema = require "moonspeed.schema"
    assert.is_nil(layer.value_problem(schema.field_by_path.precision, "bf16"))
    assert.matches('; did you mean "bf16"%?$', layer.value_problem(schema.field_by_path.precision, "bf61"))
  end)
end)

describe("suggestions", function()
  it("find the closest key, across sections", function()
    assert.are.equal("train.lr", layer.suggest("train.lrr"))
    assert.are.equal("train.lr", layer.suggest("model.lr"))
    assert.are.equal("train", layer.suggest("trian"))
    assert.are.equal("model.n_kv_heads", layer.suggest("model.n_kv_head"))
    assert.is_nil(layer.suggest("model.completely_different"))
  end)

  it("measure transpositions as one edit", function()
    assert.are.equal(1, layer.distance("trian", "train"))
    assert.are.equal(3, layer.distance("kitten", "sitting"))
  end)

  it("say where every key is listed when none is close", function()
    assert.are.equal("unknown key zzzzzzzzzzzzzzzz; see `moonspeed keys` for every key",
      layer.unknown_key_msg("zzzzzzzzzzzzzzzz"))
  end)
end)
