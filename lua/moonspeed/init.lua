-- lua/moonspeed/init.lua — what `require "moonspeed"` gives.
--
--   local moonspeed = require "moonspeed"
--   local r = moonspeed.recipe.load("recipes/default.lua", { "train.steps=20" })
--   local e = moonspeed.new(r)              -- or moonspeed.new("recipes/default.lua", overrides)
--   for i = 1, 20 do print(e:step()) end
--   print(moonspeed.plan.compute(r))
--   e:free()
--   local tok = moonspeed.tokenizer.load("data/llama3/tokenizer.model")  -- or "bytes"
--   print(tok:encode("Hello world")[1], tok:decode({ 9906, 1917 }))
--
-- Submodules load on first use, so recipe tools (schema, recipe, keys) work
-- without the engine library.

local M = {}

local submodules = {
  engine = "moonspeed.engine", recipe = "moonspeed.recipe", schema = "moonspeed.schema",
  plan = "moonspeed.plan", metrics = "moonspeed.metrics", plot = "moonspeed.plot",
  json = "moonspeed.json", repl = "moonspeed.repl", cli = "moonspeed.cli", fmt = "moonspeed.fmt",
  pretty = "moonspeed.pretty", sys = "moonspeed.sys", tokenizer = "moonspeed.tokenizer",
}

-- An engine for a recipe (file name, table or resolved recipe) with overrides.
function M.new(r, overrides, opts)
  return M.engine.new(r, overrides, opts)
end

function M.version() return M.engine.version() end

return setmetatable(M, {
  __index = function(t, k)
    local name = submodules[k]
    if not name then return nil end
    local mod = require(name)
    rawset(t, k, mod)
    return mod
  end,
})
