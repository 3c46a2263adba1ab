-- lua/moonspeed/overrides.lua — command-line overrides: "section.key=value".
--
-- `moonspeed run RECIPE train.lr=3e-4 steps=20` and every command that takes a
-- recipe pass its overrides through here; they go through the same checks as
-- a recipe file. A key whose name is unique across sections may drop its
-- section: `lr=3e-4` is `train.lr=3e-4`. Values are parsed by the key's type
-- (true/false/yes/no/on/off/1/0 for booleans; strings as written, quotes
-- optional). A map key takes one entry at a time (cluster.env.NCCL_DEBUG=INFO);
-- a list key is set in the recipe file only. Everything after the first = is
-- the value.

local schema = require "moonspeed.schema"
local layer = require "moonspeed.layer"

local fail, unknown_key_msg, value_problem = layer.fail, layer.unknown_key_msg, layer.value_problem

local M = {}

local function parse_value(f, text)
  if f.type == "int" or f.type == "number" then
    local x = tonumber(text)
    if x then return x end
    return text
  elseif f.type == "bool" then
    local b = ({ ["true"] = true, ["1"] = true, yes = true, on = true,
                 ["false"] = false, ["0"] = false, no = false, off = false })[text:lower()]
    if b == nil then return text end
    return b
  end
  local unq = text:match('^"(.*)"$') or text:match("^'(.*)'$")
  return unq or text
end

-- Parses one override; returns field, value (checked) and, for one entry of a
-- map, true (the value is then { [name] = value }); or raises.
function M.parse(text)
  local where = "override " .. text
  local key, value = text:match("^%s*([%w_%.]+)%s*=(.*)$")
  if not key then
    fail(where, "expected section.key=value (e.g. train.lr=3e-4)")
  end
  local f = schema.field_by_path[key]
  local map_path, map_key = key:match("^([%w_]+%.[%w_]+)%.(.+)$")
  if not f and map_path and schema.field_by_path[map_path] and schema.field_by_path[map_path].type == "map" then
    f = schema.field_by_path[map_path]   -- cluster.env.NCCL_DEBUG=INFO sets one entry of a map
    local v = value:match('^"(.*)"$') or value:match("^'(.*)'$") or value
    return f, { [map_key] = v }, true
  end
  if f and (f.type == "map" or f.type == "list") then
    fail(where, ("%s is a %s: set it in the recipe file%s"):format(key, f.type == "map" and "table" or "list",
      f.type == "map" and (", or one entry with " .. key .. ".NAME=value") or ""))
  end
  if not f and not key:find(".", 1, true) then
    local named = schema.fields_named(key)
    if #named == 1 then
      f = named[1]
    elseif #named > 1 then
      local paths = {}
      for i, g in ipairs(named) do paths[i] = g.path end
      fail(where, ("%s is ambiguous: write one of %s"):format(key, table.concat(paths, ", ")))
    end
  end
  if not f then
    if schema.section_by_name[key] then
      fail(where, ("%s is a section; set one of its keys, e.g. %s.%s=..."):format(key, key,
        schema.section_by_name[key].fields[1].key))
    end
    fail(where, unknown_key_msg(key))
  end
  local v = parse_value(f, value)
  local p = value_problem(f, v)
  if p then fail(where, p) end
  return f, v
end

-- Applies overrides (a list of "key=value") to a merged recipe table t,
-- recording "override key=value" in origin as where each key was set.
function M.apply(t, overrides, origin)
  for _, text in ipairs(overrides or {}) do
    local f, v, entry = M.parse(text)
    if f.section then
      t[f.section] = type(t[f.section]) == "table" and t[f.section] or {}
      t[f.section][f.key] = entry and layer.merge(t[f.section][f.key] or {}, v) or v
    else
      t[f.key] = v
    end
    origin[f.path] = "override " .. text
  end
  return t
end

return M
