-- lua/moonspeed/pretty.lua — values for people to read (the REPL's printer).
--
-- Objects with a __tostring (step stats, plans, units, tensors, memory
-- reports) print as they describe themselves; plain tables print as Lua
-- constructors, keys sorted, nested tables indented, long lists elided.

local M = {}

local MAX_ITEMS, MAX_DEPTH, WIDTH = 24, 4, 88

local function is_ident(k) return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil end

local function scalar(v)
  local t = type(v)
  if t == "string" then return ("%q"):format(v):gsub("\\\n", "\\n") end
  if t == "number" then
    if v == math.floor(v) and math.abs(v) < 2^53 then return ("%d"):format(v) end
    return ("%.10g"):format(v)
  end
  return tostring(v)
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

local function render(v, indent, depth, seen)
  if type(v) ~= "table" then return scalar(v) end
  if has_tostring(v) then
    return (tostring(v):gsub("\n", "\n" .. indent))
  end
  if seen[v] then return "<cycle>" end
  if depth >= MAX_DEPTH then return "{...}" end
  seen[v] = true
  local keys, n = {}, #v
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  local items = {}
  for i = 1, math.min(n, MAX_ITEMS) do items[#items + 1] = render(v[i], indent .. "  ", depth + 1, seen) end
  if n > MAX_ITEMS then items[#items + 1] = ("... (%d items)"):format(n) end
  for _, k in ipairs(keys) do
    local ks = is_ident(k) and k or ("[" .. scalar(k) .. "]")
    items[#items + 1] = ks .. " = " .. render(v[k], indent .. "  ", depth + 1, seen)
  end
  seen[v] = nil
  if #items == 0 then return "{}" end
  local flat = "{ " .. table.concat(items, ", ") .. " }"
  if #flat + #indent <= WIDTH and not flat:find("\n") then return flat end
  return "{\n" .. indent .. "  " .. table.concat(items, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
end

-- The text a REPL shows for value v.
function M.show(v)
  if type(v) == "string" then return v end
  return render(v, "", 0, {})
end

return M
