-- lua/moonspeed/layer.lua — a recipe layer: one table as written in one place.
--
-- A recipe is built from layers: the schema defaults, each file of an extend
-- chain, a variant of an experiment, the command-line overrides. This module
-- holds what every layer obeys: the merge rules (documented in recipe.lua)
-- with the `remove` sentinel, the checks of a layer's keys and values against
-- schema.lua, reported at the file:line the key was written (srcindex.lua), and
-- the "did you mean" behind those messages (its distance serves the CLI, the
-- engine and the cluster keys for their names too).

local schema = require "moonspeed.schema"
local where_in = require("moonspeed.srcindex").where

local M = {}

-- The `remove` sentinel: a unique table with a readable name.
M.remove = setmetatable({}, { __tostring = function() return "remove" end })

-- Raises "where: msg" as a message for the user (no position, no traceback).
local function fail(where, msg)
  error(where and (where .. ": " .. msg) or msg, 0)
end
M.fail = fail

---------------------------------------------------------------------------
-- Merging
---------------------------------------------------------------------------

local function is_list(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

local function deepcopy(v)
  if type(v) ~= "table" or v == M.remove then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deepcopy(x) end
  return c
end

-- Merges `over` into a copy of `base` by the merge rules; returns the result.
function M.merge(base, over)
  if over == M.remove then return nil end
  if type(over) ~= "table" or type(base) ~= "table" or is_list(over) or is_list(base)
    or getmetatable(over) or getmetatable(base) then
    return deepcopy(over)
  end
  local out = deepcopy(base)
  for k, v in pairs(over) do
    if v == M.remove then
      out[k] = nil
    else
      out[k] = M.merge(out[k], v)
    end
  end
  return out
end

---------------------------------------------------------------------------
-- "did you mean"
---------------------------------------------------------------------------

-- Optimal string alignment distance (Levenshtein plus adjacent transposition).
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and a:sub(i - 1, i - 1) == b:sub(j, j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end
M.distance = distance

-- The closest valid key to an unknown path, or nil.
function M.suggest(path)
  local last = path:match("([^.]+)$")
  local best, best_d
  for _, cand in ipairs(schema.all_paths()) do
    local d = distance(path, cand)
    local cand_last = cand:match("([^.]+)$")
    if cand_last == last and cand ~= path then d = math.min(d, 1) end
    if not best_d or d < best_d then best, best_d = cand, d end
  end
  if best_d and best_d <= math.max(2, math.floor(#path / 4)) then return best end
  return nil
end

local function unknown_key_msg(path)
  local s = M.suggest(path)
  if s then return ("unknown key %s; did you mean %s?"):format(path, s) end
  local section = path:match("^([^.]+)%.")
  local sec = section and schema.section_by_name[section]
  if sec then
    local keys = {}
    for _, f in ipairs(sec.fields) do keys[#keys + 1] = f.key end
    return ("unknown key %s; %s has: %s"):format(path, section, table.concat(keys, ", "))
  end
  return ("unknown key %s; see `moonspeed keys` for every key"):format(path)
end
M.unknown_key_msg = unknown_key_msg

---------------------------------------------------------------------------
-- Layer checks: one table as written in one file (before merging)
---------------------------------------------------------------------------

-- What is wrong with value v of field f (nil when nothing is).
local function value_problem(f, v)
  if v == M.remove or type(v) == "function" then return nil end
  local problem = schema.check(f, v)
  if problem and f.type == "enum" and type(v) == "string" then
    local best, best_d
    for _, x in ipairs(f.values) do
      local d = distance(v, x)
      if not best_d or d < best_d then best, best_d = x, d end
    end
    if best_d <= math.max(1, math.floor(#v / 3)) then
      problem = problem .. ("; did you mean %q?"):format(best)
    end
  end
  return problem
end
M.value_problem = value_problem

-- Checks keys and value types of table t written in `file` (indexed by idx).
-- origin (path -> "file:line") receives the position of every leaf t sets.
local function check_layer(t, file, idx, origin)
  for k, v in pairs(t) do
    if type(k) ~= "string" then
      fail(file, ("a recipe is a table of named keys; found a value at index %s (%s)"):format(
        tostring(k), schema.describe(v)))
    end
    local field = schema.root.by_key[k]
    local sec = schema.section_by_name[k]
    if field then
      local p = value_problem(field, v)
      if p then fail(where_in(file, idx, k), p) end
      origin[k] = where_in(file, idx, k)
    elseif sec then
      if v ~= M.remove then
        if type(v) ~= "table" or getmetatable(v) then
          fail(where_in(file, idx, k), ("%s must be a table of keys (a section), got %s"):format(k, schema.describe(v)))
        end
        for kk, vv in pairs(v) do
          local path = type(kk) == "string" and (k .. "." .. kk) or (k .. "[" .. tostring(kk) .. "]")
          local f = type(kk) == "string" and sec.by_key[kk]
          if not f then
            fail(where_in(file, idx, path), unknown_key_msg(path))
          end
          local p = value_problem(f, vv)
          if p then fail(where_in(file, idx, path), p) end
          origin[path] = where_in(file, idx, path)
        end
      end
    else
      fail(where_in(file, idx, k), unknown_key_msg(k))
    end
  end
end
M.check = check_layer

return M
