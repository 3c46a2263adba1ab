-- spec/lua/srcindex_spec.lua — the source index (srcindex.lua): the line of
-- every key and helper call in a recipe's source, duplicate keys, file:line.

local srcindex = require "moonspeed.srcindex"

local fails = require("support").fails

describe("srcindex.index", function()
  it("finds the line of every key path and the first call of each helper", function()
    local idx = srcindex.index(table.concat({
      "local base = extend('default.lua', {})",
      "return extend(base, {",
      "  train = {",
      "    lr = 1e-3,",
      '    ["steps"] = 5,',
      "  },",
      "  precision = 'bf16',",
      "})",
    }, "\n"), "r.lua")
    assert.are.same({ train = 3, ["train.lr"] = 4, ["train.steps"] = 5, precision = 7 }, idx.lines)
    assert.are.same({ extend = 1 }, idx.calls)
  end)

  it("ignores keys in comments and strings", function()
    local idx = srcindex.index(table.concat({
      "-- train = { lr = 1, lr = 2 }",
      "--[[ model = { dim = 1, dim = 2 } ]]",
      "return {",
      '  model = { name = "lr = 1, lr = 2 {" },',
      "  train = { lr = 1e-3 },",
      "}",
    }, "\n"), "c.lua")
    assert.are.same({ model = 4, ["model.name"] = 4, train = 5, ["train.lr"] = 5 }, idx.lines)
  end)

  it("counts the lines of long strings and comments", function()
    local idx = srcindex.index('local s = [[\na\nb]]\n--[==[\n]]\n]==]\nreturn { seed = 1 }\n', "l.lua")
    assert.are.equal(7, idx.lines.seed)
  end)

  it("refuses a key set twice in one constructor, brackets or not, with file:line", function()
    local err = fails(srcindex.index, 'return {\n  train = {\n    ["lr"] = 1e-3,\n    lr = 2e-3,\n  },\n}\n', "b.lua")
    assert.are.equal("b.lua:4: duplicate key train.lr (first set at line 3)", err)
    -- the same name in two constructors is no duplicate
    assert.are.equal(2, srcindex.index("return {\n  model = { name = 'a' }, log = { name = 'b' } }\n", "d.lua").lines["log.name"])
  end)
end)

describe("srcindex.where", function()
  it("is file:line of a key, or of the same key in a table built elsewhere, or the file", function()
    local idx = srcindex.index("local m = {\n  dim = 64,\n  n_layerz = 2,\n}\nreturn { model = m }\n", "l.lua")
    assert.are.equal("l.lua:5", srcindex.where("l.lua", idx, "model"))
    assert.are.equal("l.lua:3", srcindex.where("l.lua", idx, "model.n_layerz"))
    assert.are.equal("l.lua", srcindex.where("l.lua", idx, "train.lr"))
    assert.are.equal("t.lua", srcindex.where("t.lua", nil, "train.lr"))
  end)
end)
