-- spec/lua/sandbox_spec.lua — running a recipe file (sandbox.lua): what the
-- sandbox lacks and has, env(), and what run gives back (the merged table, the
-- origins, the files read).

local sandbox = require "moonspeed.sandbox"
local support = require "support"

local function write_recipe(dir, name, text)
  return support.write(dir .. "/" .. name, text)
end

local fails = support.fails

describe("sandbox.run", function()
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.cleanup() end)

  for _, name in ipairs({ "io", "os", "require", "load", "loadstring", "dofile", "loadfile", "debug",
                          "package", "collectgarbage", "getfenv", "setfenv", "module", "jit" }) do
    it("has no " .. name, function()
      local err = fails(sandbox.run, write_recipe(dir, "s.lua", ("local x = %s\nreturn {}\n"):format(name)))
      assert.are.equal(("%s/s.lua:1: %s is not available in recipes (recipes are data; helpers: extend, env, remove, deepspeed, sweep, grid, zip)")
        :format(dir, name), err)
    end)
  end

  it("has math, string and table, and cannot change the real ones", function()
    local r = sandbox.run(write_recipe(dir, "m.lua",
      'string.rep = nil\nreturn { model = { name = ("ab"):upper() .. table.concat({ "x", "y" }) .. math.floor(2.7) } }\n'))
    assert.are.equal("ABxy2", r.model.name)
    assert.is_function(string.rep)
  end)

  it("cannot reach the real string library through the strings' metatable", function()
    local r = sandbox.run(write_recipe(dir, "mt.lua",
      'local mt = getmetatable("")\nreturn { model = { name = tostring(mt) .. ("x"):rep(2) } }\n'))
    assert.are.equal("nilxx", r.model.name)
    local err = fails(sandbox.run, write_recipe(dir, "mt2.lua", 'getmetatable("").__index.rep = nil\nreturn {}\n'))
    assert.are.equal(dir .. "/mt2.lua:1: attempt to index a nil value", err)
    assert.is_function(string.rep)
  end)

  it("has no string.dump", function()
    local err = fails(sandbox.run, write_recipe(dir, "d.lua", "return { model = { name = string.dump(function() end) } }\n"))
    assert.matches("attempt to call field 'dump'", err)
  end)

  it("reads the environment through env(), converted to the default's type", function()
    local file = write_recipe(dir, "e.lua",
      'return { train = { steps = env("MS_SPEC_STEPS", 10), checkpoint_activations = env("MS_SPEC_CKPT", false) },\n' ..
      '         model = { name = env("MS_SPEC_NAME", "fallback") } }\n')
    local res = support.luajit(([[
      local sandbox = require "moonspeed.sandbox"
      local json = require "moonspeed.json"
      local r = sandbox.run(%q)
      print(json.encode({ r.train.steps, r.train.checkpoint_activations, r.model.name }))
    ]]):format(file), { env = { MS_SPEC_STEPS = "42", MS_SPEC_CKPT = "yes", MS_SPEC_NAME = "from-env" } })
    assert.are.same({ 42, true, "from-env" }, support.json_result(res))
    local r = sandbox.run(file)
    assert.are.same({ 10, false, "fallback" }, { r.train.steps, r.train.checkpoint_activations, r.model.name })
  end)

  it("gives the table merged with its bases, each key's origin and every file read", function()
    support.write(dir .. "/base.lua", "return {\n  train = { steps = 7 },\n}\n")
    local file = write_recipe(dir, "child.lua", 'return extend("base.lua", {\n  train = { batch = 8 },\n})\n')
    local t, origin, files, found, warnings = sandbox.run(file)
    assert.are.same({ train = { steps = 7, batch = 8 } }, t)
    assert.are.same({ ["train.steps"] = dir .. "/base.lua:2", ["train.batch"] = file .. ":2" }, origin)
    assert.are.same({ file, dir .. "/base.lua" }, { files[1].path, files[2].path })
    assert.are.same({ file, "base.lua", true }, { files[2].from, files[2].name, files[2].near })
    assert.are.same({ {}, {} }, { found, warnings })
  end)

  it("finds a base in the recipes folder when it is not next to the file, and refuses a missing one", function()
    local _, _, files = sandbox.run(write_recipe(dir, "c.lua", 'return extend("default", {})\n'))
    assert.are.same({ "recipes/default.lua", false }, { files[2].path, files[2].near })
    assert.are.equal(dir .. '/m.lua:1: extend: cannot find the base recipe "nope.lua" next to this file or in the recipes folder',
      fails(sandbox.run, write_recipe(dir, "m.lua", 'return extend("nope.lua", {})\n')))
  end)
end)
