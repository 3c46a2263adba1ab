-- lua/moonspeed/recipe.lua — load, merge, override and validate recipes.
--
-- A recipe is a Lua file that returns a table, or `extend(base, overrides)`.
-- It runs in a sandbox: no io, os, require, load, dofile, debug, ffi ... Only
-- plain Lua (math, string, table, pairs, ...) and these helpers:
--
--   extend(base, overrides)  base: a recipe file (relative to this file, then to
--                            the recipes/ folder) or a table; returns the merge.
--   env(name, default)       the environment variable, converted to the type of
--                            `default` (number, boolean or string); default when unset.
--   remove                   a sentinel: `train = { warmup = remove }` deletes the
--                            key from the merge, so its default applies again.
--   deepspeed(path [, opts]) the recipe keys of a DeepSpeed JSON config (deepspeed.lua),
--                            relative to this file; opts: { world = N, hf_config = "config.json" }.
--   sweep(base, spec), grid(...), zip(...)
--                            an experiment: a base and its variants (sweep.lua); load it
--                            with load_experiment.
--
-- Merge rules (extend, and the schema defaults beneath every recipe):
--   * maps (tables with string keys) merge deeply, key by key;
--   * lists (tables with keys 1..n) and scalars are replaced whole;
--   * `remove` deletes a key; assigning nil cannot (Lua drops nil fields).
-- A value may be a function where it must be computed: it receives the resolved
-- recipe and returns the value, e.g. `warmup = function(r) return r.train.steps // 20 end`
-- (written math.floor(r.train.steps / 20) in LuaJIT). It runs after every merge and override.
--
-- Validation: every key must be in schema.lua. An unknown key is an error with
-- file:line and the closest valid key; so is a key set twice in one table
-- constructor. A wrong type or range names the key and what is allowed. Cross-key
-- rules (batch divisible by micro_batch, ...) are checked on the resolved recipe.
--
-- Command-line overrides `section.key=value` go through the same checks. A key
-- whose name is unique across sections may drop its section: `lr=3e-4` is
-- `train.lr=3e-4`. Values are parsed by the key's type (true/false/yes/no/1/0
-- for booleans; strings as written, quotes optional).

local schema = require "moonspeed.schema"

local M = {}

-- The `remove` sentinel: a unique table with a readable name.
M.remove = setmetatable({}, { __tostring = function() return "remove" end })

local function fail(where, msg)
  error(where and (where .. ": " .. msg) or msg, 0)
end

---------------------------------------------------------------------------
-- Source index: where each key of each table constructor is (file:line), and
-- duplicate keys inside one constructor. A small Lua lexer; it never executes.
---------------------------------------------------------------------------

local function lex(src)
  local toks, i, line, n = {}, 1, 1, #src
  local function count_lines(a, b)
    local _, k = src:sub(a, b):gsub("\n", "")
    line = line + k
  end
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      line = line + 1; i = i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local lvl = src:match("^%[(=*)%[", i + 2)
      if lvl then
        local close = "]" .. lvl .. "]"
        local j = src:find(close, i, true) or n
        count_lines(i, j)
        i = j + #close
      else
        i = src:find("\n", i, true) or n + 1
      end
    elseif c == '"' or c == "'" then
      local j, start, buf = i + 1, line, {}
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then
          buf[#buf + 1] = src:sub(j, j + 1)
          if src:sub(j + 1, j + 1) == "\n" then line = line + 1 end
          j = j + 2
        elseif d == c or d == "\n" then
          break
        else
          buf[#buf + 1] = d; j = j + 1
        end
      end
      toks[#toks + 1] = { t = "string", v = table.concat(buf), line = start }
      i = j + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local lvl = src:match("^%[(=*)%[", i)
      local close = "]" .. lvl .. "]"
      local j = src:find(close, i, true) or n
      local start = line
      count_lines(i, j)
      toks[#toks + 1] = { t = "string", v = src:sub(i + #lvl + 2, j - 1), line = start }
      i = j + #close
    elseif c:match("[%a_]") then
      local name = src:match("^[%w_]+", i)
      toks[#toks + 1] = { t = "name", v = name, line = line }
      i = i + #name
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      local num = src:match("^[%w_%.]+", i)
      if num:match("[eEpP]$") and src:sub(i + #num, i + #num):match("[%+%-]") then
        num = num .. src:match("^[%+%-][%w_%.]*", i + #num)
      end
      toks[#toks + 1] = { t = "number", v = num, line = line }
      i = i + #num
    else
      local op = c
      for _, o in ipairs({ "...", "..", "==", "~=", "<=", ">=", "::", "<<", ">>", "//" }) do
        if src:sub(i, i + #o - 1) == o then op = o break end
      end
      toks[#toks + 1] = { t = "op", v = op, line = line }
      i = i + #op
    end
  end
  return toks
end

local function join(a, b)
  if a == nil or a == "" then return b end
  return a .. "." .. b
end

-- Returns { lines = { ["train.lr"] = 12, ... } }; errors on a duplicate key.
function M.index(src, file)
  local toks = lex(src)
  local lines = {}
  local stack = { { kind = "chunk", path = "" } }
  local function enclosing_table_path()
    for k = #stack, 1, -1 do
      if stack[k].kind == "{" then return stack[k].path end
    end
    return ""
  end
  local calls = {}
  for j, tok in ipairs(toks) do
    if tok.t == "name" and toks[j + 1] and toks[j + 1].v == "(" and not calls[tok.v] then calls[tok.v] = tok.line end
  end
  local k = 1
  while k <= #toks do
    local tok, prev = toks[k], toks[k - 1]
    local top = stack[#stack]
    local at_key = top.kind == "{" and prev and prev.t == "op"
      and (prev.v == "{" or prev.v == "," or prev.v == ";")
    local key, key_line, skip
    if at_key and tok.t == "name" and toks[k + 1] and toks[k + 1].t == "op" and toks[k + 1].v == "=" then
      key, key_line, skip = tok.v, tok.line, 1
    elseif at_key and tok.t == "op" and tok.v == "[" and toks[k + 1] and toks[k + 1].t == "string"
      and toks[k + 2] and toks[k + 2].v == "]" and toks[k + 3] and toks[k + 3].v == "=" then
      key, key_line, skip = toks[k + 1].v, tok.line, 3
    end
    if key then
      local path = join(top.path, key)
      if top.keys[key] then
        fail(("%s:%d"):format(file, key_line),
          ("duplicate key %s (first set at line %d)"):format(path, top.keys[key]))
      end
      top.keys[key] = key_line
      if not lines[path] then lines[path] = key_line end
      k = k + skip
    elseif tok.t == "op" and tok.v == "{" then
      local path = enclosing_table_path()
      local eq, name = toks[k - 1], toks[k - 2]
      if eq and eq.t == "op" and eq.v == "=" and name and (name.t == "name" or name.t == "string") then
        path = join(path, name.v)
      elseif eq and eq.t == "op" and eq.v == "=" and name and name.v == "]" and toks[k - 3]
        and toks[k - 3].t == "string" then
        path = join(path, toks[k - 3].v)
      end
      stack[#stack + 1] = { kind = "{", path = path, keys = {} }
    elseif tok.t == "op" and (tok.v == "(" or tok.v == "[") then
      stack[#stack + 1] = { kind = tok.v, path = top.path }
    elseif tok.t == "op" and (tok.v == "}" or tok.v == ")" or tok.v == "]") then
      if #stack > 1 then stack[#stack] = nil end
    end
    k = k + 1
  end
  return { lines = lines, calls = calls }
end

-- file:line of a key path in an indexed source (or just the file).
local function where_in(file, idx, path)
  local line = idx and idx.lines[path]
  if not line and idx then  -- e.g. a table built in a local and assigned later
    local best
    for p, l in pairs(idx.lines) do
      if p:sub(-#path - 1) == "." .. path and (not best or l < best) then best = l end
    end
    local last = path:match("([^.]+)$")
    if not best and last ~= path then
      for p, l in pairs(idx.lines) do
        if (p == last or p:sub(-#last - 1) == "." .. last) and (not best or l < best) then best = l end
      end
    end
    line = best
  end
  if line then return ("%s:%d"):format(file, line) end
  return file
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

---------------------------------------------------------------------------
-- Layer checks: one table as written in one file (before merging)
---------------------------------------------------------------------------

local function is_list(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

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

---------------------------------------------------------------------------
-- Merging
---------------------------------------------------------------------------

local function deepcopy(v)
  if type(v) ~= "table" or v == M.remove then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deepcopy(x) end
  return c
end
M.deepcopy = deepcopy

-- Merges `over` into a copy of `base` by the rules above; returns the result.
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
-- Loading files in the sandbox
---------------------------------------------------------------------------

local layered = setmetatable({}, { __mode = "k" })  -- table -> origin, for extend results

local read_file = require("moonspeed.sys").read_file

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
local loaded  -- while M.load runs: every file read, { path = ..., text = ... }, in order
local notes   -- while M.load runs: warnings and DeepSpeed translations met on the way

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
  env.remove = M.remove
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

  local sweep = require "moonspeed.sweep"
  for _, name in ipairs({ "grid", "zip" }) do
    env[name] = function(...)
      local ok, v = pcall(sweep[name], ...)
      if not ok then fail(call_site(name), v) end
      return v
    end
  end
  function env.sweep(base, spec)
    local at = call_site("sweep")
    local base_t, origin
    if type(base) == "string" then
      base_t = env.extend(base, {})
      origin = layered[base_t]
    elseif type(base) == "table" and not getmetatable(base) then
      origin = {}
      check_layer(base, file, idx, origin)
      for k, v in pairs(layered[base] or {}) do origin[k] = v end
      base_t = base
    else
      fail(at, ("sweep(base, spec): base must be a recipe file name or a table, got %s"):format(schema.describe(base)))
    end
    local ok, list = pcall(sweep.as_variants, spec, "sweep")
    if not ok then fail(at, list) end
    if #list == 0 then fail(at, "sweep: no variants") end
    for i, a in ipairs(list) do
      for _, kv in ipairs(a) do
        local path, f = sweep.key_path(kv[1], unknown_key_msg)
        if not path then fail(at, ("sweep: variant %d: %s"):format(i, f)) end
        kv[1] = path
        if f then
          local p = value_problem(f, kv[2])
          if p then fail(at, ("sweep: variant %d: %s"):format(i, p)) end
        else
          check_layer({ [path] = kv[2] }, at, nil, {})
        end
      end
    end
    return setmetatable({ base = base_t, origin = origin or {}, variants = list, at = at }, sweep.Sweep)
  end

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
      origin = {}
      check_layer(base, file, idx, origin)
      for k, v in pairs(layered[base] or {}) do origin[k] = v end   -- deepspeed(): its keys' JSON paths
      base_t = base
    else
      fail(call_site(), ("extend(base, overrides): base must be a recipe file name or a table, got %s"):format(
        schema.describe(base)))
    end
    check_layer(over, file, idx, origin)
    local merged = M.merge(base_t, over)
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
  local idx = M.index(src, path)
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
  if getmetatable(t) == require("moonspeed.sweep").Sweep then return t, t.origin end
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

---------------------------------------------------------------------------
-- Overrides: "train.lr=3e-4"
---------------------------------------------------------------------------

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

-- Parses one override; returns field, value (checked) or raises.
function M.parse_override(text)
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

---------------------------------------------------------------------------
-- Resolution: defaults, computed values, cross-key rules
---------------------------------------------------------------------------

local function get(r, f)
  if f.section then return r[f.section] and r[f.section][f.key] end
  return r[f.key]
end

local function set(r, f, v)
  if f.section then r[f.section][f.key] = v else r[f.key] = v end
end

-- Calls the function values with a view of the recipe in which every other
-- value is already resolved (computed on first use; cycles are errors).
local function resolve_functions(r, origin)
  local state = {}
  local resolve
  local function view_section(sec)
    return setmetatable({}, {
      __index = function(_, k)
        local f = sec.by_key[k]
        if not f then error(("the recipe has no key %s.%s"):format(sec.name, tostring(k)), 2) end
        return resolve(f)
      end,
      __newindex = function() error("the recipe is read-only inside a computed value", 2) end,
    })
  end
  local view = setmetatable({}, {
    __index = function(_, k)
      local sec = schema.section_by_name[k]
      if sec then return view_section(sec) end
      local f = schema.root.by_key[k]
      if f then return resolve(f) end
      return nil
    end,
    __newindex = function() error("the recipe is read-only inside a computed value", 2) end,
  })
  function resolve(f)
    local v = get(r, f)
    if type(v) ~= "function" then return v end
    if state[f.path] == "busy" then
      fail(origin[f.path], ("%s: computed values refer to each other in a cycle"):format(f.path))
    end
    state[f.path] = "busy"
    local ok, x = pcall(v, view)
    if not ok then
      if type(x) == "string" and x:match("^[^:]*:%d+: ") then fail(nil, x) end
      fail(origin[f.path], ("%s: computing the value failed: %s"):format(f.path, tostring(x)))
    end
    local p = value_problem(f, x)
    if p or type(x) == "function" then
      fail(origin[f.path], ("%s (computed)"):format(p or (f.path .. " must not compute a function")))
    end
    set(r, f, x)
    state[f.path] = "done"
    return x
  end
  for _, f in ipairs(schema.fields) do resolve(f) end
end

-- The cross-key rules. `at(path)` is where a key was set; a rule that fails is
-- reported where one of its keys was set last (an override beats the file).
local function cross_check(r, at, explicit)
  local m, t = r.model, r.train
  local related = {
    ["model.dim"] = { "model.dim", "model.n_heads" },
    ["model.n_kv_heads"] = { "model.n_kv_heads", "model.n_heads" },
    ["train.seq_len"] = { "train.seq_len", "model.max_seq_len" },
    ["train.micro_batch"] = { "train.micro_batch", "train.batch" },
    ["train.batch"] = { "train.batch", "train.micro_batch" },
    ["train.min_lr"] = { "train.min_lr", "train.lr" },
    ["model.vocab_size"] = { "model.vocab_size", "data.tokenizer" },
  }
  local function blame(path)
    local best
    for _, p in ipairs(related[path] or { path }) do
      local o = explicit[p]
      if o and (o:match("^override ") or o:match(" %(variant %d+, ")) then return o end   -- the last layer set
      best = best or o
    end
    return best or at(path)
  end
  local function need(ok, path, msg) if not ok then fail(blame(path), msg) end end
  need(m.dim % m.n_heads == 0, "model.dim",
    ("model.dim (%d) must be divisible by model.n_heads (%d)"):format(m.dim, m.n_heads))
  local head_dim = m.dim / m.n_heads
  need(head_dim % 2 == 0, "model.dim",
    ("head_dim = model.dim / model.n_heads = %d must be even (RoPE rotates pairs)"):format(head_dim))
  need(m.n_kv_heads <= m.n_heads, "model.n_kv_heads",
    ("model.n_kv_heads (%d) must not exceed model.n_heads (%d)"):format(m.n_kv_heads, m.n_heads))
  need(m.n_heads % m.n_kv_heads == 0, "model.n_kv_heads",
    ("model.n_heads (%d) must be a multiple of model.n_kv_heads (%d)"):format(m.n_heads, m.n_kv_heads))
  need(t.seq_len <= m.max_seq_len, "train.seq_len",
    ("train.seq_len (%d) must be <= model.max_seq_len (%d)"):format(t.seq_len, m.max_seq_len))
  need(t.micro_batch <= t.batch, "train.micro_batch",
    ("train.micro_batch (%d) must be <= train.batch (%d)"):format(t.micro_batch, t.batch))
  need(t.batch % t.micro_batch == 0, "train.batch",
    ("train.batch (%d) must be a multiple of train.micro_batch (%d)"):format(t.batch, t.micro_batch))
  need(t.min_lr <= t.lr, "train.min_lr",
    ("train.min_lr (%s) must be <= train.lr (%s)"):format(schema.fmtnum(t.min_lr), schema.fmtnum(t.lr)))
  if r.data.tokenizer == "bytes" then
    need(m.vocab_size >= 258, "model.vocab_size",
      ("model.vocab_size (%d) is too small for the bytes tokenizer, which needs 258 (256 bytes, BOS, EOS)")
        :format(m.vocab_size))
  end
  for _, p in ipairs(require("moonspeed.cluster").problems(r)) do need(false, p.path, p.msg) end
end

-- Resolves a merged recipe table: defaults, functions, checks. Returns a fresh table.
function M.resolve(t, origin, default_where)
  local r = M.merge(schema.defaults(), t)
  for _, s in ipairs(schema.sections) do
    if s.name and type(r[s.name]) ~= "table" then r[s.name] = M.merge(schema.defaults()[s.name], {}) end
  end
  for _, f in ipairs(schema.fields) do
    if get(r, f) == nil then set(r, f, schema.default_of(f)) end
  end
  local function at(path) return origin[path] or default_where end
  resolve_functions(r, setmetatable({}, { __index = function(_, k) return at(k) end }))
  for _, f in ipairs(schema.fields) do
    local p = schema.check(f, get(r, f))
    if p then fail(at(f.path), p) end
  end
  cross_check(r, at, origin)
  return r
end

-- Applies command-line overrides ("key=value") to a merged recipe table t,
-- recording where each key was set in origin.
local function apply_overrides(t, overrides, origin)
  for _, text in ipairs(overrides or {}) do
    local f, v, entry = M.parse_override(text)
    if f.section then
      t[f.section] = type(t[f.section]) == "table" and t[f.section] or {}
      t[f.section][f.key] = entry and M.merge(t[f.section][f.key] or {}, v) or v
    else
      t[f.key] = v
    end
    origin[f.path] = "override " .. text
  end
  return t
end

local function recipe_name(path)
  return path:match("([^/]+)%.lua$") or path:match("([^/]+)$")
end

-- Runs load_file collecting the files read and the notes (DeepSpeed translations).
local function load_collecting(path)
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

local function is_sweep(t) return getmetatable(t) == require("moonspeed.sweep").Sweep end

-- Loads a recipe file with command-line overrides (a list of "key=value").
-- Returns the resolved recipe and info { file, name, overrides, origin, files,
-- warnings, deepspeed }: files lists every file read ({ path, text }), the
-- recipe first, then its bases, which also carry from (the file that extends
-- them), name (as extend names them) and near (found next to that file rather
-- than in the recipes folder); warnings the sentences to show (DeepSpeed keys
-- with no effect ...); deepspeed the translations of the DeepSpeed configs read.
function M.load(path, overrides)
  overrides = overrides or {}
  local t, origin, files, found, warnings = load_collecting(path)
  if is_sweep(t) then
    fail(path, ("this is an experiment of %d variants (sweep); `moonspeed run %s --list` lists them; run and k8s "
      .. "take it whole, or one variant with --only N"):format(#t.variants, path))
  end
  t = apply_overrides(M.merge({}, t), overrides, origin)
  local r = M.resolve(t, origin, path)
  local name = recipe_name(path)
  if name == "recipe" then  -- a run directory's resolved recipe: name it after the run's model
    name = r.model.name
  end
  return r, { file = path, name = name, overrides = overrides, origin = origin, files = files,
              warnings = warnings, deepspeed = found }
end

-- Loads a recipe file that may be an experiment (sweep(...)). Returns a list
-- of variants { index, label, r, info } (info as load gives it, plus
-- experiment, variant, label and values = { { path, value } ... }; info.name
-- is "<experiment>-<label>"), whether the file is an experiment, and its
-- number of variants. only = N keeps variant N alone. A plain recipe is one
-- variant without a label. An override may not set a key the experiment varies.
function M.load_experiment(path, overrides, only)
  overrides = overrides or {}
  local t, origin, files, found, warnings = load_collecting(path)
  if not is_sweep(t) then
    if only and only ~= 1 then
      fail(path, ("--only %d: this recipe is not an experiment (sweep); it has one variant"):format(only))
    end
    local r, info = M.load(path, overrides)
    return { { index = 1, r = r, info = info } }, false, 1
  end
  local n = #t.variants
  if only and (only < 1 or only > n) then
    fail(path, ("--only %d: the experiment has variants 1 to %d (`moonspeed run %s --list`)"):format(only, n, path))
  end
  local sweep = require "moonspeed.sweep"
  local labels = sweep.labels(t.variants)
  local varied = {}
  for _, a in ipairs(t.variants) do for _, kv in ipairs(a) do varied[kv[1]] = true end end
  for _, text in ipairs(overrides) do
    local f = M.parse_override(text)
    if varied[f.path] or (f.section and varied[f.section]) then
      fail("override " .. text, ("%s is a key this experiment varies; change the sweep, or pick a variant with --only N")
        :format(f.path))
    end
  end
  local name = recipe_name(path)
  local out = {}
  for i, a in ipairs(t.variants) do
    if not only or only == i then
      local vorigin = {}
      for k, v in pairs(origin) do vorigin[k] = v end
      local layer = sweep.variant_layer(a, ("%s (variant %d, %s)"):format(t.at, i, labels[i]), vorigin, M.merge)
      local vt = apply_overrides(M.merge(t.base, layer), overrides, vorigin)
      local ok, r = pcall(M.resolve, vt, vorigin, path)
      if not ok then error(("variant %d (%s): %s"):format(i, labels[i], tostring(r)), 0) end
      local info = { file = path, name = name .. "-" .. labels[i], overrides = overrides, origin = vorigin,
                     files = files, warnings = warnings, deepspeed = found, experiment = name, variant = i,
                     label = labels[i], values = a }
      out[#out + 1] = { index = i, label = labels[i], r = r, info = info }
    end
  end
  return out, true, n
end

-- Loads a recipe given as a table (the REPL, specs): same checks, no file.
function M.from_table(t, overrides, label)
  label = label or "recipe"
  local origin = {}
  check_layer(t, label, nil, origin)
  t = apply_overrides(M.merge({}, t), overrides, origin)
  return M.resolve(t, origin, label), { file = label, name = label, overrides = overrides or {}, origin = origin }
end

---------------------------------------------------------------------------
-- Writing a resolved recipe back as a loadable file
---------------------------------------------------------------------------

-- the shortest decimal that reads back as the same number (recipe values are finite)
local lua_number = require("moonspeed.json").number

local function lua_value(v)
  if type(v) == "table" then  -- a map (keys sorted) or a list of maps
    local parts = {}
    if #v > 0 then
      for i, x in ipairs(v) do parts[i] = lua_value(x) end
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      for i, k in ipairs(keys) do
        local name = k:match("^[%a_][%w_]*$") and k or ("[%s]"):format(lua_value(k))
        parts[i] = ("%s = %s"):format(name, lua_value(v[k]))
      end
    end
    return #parts == 0 and "{}" or ("{ " .. table.concat(parts, ", ") .. " }")
  end
  if type(v) == "string" then return ("%q"):format(v):gsub("\\\n", "\\n") end
  if type(v) == "number" then return lua_number(v) end
  return tostring(v)
end

M.lua_value = lua_value

-- Lua source for a resolved recipe; `header` lines become comments.
function M.serialize(r, header)
  local out = {}
  for line in ((header or "") .. "\n"):gmatch("([^\n]*)\n") do
    if line ~= "" then out[#out + 1] = "-- " .. line end
  end
  out[#out + 1] = "return {"
  for _, s in ipairs(schema.sections) do
    if s.name then out[#out + 1] = ("  %s = {"):format(s.name) end
    local indent = s.name and "    " or "  "
    for _, f in ipairs(s.fields) do
      out[#out + 1] = ("%s%s = %s,"):format(indent, f.key, lua_value(get(r, f)))
    end
    if s.name then out[#out + 1] = "  }," end
  end
  out[#out + 1] = "}"
  return table.concat(out, "\n") .. "\n"
end

return M
