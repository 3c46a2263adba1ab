-- lua/moonspeed/recipe.lua — load, merge, override and validate recipes.
--
-- A recipe is a Lua file that returns a table, or `extend(base, overrides)`.
-- It runs in a sandbox (sandbox.lua): no io, os, require, load, dofile, debug,
-- ffi ... Only plain Lua (math, string, table, pairs, ...) and these helpers:
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
-- Merge rules (extend, and the schema defaults beneath every recipe; layer.lua):
--   * maps (tables with string keys) merge deeply, key by key;
--   * lists (tables with keys 1..n) and scalars are replaced whole;
--   * `remove` deletes a key; assigning nil cannot (Lua drops nil fields).
-- A value may be a function where it must be computed: it receives the resolved
-- recipe and returns the value, e.g. `warmup = function(r) return r.train.steps // 20 end`
-- (written math.floor(r.train.steps / 20) in LuaJIT). It runs after every merge and override.
--
-- Validation: every key must be in schema.lua. An unknown key is an error with
-- file:line (srcindex.lua) and the closest valid key (layer.lua); so is a key
-- set twice in one table constructor. A wrong type or range names the key and
-- what is allowed. Cross-key rules (batch divisible by micro_batch, ...) are
-- checked on the resolved recipe, here.
--
-- Command-line overrides `section.key=value` (overrides.lua) go through the
-- same checks. A key whose name is unique across sections may drop its
-- section: `lr=3e-4` is `train.lr=3e-4`. Values are parsed by the key's type
-- (true/false/yes/no/1/0 for booleans; strings as written, quotes optional).
--
-- This module is the front door: load, load_experiment and from_table run a
-- recipe through the sandbox, its overrides and resolution (defaults, computed
-- values, cross-key rules); serialize writes a resolved recipe back as a file.

local schema = require "moonspeed.schema"
local layer = require "moonspeed.layer"
local override = require "moonspeed.overrides"
local sandbox = require "moonspeed.sandbox"
local sweep = require "moonspeed.sweep"

local fail, value_problem, check_layer = layer.fail, layer.value_problem, layer.check

local M = {}

-- The merge rules (layer.lua), for callers: recipe.merge(base, over) and recipe.remove.
M.remove = layer.remove
M.merge = layer.merge

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

local function recipe_name(path)
  return path:match("([^/]+)%.lua$") or path:match("([^/]+)$")
end

local function is_sweep(t) return getmetatable(t) == sweep.Sweep end

-- Loads a recipe file with command-line overrides (a list of "key=value").
-- Returns the resolved recipe and info { file, name, overrides, origin, files,
-- warnings, deepspeed }: files lists every file read ({ path, text }), the
-- recipe first, then its bases, which also carry from (the file that extends
-- them), name (as extend names them) and near (found next to that file rather
-- than in the recipes folder); warnings the sentences to show (DeepSpeed keys
-- with no effect ...); deepspeed the translations of the DeepSpeed configs read.
function M.load(path, overrides)
  overrides = overrides or {}
  local t, origin, files, found, warnings = sandbox.run(path)
  if is_sweep(t) then
    fail(path, ("this is an experiment of %d variants (sweep); `moonspeed run %s --list` lists them; run and k8s "
      .. "take it whole, or one variant with --only N"):format(#t.variants, path))
  end
  t = override.apply(M.merge({}, t), overrides, origin)
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
  local t, origin, files, found, warnings = sandbox.run(path)
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
  local labels = sweep.labels(t.variants)
  local varied = {}
  for _, a in ipairs(t.variants) do for _, kv in ipairs(a) do varied[kv[1]] = true end end
  for _, text in ipairs(overrides) do
    local f = override.parse(text)
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
      local vlayer = sweep.variant_layer(a, ("%s (variant %d, %s)"):format(t.at, i, labels[i]), vorigin)
      local vt = override.apply(M.merge(t.base, vlayer), overrides, vorigin)
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
  t = override.apply(M.merge({}, t), overrides, origin)
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
