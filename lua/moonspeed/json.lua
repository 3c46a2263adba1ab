-- lua/moonspeed/json.lua — a small JSON encoder and decoder.
--
-- encode(v [, order]): objects are Lua tables with string keys (written in the
-- order given by `order`, a list of keys, then the rest sorted), arrays are
-- tables with keys 1..n (empty tables are {}), numbers are written exactly
-- (integers as integers, others with the fewest digits up to 17 that read
-- back the same), NaN and infinities as null. json.null decodes JSON null.
-- decode(s): the value, or nil and "json: <what> at byte N" (also for nesting
-- deeper than 512 arrays and objects).

local M = {}

M.null = setmetatable({}, { __tostring = function() return "null" end })

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

function M.number(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  if x == math.floor(x) and math.abs(x) < 2^53 then return ("%d"):format(x) end
  for prec = 6, 17 do
    local s = ("%." .. prec .. "g"):format(x)
    if tonumber(s) == x then return s end
  end
  return ("%.17g"):format(x)
end

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode

local function encode_table(t, order, seen)
  if seen[t] then error("json: cannot encode a cycle", 3) end
  seen[t] = true
  local out = {}
  if is_array(t) and next(t) ~= nil then
    for i = 1, #t do out[i] = encode(t[i], nil, seen) end
    seen[t] = nil
    return "[" .. table.concat(out, ",") .. "]"
  end
  local done, keys = {}, {}
  for _, k in ipairs(order or {}) do
    if t[k] ~= nil then keys[#keys + 1] = k; done[k] = true end
  end
  local rest = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("json: object keys must be strings", 3) end
    if not done[k] then rest[#rest + 1] = k end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  for i, k in ipairs(keys) do out[i] = encode_string(k) .. ":" .. encode(t[k], nil, seen) end
  seen[t] = nil
  return "{" .. table.concat(out, ",") .. "}"
end

function encode(v, order, seen)
  local t = type(v)
  if v == nil or v == M.null then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then return M.number(v) end
  if t == "string" then return encode_string(v) end
  if t == "table" then return encode_table(v, order, seen or {}) end
  if t == "cdata" then
    local x = tonumber(v)
    if x then return M.number(x) end
  end
  error("json: cannot encode a " .. t, 2)
end

function M.encode(v, order) return encode(v, order) end

-- Decoding --------------------------------------------------------------------

local function decode_error(s, i, what)
  error({ json = ("json: %s at byte %d"):format(what, i) })
end

local skip_ws = function(s, i) return s:find("[^ \t\r\n]", i) or #s + 1 end

local decode_value

local function decode_string(s, i)
  local out, j = {}, i + 1
  while true do
    local c = s:sub(j, j)
    if c == "" then decode_error(s, i, "unterminated string") end
    if c == '"' then return table.concat(out), j + 1 end
    if c == "\\" then
      local e = s:sub(j + 1, j + 1)
      local simple = ({ b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" })[e]
      if simple then
        out[#out + 1] = simple; j = j + 2
      elseif e == "u" then
        local hex = s:sub(j + 2, j + 5)
        if not hex:match("^%x%x%x%x$") then decode_error(s, j, "bad \\u escape") end
        local cp = tonumber(hex, 16)
        j = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and s:sub(j, j + 1) == "\\u" then
          local lo = tonumber(s:sub(j + 2, j + 5), 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            j = j + 6
          end
        end
        if cp < 0x80 then
          out[#out + 1] = string.char(cp)
        elseif cp < 0x800 then
          out[#out + 1] = string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
        elseif cp < 0x10000 then
          out[#out + 1] = string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
        else
          out[#out + 1] = string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
            0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
        end
      else
        decode_error(s, j, "bad escape")
      end
    else
      local k = s:find('["\\]', j) or #s + 1
      out[#out + 1] = s:sub(j, k - 1)
      j = k
    end
  end
end

-- Nesting deeper than this is an error, not a Lua stack overflow.
local MAX_DEPTH = 512

function decode_value(s, i, depth)
  i = skip_ws(s, i)
  local c = s:sub(i, i)
  depth = depth or 0
  if (c == "{" or c == "[") and depth >= MAX_DEPTH then
    decode_error(s, i, ("nesting deeper than %d levels"):format(MAX_DEPTH))
  end
  if c == "{" then
    local obj = {}
    i = skip_ws(s, i + 1)
    if s:sub(i, i) == "}" then return obj, i + 1 end
    while true do
      i = skip_ws(s, i)
      if s:sub(i, i) ~= '"' then decode_error(s, i, "expected a string key") end
      local k
      k, i = decode_string(s, i)
      i = skip_ws(s, i)
      if s:sub(i, i) ~= ":" then decode_error(s, i, "expected ':'") end
      local v
      v, i = decode_value(s, i + 1, depth + 1)
      obj[k] = v
      i = skip_ws(s, i)
      local d = s:sub(i, i)
      if d == "}" then return obj, i + 1 end
      if d ~= "," then decode_error(s, i, "expected ',' or '}'") end
      i = i + 1
    end
  elseif c == "[" then
    local arr = {}
    i = skip_ws(s, i + 1)
    if s:sub(i, i) == "]" then return arr, i + 1 end
    while true do
      local v
      v, i = decode_value(s, i, depth + 1)
      arr[#arr + 1] = v
      i = skip_ws(s, i)
      local d = s:sub(i, i)
      if d == "]" then return arr, i + 1 end
      if d ~= "," then decode_error(s, i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then
    return decode_string(s, i)
  elseif s:sub(i, i + 3) == "true" then
    return true, i + 4
  elseif s:sub(i, i + 4) == "false" then
    return false, i + 5
  elseif s:sub(i, i + 3) == "null" then
    return M.null, i + 4
  else
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not num or num == "" or num == "-" then decode_error(s, i, "unexpected character") end
    local x = tonumber(num)
    if not x then decode_error(s, i, "bad number") end
    return x, i + #num
  end
end

function M.decode(s)
  local ok, v, i = pcall(decode_value, s, 1)
  if not ok then
    if type(v) == "table" and v.json then return nil, v.json end
    error(v, 0)
  end
  i = skip_ws(s, i)
  if i <= #s then return nil, ("json: trailing characters at byte %d"):format(i) end
  return v
end

return M
