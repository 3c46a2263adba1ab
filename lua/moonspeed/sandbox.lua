-- lua/moonspeed/sandbox.lua — running a recipe file.
--
-- A recipe file runs with no io, os, require, load, dofile, debug, ffi ...:
-- only plain Lua (math, string, table, pairs, ...) and the helpers recipe.lua
-- documents: extend, env, remove, deepspeed, and sweep, grid and zip (added
-- by sweep.lua). Each file is indexed first (srcindex.lua), so every key it
-- sets is checked (layer.lua) and remembered with the file:line it was
-- written at; extend finds its base next to the file, then in the recipes
-- folder, and refuses cycles. run(path) gives the recipe's table (merged with
-- its bases, not yet resolved) with what it read on the way.

local schema = require "moonspeed.schema"
local layer = require "moonspeed.layer"
local srcindex = require "moonspeed.srcindex"
local sweep = require "moonspeed.sweep"
local read_file = require("moonspeed.sys").read_file

local fail, check_layer = layer.fail, layer.check

local M = {}

local layered = setmetatable({}, { __mode = "k" })  -- table -> origin, for extend results

local function dirname(p)
  return p:match("^(.*)/[^/]*$") or "."
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local function recipes_dir()
  local root = rawget(_G, "MOONSPEED_ROOT")
  return root and (root .. "/recipes") or "recipes"
end

-- "recipes/experiments/../default.lua" -> "recipes/default.lua"
local function normalize(p)
  local abs = p:sub(1, 1) == "/"
  local parts = {}
  for part in p:gmatch("[^/]+") do
    if part == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return (abs and "/" or "") .. table.concat(parts, "/")
end

-- Finds the file a recipe's extend("x.lua") names: next to the recipe first,
-- then in the recipes folder. Returns the path and whether it was found next
-- to the recipe (near).
local function resolve_base(name, from_file)
  if name:sub(1, 1) == "/" then return normalize(name), true end
  local near = { dirname(from_file) .. "/" .. name }
  local far = { recipes_dir() .. "/" .. name }
  if not name:match("%.lua$") then
    near[2] = dirname(from_file) .. "/" .. name .. ".lua"
    far[2] = recipes_dir() .. "/" .. name .. ".lua"
  end
  for _, c in ipairs(near) do
    if exists(c) then return normalize(c), true end
  end
  for _, c in ipairs(far) do
    if exists(c) then return normalize(c), false end
  end
  return nil
end

local SAFE = { "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
  "tostring", "type", "unpack", "rawget", "rawset", "rawequal", "setmetatable", "getmetatable",
  "xpcall" }

local load_file
local loaded  -- while M.run runs: every file read, { path = ..., text = ... }, in order
local notes   -- while M.run runs: warnings and DeepSpeed translations met on the way

local function sandbox(file, idx, stack)
  local env = {}
  for _, name in ipairs(SAFE) do env[name] = _G[name] end
  for _, lib in ipairs({ "math", "string", "table" }) do
    local c = {}
    for k, v in pairs(_G[lib]) do c[k] = v end
    env[lib] = c
  end
  env.string.dump = nil
  -- the strings' metatable leads to the real string library (and string.dump)
  function env.getmetatable(v)
    if type(v) == "string" then return nil end
    return getmetatable(v)
  end
  env.remove = layer.remove
  env._VERSION = _VERSION

  function env.env(name, default)
    if type(name) ~= "string" then error("env(name, default): name must be a string", 2) end
    local v = os.getenv(name)
    if v == nil then return default end
    if type(default) == "number" then
      local x = tonumber(v)
      if not x then error(("env(%q): %q is not a number"):format(name, v), 2) end
      return x
    elseif type(default) == "boolean" then
      local b = ({ ["true"] = true, ["1"] = true, yes = true, ["false"] = false, ["0"] = false, no = false })[v:lower()]
      if b == nil then error(("env(%q): %q is not a boolean (true/false/yes/no/1/0)"):format(name, v), 2) end
      return b
    end
    return v
  end

  -- file:line of a helper's call (a `return extend(...)` is a tail call: no frame to ask).
  local function call_site(name)
    local info = debug.getinfo(3, "Sl")
    local line = info and info.source == "@" .. file and info.currentline and info.currentline > 0 and info.currentline
      or idx.calls[name or "extend"]
    return line and ("%s:%d"):format(file, line) or file
  end

  function env.deepspeed(path, opts)
    local at = call_site("deepspeed")
    local function near(p) -- a file next to this recipe, kept with it (moonspeed k8s ships it)
      local full = p:sub(1, 1) == "/" and p or normalize(dirname(file) .. "/" .. p)
      if not exists(full) then fail(at, ("deepspeed: cannot find %q next to this file (%s)"):format(p, full)) end
      local text = read_file(full)
      if loaded then loaded[#loaded + 1] = { path = full, text = text, near = true, from = file, name = p } end
      return full
    end
    local tr = require("moonspeed.deepspeed").recipe_layer(path, opts, near, function(msg) fail(at, msg) end)
    if notes then notes[#notes + 1] = tr end
    layered[tr.layer] = tr.origin
    return tr.layer
  end

  -- A base table written here: its keys checked, and their origins (with those
  -- of the DeepSpeed config it came from, when deepspeed() made it).
  local function table_origin(t)
    local origin = {}
    check_layer(t, file, idx, origin)
    for k, v in pairs(layered[t] or {}) do origin[k] = v end   -- deepspeed(): its keys' JSON paths
    return origin
  end

  sweep.sandbox_helpers(env, call_site, function(base)   -- sweep's base: a file name or a table
    if type(base) == "string" then
      local t = env.extend(base, {})
      return t, layered[t]
    end
    return base, table_origin(base)
  end)

  function env.extend(base, over)
    over = over or {}
    if type(over) ~= "table" then
      fail(call_site("extend"), ("extend(base, overrides): overrides must be a table, got %s"):format(schema.describe(over)))
    end
    local base_t, origin
    if type(base) == "string" then
      local path, near = resolve_base(base, file)
      if not path then
        fail(call_site(), ("extend: cannot find the base recipe %q next to this file or in the recipes folder"):format(base))
      end
      for _, p in ipairs(stack) do
        if normalize(p) == path then
          local chain = {}
          for i, q in ipairs(stack) do chain[i] = q end
          chain[#chain + 1] = path
          fail(call_site(), "extend cycle: " .. table.concat(chain, " -> "))
        end
      end
      base_t, origin = load_file(path, stack)
      for _, f in ipairs(loaded or {}) do
        if f.path == path and not f.from then f.from, f.name, f.near = file, base, near break end
      end
    elseif type(base) == "table" then
      base_t, origin = base, table_origin(base)
    else
      fail(call_site(), ("extend(base, overrides): base must be a recipe file name or a table, got %s"):format(
        schema.describe(base)))
    end
    check_layer(over, file, idx, origin)
    local merged = layer.merge(base_t, over)
    layered[merged] = origin
    return merged
  end

  return setmetatable(env, {
    __index = function(_, k)
      error(("%s is not available in recipes (recipes are data; helpers: extend, env, remove, deepspeed, sweep, grid, zip)"):format(tostring(k)), 2)
    end,
  })
end

-- Loads one recipe file; returns its table (merged with its bases) and origins.
function load_file(path, stack)
  stack = stack or {}
  local src, err = read_file(path)
  if not src then fail(nil, ("cannot read recipe %s"):format(err or path)) end
  if loaded then loaded[#loaded + 1] = { path = path, text = src } end
  local idx = srcindex.index(src, path)
  local sub = {}
  for i, p in ipairs(stack) do sub[i] = p end
  sub[#sub + 1] = path
  local env = sandbox(path, idx, sub)
  local chunk, perr = load(src, "@" .. path, "t", env)
  if not chunk then fail(nil, perr) end
  local ok, t = pcall(chunk)
  if not ok then
    if type(t) ~= "string" then t = tostring(t) end
    fail(nil, t)
  end
  if getmetatable(t) == sweep.Sweep then return t, t.origin end
  if type(t) ~= "table" then
    fail(path, ("a recipe must return a table (or extend(base, overrides)), got %s"):format(schema.describe(t)))
  end
  local origin = {}
  for k, v in pairs(layered[t] or {}) do origin[k] = v end
  local own = {}
  check_layer(t, path, idx, own)
  for k, v in pairs(own) do
    if not origin[k] then origin[k] = v end
  end
  return t, origin
end

-- Runs the recipe file at path. Returns its table (a plain table, or a sweep
-- as sweep.lua makes it), the origin of every key it sets (path -> "file:line"),
-- the files read ({ path, text }, the recipe first, then its bases, which also
-- carry from, name and near as recipe.load documents), the DeepSpeed
-- translations met on the way, and their warnings.
function M.run(path)
  loaded, notes = {}, {}
  local ok, t, origin = pcall(load_file, path)
  local files, found = loaded, notes
  loaded, notes = nil, nil
  if not ok then error(t, 0) end
  local warnings = {}
  for _, tr in ipairs(found) do
    for _, w in ipairs(tr.warnings) do warnings[#warnings + 1] = w end
  end
  return t, origin, files, found, warnings
end

return M
