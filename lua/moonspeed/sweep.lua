-- lua/moonspeed/sweep.lua — experiments: a base recipe and its variants.
--
-- In a recipe file (sandbox_helpers below gives the sandbox sweep, grid and zip):
--
--   return sweep("../default.lua", { ["train.lr"] = { 1e-4, 3e-4 }, ["zero.stage"] = { 2, 3 } })
--
-- is an experiment of four variants. The second argument is
--   * a map of axes { key = { values... } }: every combination (a grid), the
--     keys in alphabetical order, the first one varying slowest;
--   * or a list of variants, each a table { key = value, ... } — what grid()
--     and zip() return, or written by hand.
-- grid(a, b, ...) is every combination of its arguments (maps of axes or
-- lists of variants), the first slowest; zip(a, b, ...) pairs them up, the
-- n-th variant of each together (they must have as many). A key is a recipe
-- key ("train.lr", or "lr" when its name is unique) or a section name whose
-- values are tables merged into that section ({ ["offload"] = { { optimizer =
-- "none" }, { optimizer = "cpu", ratio = 0.5 } } }).
--
-- Each variant is named after its values (lr3e-4-stage2): numbers compactly
-- (3e-4, 0p5 for 0.5), strings lowercased, a key by its last part unless two
-- varied keys share it. Duplicate names get -v<N>. For Kubernetes the TrainJob
-- is the experiment's name and the variant's, cut to fit a DNS label with a
-- hash that keeps them distinct.

local schema = require "moonspeed.schema"
local layer = require "moonspeed.layer"

local M = {}

-- A variant list: { { {path, value}, ... }, ... } marked so grid/zip know it.
local VariantList = { __name = "variants" }
M.VariantList = VariantList

-- An experiment as a recipe file returns it.
local Sweep = { __name = "sweep" }
M.Sweep = Sweep

local function is_variants(t) return getmetatable(t) == VariantList end

local function variants(list) return setmetatable(list, VariantList) end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error(("a sweep key must be a recipe key like \"train.lr\", got %s"):format(tostring(k)), 0) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

-- A variant as a recipe layer ({ section = { key = value } ... }), each key it
-- sets marked in origin as coming from `where`; a whole section's table is
-- merged into what the variant sets of it.
function M.variant_layer(variant, where, origin)
  local out = {}
  for _, kv in ipairs(variant) do
    local sec, key = kv[1]:match("^([%w_]+)%.(.+)$")
    if sec then
      out[sec] = out[sec] or {}
      out[sec][key] = kv[2]
      origin[kv[1]] = where
    elseif schema.section_by_name[kv[1]] then
      out[kv[1]] = layer.merge(out[kv[1]] or {}, kv[2])
      for k in pairs(kv[2]) do origin[kv[1] .. "." .. k] = where end
    else
      out[kv[1]] = kv[2]
      origin[kv[1]] = where
    end
  end
  return out
end

-- The recipe key path of a sweep key: "train.lr", "lr" (unique), a section name; or nil, why.
function M.key_path(k)
  if schema.field_by_path[k] then return k, schema.field_by_path[k] end
  if schema.section_by_name[k] then return k, nil end
  if not k:find(".", 1, true) then
    local named = schema.fields_named(k)
    if #named == 1 then return named[1].path, named[1] end
    if #named > 1 then
      local paths = {}
      for i, f in ipairs(named) do paths[i] = f.path end
      return nil, ("%s is ambiguous: write one of %s"):format(k, table.concat(paths, ", "))
    end
  end
  return nil, layer.unknown_key_msg(k)
end

local function copy(list)
  local c = {}
  for i, x in ipairs(list) do c[i] = x end
  return c
end

-- Any sweep spec (map of axes, variant list, plain list of tables) as a variant list.
local function as_variants(spec, what)
  if is_variants(spec) then return spec end
  if type(spec) ~= "table" then
    error(("%s: expected a map of axes { [\"train.lr\"] = { ... } } or a list of variants, got a %s"):format(what,
      type(spec)), 0)
  end
  if #spec > 0 then   -- a hand-written list of variants
    local out = {}
    for i, v in ipairs(spec) do
      if type(v) ~= "table" or #v > 0 then
        error(("%s: variant %d must be a table of keys { [\"train.lr\"] = 3e-4, ... }"):format(what, i), 0)
      end
      local a = {}
      for _, k in ipairs(sorted_keys(v)) do a[#a + 1] = { k, v[k] } end
      out[i] = a
    end
    return variants(out)
  end
  local axes = {}   -- one variant list per key, crossed by grid
  for _, k in ipairs(sorted_keys(spec)) do
    local values = spec[k]
    if type(values) ~= "table" or #values == 0 then
      error(("%s: the values of %s must be a non-empty list { ... }"):format(what, k), 0)
    end
    local axis = {}
    for i, v in ipairs(values) do axis[i] = { { k, v } } end
    axes[#axes + 1] = variants(axis)
  end
  return M.grid(unpack(axes))
end
M.as_variants = as_variants

-- Every combination of the arguments, the first varying slowest.
function M.grid(...)
  local out = { {} }
  for i = 1, select("#", ...) do
    local vs = as_variants((select(i, ...)), ("grid: argument %d"):format(i))
    local next_out = {}
    for _, prefix in ipairs(out) do
      for _, v in ipairs(vs) do
        local a = copy(prefix)
        for _, kv in ipairs(v) do a[#a + 1] = kv end
        next_out[#next_out + 1] = a
      end
    end
    out = next_out
  end
  return variants(out)
end

-- The n-th variants of every argument together.
function M.zip(...)
  local n = select("#", ...)
  if n == 0 then error("zip: give at least one map of axes or list of variants", 0) end
  local lists = {}
  for i = 1, n do lists[i] = as_variants((select(i, ...)), ("zip: argument %d"):format(i)) end
  -- a map of several axes zips its axes, not their grid
  if n == 1 and not is_variants((...)) and #(...) == 0 then
    local spec, keys = ..., sorted_keys(...)
    local len
    for _, k in ipairs(keys) do
      local values = spec[k]
      if type(values) ~= "table" or #values == 0 then error(("zip: the values of %s must be a non-empty list"):format(k), 0) end
      if len and #values ~= len then
        error(("zip: %s has %d values but %s has %d; zip pairs them up, so they need as many"):format(k, #values,
          keys[1], len), 0)
      end
      len = len or #values
    end
    local out = {}
    for i = 1, len do
      local a = {}
      for _, k in ipairs(keys) do a[#a + 1] = { k, spec[k][i] } end
      out[i] = a
    end
    return variants(out)
  end
  local len = #lists[1]
  for i = 2, n do
    if #lists[i] ~= len then
      error(("zip: argument %d has %d variants but argument 1 has %d; zip pairs them up, so they need as many")
        :format(i, #lists[i], len), 0)
    end
  end
  local out = {}
  for j = 1, len do
    local a = {}
    for i = 1, n do for _, kv in ipairs(lists[i][j]) do a[#a + 1] = kv end end
    out[j] = a
  end
  return variants(out)
end

---------------------------------------------------------------------------
-- In a recipe's sandbox
---------------------------------------------------------------------------

-- Adds sweep(base, spec), grid(...) and zip(...) to a recipe's sandbox env
-- (sandbox.lua). call_site(name) is the file:line of the helper's call in the
-- recipe; base_of(base) turns sweep's base (a recipe file name, as extend takes
-- it, or a plain table written in the recipe) into the table and the origin of
-- its keys. sweep returns the experiment, checked key by key, as a Sweep.
function M.sandbox_helpers(env, call_site, base_of)
  for _, name in ipairs({ "grid", "zip" }) do
    env[name] = function(...)
      local ok, v = pcall(M[name], ...)
      if not ok then layer.fail(call_site(name), v) end
      return v
    end
  end
  function env.sweep(base, spec)
    local at = call_site("sweep")
    local base_t, origin
    if type(base) == "string" or (type(base) == "table" and not getmetatable(base)) then
      base_t, origin = base_of(base)
    else
      layer.fail(at, ("sweep(base, spec): base must be a recipe file name or a table, got %s"):format(schema.describe(base)))
    end
    local ok, list = pcall(as_variants, spec, "sweep")
    if not ok then layer.fail(at, list) end
    if #list == 0 then layer.fail(at, "sweep: no variants") end
    for i, a in ipairs(list) do
      for _, kv in ipairs(a) do
        local path, f = M.key_path(kv[1])
        if not path then layer.fail(at, ("sweep: variant %d: %s"):format(i, f)) end
        kv[1] = path
        if f then
          local p = layer.value_problem(f, kv[2])
          if p then layer.fail(at, ("sweep: variant %d: %s"):format(i, p)) end
        else
          layer.check({ [path] = kv[2] }, at, nil, {})
        end
      end
    end
    return setmetatable({ base = base_t, origin = origin or {}, variants = list, at = at }, Sweep)
  end
end

---------------------------------------------------------------------------
-- Names
---------------------------------------------------------------------------

-- A number as a name part: 3e-4, 0p5, 2, m1 (for -1).
local function number_text(v)
  local sign = v < 0 and "m" or ""
  v = math.abs(v)
  if v == math.floor(v) and v < 1e6 then return sign .. ("%d"):format(v) end
  local mant, exp = ("%.6e"):format(v):match("^([%d.]+)e([-+]%d+)$")
  mant = mant:gsub("0+$", ""):gsub("%.$", "")
  local sci = ("%se%d"):format(mant, tonumber(exp))
  local plain = ("%.6g"):format(v)
  local text = (#plain <= #sci and not plain:find("e")) and plain or sci
  return sign .. text:gsub("%.", "p")
end

local function value_text(v)
  if type(v) == "number" then return number_text(v) end
  if type(v) == "boolean" then return v and "on" or "off" end
  if type(v) == "table" then
    local parts = {}
    for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = k .. "-" .. value_text(v[k]) end
    return table.concat(parts, "-")
  end
  return tostring(v)
end

local function clean(s)
  return (s:lower():gsub("[^a-z0-9]+", "-"):gsub("^%-+", ""):gsub("%-+$", ""))
end

-- The names of a list of variants (each a list of { path, value }), distinct.
function M.labels(list)
  local last_count = {}
  for _, a in ipairs(list) do
    local here = {}
    for _, kv in ipairs(a) do
      local last = kv[1]:match("([^.]+)$")
      if not here[kv[1]] then
        here[kv[1]] = true
        last_count[last] = last_count[last] or {}
        last_count[last][kv[1]] = true
      end
    end
  end
  local out, used = {}, {}
  for i, a in ipairs(list) do
    local parts = {}
    for _, kv in ipairs(a) do
      local last = kv[1]:match("([^.]+)$")
      local n = 0
      for _ in pairs(last_count[last]) do n = n + 1 end
      local key = n > 1 and kv[1] or last
      local val = value_text(kv[2])
      local sep = val:match("^[%d]") and "" or "-"
      if type(kv[2]) == "number" and not key:match("[%a]$") then sep = "-" end
      parts[#parts + 1] = clean(key) .. sep .. val:lower():gsub("[^a-z0-9%-]", "-")
    end
    local label = clean(table.concat(parts, "-"))
    if label == "" then label = "v" .. i end
    if used[label] then label = label .. "-v" .. i end
    used[label] = true
    out[i] = label
  end
  return out
end

-- FNV-1a of a string as 8 hex digits.
local function hash8(s)
  local h = 2166136261
  for i = 1, #s do h = bit.tobit(bit.bxor(h, s:byte(i)) * 16777619) end
  return bit.tohex(h)
end

-- A DNS label of at most `max` characters from base and label, distinct for
-- distinct labels: cut, then a hash of the whole when it does not fit.
function M.dns_name(base, label, max)
  local full = clean(base .. "-" .. label)
  full = full:gsub("^[^a-z]+", "")
  if full == "" then full = "x" end
  if #full <= max then return full end
  local keep = math.max(1, max - 7)
  local cut = full:sub(1, keep):gsub("%-+$", "")
  return cut .. "-" .. hash8(base .. "\0" .. label):sub(1, 6)
end

return M
