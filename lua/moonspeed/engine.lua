-- lua/moonspeed/engine.lua — the engine as Lua objects, through LuaJIT's FFI.
--
--   local engine = require "moonspeed.engine"
--   local e = engine.new("recipes/default.lua", { "train.steps=10" })
--   local s = e:step()             -- { step, loss, lr, grad_norm, tokens_per_s, ... }
--   print(e:eval())                -- held-out loss
--   print(e:generate("In the beginning", { tokens = 100 }))
--   e:free()
--
-- The declarations come from the public header (build/lua/moonspeed/cdef.lua,
-- generated from engine/include/moonspeed.h). Inside the moonspeed executable
-- the library is the executable itself (ffi.C); under a plain luajit (busted)
-- it is build/libmoonspeed.so beside the Lua root, or $MOONSPEED_LIB.
--
-- Indices on the Lua side are 1-based: units 1..n (unit 1 is "embed"),
-- tensors 1..n within a unit. Names ("block.0.attn.wq") are the engine's.
-- Caller mistakes raise error(msg, 2), pointing at the caller's line; engine
-- failures raise "<C function> failed: <ms_last_error()>".

local ffi = require "ffi"
local sys = require "moonspeed.sys"
local fmt = require "moonspeed.fmt"

if not pcall(ffi.typeof, "ms_config") then ffi.cdef(require "moonspeed.cdef") end
if not pcall(ffi.typeof, "ms_lua_engine") then
  ffi.cdef "typedef struct ms_lua_engine { ms_engine *h; } ms_lua_engine;"
end

local M = {}

-- The Lua root: MOONSPEED_ROOT (set by the executable) or two folders above this file.
local function root()
  local r = rawget(_G, "MOONSPEED_ROOT")
  if r then return r end
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return src:match("^(.*)/lua/moonspeed/engine%.lua$") or (src:match("^lua/moonspeed/engine%.lua$") and ".") or "."
end
M.root = root

local function load_library()
  if pcall(function() return ffi.C.ms_version end) then return ffi.C, "the moonspeed executable" end
  local path = os.getenv("MOONSPEED_LIB") or (root() .. "/build/libmoonspeed.so")
  local ok, lib = pcall(ffi.load, path)
  if not ok then
    error(("cannot load the engine library %s: %s (build it with `make`)"):format(path, tostring(lib)), 0)
  end
  -- Pin the library for the life of the process: when the Lua state closes,
  -- LuaJIT unloads it, and the worker threads of its BLAS and OpenMP pools
  -- would then run unmapped code. RTLD_NODELETE (0x1000) | RTLD_NOW (2).
  pcall(ffi.cdef, "void *dlopen(const char *file, int mode);")
  pcall(function() return ffi.C.dlopen(path, 0x1002) end)
  return lib, path
end

local C, library_path = load_library()
M.C = C
M.library = library_path

local function last_error() return ffi.string(C.ms_last_error()) end

-- Engine failure: op and the engine's sentence, raised at the caller of the method.
local function check(status, op)
  if status ~= 0 then
    local msg = last_error()
    if msg:sub(1, #op + 1) == op .. ":" then msg = msg:sub(#op + 3) end
    error(("%s failed: %s"):format(op, msg), 3)
  end
end

function M.version() return ffi.string(C.ms_version()) end
function M.last_error() return last_error() end

---------------------------------------------------------------------------
-- Recipes -> ms_config
---------------------------------------------------------------------------

local SCHEDULES = { constant = 0, linear = 1, cosine = 2 }
local PRECISIONS = { fp32 = 0, bf16 = 1 }
local DEVICES = { cpu = 0, cuda = 1 }

-- Fills an ms_config from a resolved recipe. opts.data = false leaves the shard
-- paths NULL (sampling needs no data). Returns the cdata and the Lua strings it
-- points to (keep them alive as long as the config is used).
function M.config(r, opts)
  opts = opts or {}
  local cfg = ffi.new("ms_config")
  check(C.ms_config_defaults(cfg), "ms_config_defaults")
  local m, t = cfg.model, cfg.train
  local rm, rt = r.model, r.train
  m.vocab_size, m.dim, m.n_layers = rm.vocab_size, rm.dim, rm.n_layers
  m.n_heads, m.n_kv_heads, m.ffn_dim = rm.n_heads, rm.n_kv_heads, rm.ffn_dim
  m.max_seq_len, m.tie_embeddings = rm.max_seq_len, rm.tie_embeddings and 1 or 0
  m.rope_theta, m.norm_eps, m.init_std = rm.rope_theta, rm.norm_eps, rm.init_std
  t.steps, t.batch, t.micro_batch, t.seq_len = rt.steps, rt.batch, rt.micro_batch, rt.seq_len
  t.warmup, t.schedule = rt.warmup, SCHEDULES[rt.schedule]
  t.lr, t.min_lr, t.beta1, t.beta2, t.eps = rt.lr, rt.min_lr, rt.beta1, rt.beta2, rt.eps
  t.weight_decay, t.clip = rt.weight_decay, rt.clip
  t.checkpoint_activations = rt.checkpoint_activations and 1 or (rt.selective_checkpoint and 2 or 0)
  t.eval_batches, t.seed = rt.eval_batches, rt.seed
  t.skip_nonfinite = rt.nan == "skip" and 1 or 0
  cfg.precision, cfg.device, cfg.threads = PRECISIONS[r.precision], DEVICES[r.device], r.threads
  cfg.loss_chunk = rt.loss_chunk
  -- "auto" is resolved by the commands that plan (plan.resolve_auto); the
  -- others (check, doctor) see it as the default
  cfg.zero_stage, cfg.zero_prefetch = r.zero.stage == "auto" and 0 or r.zero.stage, r.zero.prefetch
  cfg.offload_optimizer, cfg.offload_ratio = r.offload.optimizer == "cpu" and 1 or 0, r.offload.ratio
  cfg.offload_overlap = r.offload.overlap and 1 or 0
  cfg.offload_params = r.offload.params == "cpu" and 1 or 0
  cfg.checkpoint_async = r.checkpoint.async and 1 or 0
  cfg.comm_timeout_ms = math.floor(r.comm.timeout_s * 1000 + 0.5)
  cfg.world_size = opts.world or 0
  local anchors = { r.data.tokenizer, nil, nil, r.comm.provider, r.init.from }
  -- the shards must carry the id of data.tokenizer (a path resolves to its vocabulary's id)
  if opts.data ~= false then anchors[1] = require("moonspeed.tokenizer").recipe_id(r) end
  cfg.tokenizer = anchors[1]
  if r.data.doc_mask then -- documents start at the tokenizer's BOS (any id will do for a plan)
    local ok, tok = pcall(require("moonspeed.tokenizer").for_recipe, r)
    cfg.doc_mask, cfg.bos_token = 1, ok and tok.bos or 0
  end
  if r.comm.provider ~= "" then cfg.comm_provider = anchors[4] end
  if r.init.from ~= "" then cfg.init_from = anchors[5] end
  if opts.data ~= false then
    anchors[2], anchors[3] = r.data.train, r.data.val
    cfg.train_path, cfg.val_path = anchors[2], anchors[3]
  end
  return cfg, anchors
end

-- Runs ms_config_check on a resolved recipe; returns nil or the engine's sentence.
function M.config_problem(r)
  local cfg, anchors = M.config(r, { data = false })
  local st = C.ms_config_check(cfg)
  local _ = anchors
  if st ~= 0 then return last_error() end
  return nil
end

-- Peak GFLOP/s for MFU: log.peak_gflops, or 32 fp32 FLOP/cycle per core x clock x threads.
function M.peak_gflops(r)
  if r.log.peak_gflops and r.log.peak_gflops > 0 then return r.log.peak_gflops end
  if r.device == "cuda" then
    local gpu = require("moonspeed.plan").gpu()
    local peak = gpu and require("moonspeed.instances").gpu_peak_gflops(gpu.name, r.precision)
    if peak then return peak end
  end
  local threads = (r.threads and r.threads > 0) and r.threads or sys.nproc()
  local mhz = sys.cpu_mhz() or 2500
  return 32 * mhz / 1000 * threads
end

---------------------------------------------------------------------------
-- Pretty objects: step stats, memory reports, units, tensors
---------------------------------------------------------------------------

local Stats = {}
Stats.__index = Stats
Stats.__tostring = function(s)
  return ("step %d  loss %.4f  lr %.3e  grad_norm %.3f  %s tok/s  %.2f GFLOP/s  mfu %.1f%%  (%s)"):format(
    s.step, s.loss, s.lr, s.grad_norm, fmt.si(s.tokens_per_s), s.gflops, s.mfu * 100, fmt.duration(s.seconds))
end
M.Stats = Stats

local MEM_FIELDS = { "params", "grads", "master", "optimizer", "activations", "workspace", "data", "backend",
  "checkpoint", "total" }
M.MEM_FIELDS = MEM_FIELDS

local function memory_table(m)
  local t = {}
  for _, k in ipairs(MEM_FIELDS) do t[k] = tonumber(m[k]) end
  return t
end
M.memory_table = memory_table

local Memory = {}
Memory.__index = Memory
Memory.__tostring = function(r)
  local rows = { { "", "reserved", "used" } }
  for _, k in ipairs(MEM_FIELDS) do
    rows[#rows + 1] = { k, fmt.bytes(r.reserved[k]), fmt.bytes(r.used[k]) }
  end
  return "memory (" .. r.reservations .. " reservations since create)\n" .. fmt.columns(rows, { [2] = true, [3] = true }, "  ")
end
M.Memory = Memory

local Units = {}
Units.__index = Units
Units.__tostring = function(us)
  local rows = { { "#", "unit", "tensors", "params", "padded" } }
  local total = 0
  for i, u in ipairs(us) do
    rows[#rows + 1] = { tostring(i), u.name, tostring(u.n_tensors), tostring(u.numel), tostring(u.padded_numel) }
    total = total + u.numel
  end
  rows[#rows + 1] = { "", "total", "", tostring(total), "" }
  return fmt.columns(rows, { [1] = true, [3] = true, [4] = true, [5] = true }, "  ")
end
M.Units = Units

local DTYPES = { [0] = "f32", [1] = "bf16", [2] = "i32", [3] = "u32" }
local VIEWS = { param = 0, grad = 1, master = 2 }

local Tensor = {}
M.Tensor = Tensor

local function shape_string(shape)
  local s = {}
  for i, d in ipairs(shape) do s[i] = tostring(d) end
  return "(" .. table.concat(s, ", ") .. (#s == 1 and ",)" or ")")
end

Tensor.__index = function(t, k)
  if k == "values" or k == "grad" or k == "master" then
    local v = Tensor.read(t, k == "values" and "param" or k)
    rawset(t, k, v)
    return v
  end
  return Tensor[k]
end

Tensor.__len = function(t) return t.numel end

Tensor.__tostring = function(t)
  local v = t.values
  local n = math.min(#v, 6)
  local first = {}
  for i = 1, n do first[i] = ("%.4g"):format(v[i]) end
  local st = t:stats()
  return ("tensor %s %s %s  mean %.4g  std %.4g  min %.4g  max %.4g\n  [%s%s]"):format(
    t.name, shape_string(t.shape), t.dtype, st.mean, st.std, st.min, st.max,
    table.concat(first, ", "), #v > n and (", ... (%d values)"):format(#v) or "")
end

-- Reads a view ("param", "grad" or "master") as a fresh Lua list.
function Tensor.read(t, view)
  local code = VIEWS[view or "param"]
  if not code then error(("tensor:read: view %q is unknown; use param, grad or master"):format(tostring(view)), 2) end
  local e = t.engine
  if e.h == nil then error("tensor:read: the engine has been freed", 2) end
  local buf = ffi.new("float[?]", math.max(t.numel, 1))
  check(C.ms_engine_tensor_read(e.h, t.unit - 1, t.index - 1, code, 0, buf, t.numel), "ms_engine_tensor_read")
  local out = {}
  for i = 1, t.numel do out[i] = buf[i - 1] end
  return out
end

-- Re-reads the values (after steps).
function Tensor.refresh(t)
  rawset(t, "values", nil); rawset(t, "grad", nil); rawset(t, "master", nil)
  return t
end

-- Writes new master values: a list of numel numbers, or a function(i) -> value.
function Tensor.set(t, values)
  local e = t.engine
  if e.h == nil then error("tensor:set: the engine has been freed", 2) end
  local buf = ffi.new("float[?]", math.max(t.numel, 1))
  if type(values) == "function" then
    for i = 1, t.numel do buf[i - 1] = values(i) end
  elseif type(values) == "table" then
    if #values ~= t.numel then
      error(("tensor:set: %s has %d values, got %d"):format(t.name, t.numel, #values), 2)
    end
    for i = 1, t.numel do buf[i - 1] = values[i] end
  else
    error("tensor:set: expected a list of numbers or a function(i)", 2)
  end
  check(C.ms_engine_tensor_write(e.h, t.unit - 1, t.index - 1, 0, buf, t.numel), "ms_engine_tensor_write")
  return t:refresh()
end

function Tensor.stats(t)
  local v = t.values
  local sum, sq, lo, hi = 0, 0, math.huge, -math.huge
  for i = 1, #v do
    local x = v[i]
    sum, sq = sum + x, sq + x * x
    if x < lo then lo = x end
    if x > hi then hi = x end
  end
  local n = math.max(#v, 1)
  local mean = sum / n
  return { mean = mean, std = math.sqrt(math.max(sq / n - mean * mean, 0)), min = lo, max = hi, n = #v }
end

---------------------------------------------------------------------------
-- The engine object
---------------------------------------------------------------------------

local Engine = {}
local side = setmetatable({}, { __mode = "k" })  -- engine cdata -> Lua-side fields

local function state(e) return side[e] end

local mt = {
  __index = function(e, k)
    local m = Engine[k]
    if m ~= nil then return m end
    local s = side[e]
    return s and s[k]
  end,
  __tostring = function(e)
    local s = side[e]
    if e.h == nil then return "engine (freed)" end
    return ("engine %s: %s parameters, %d units, step %d, %s on %s"):format(
      s.recipe.model.name, fmt.count(s.n_params), tonumber(C.ms_engine_unit_count(e.h)),
      tonumber(C.ms_engine_get_step(e.h)), s.recipe.precision, s.recipe.device)
  end,
  __gc = function(e)
    if e.h ~= nil then C.ms_engine_free(e.h); e.h = nil end
  end,
}
local EngineBox = ffi.metatype("ms_lua_engine", mt)

local function live(e, what)
  if e.h == nil then error(("%s: the engine has been freed"):format(what), 3) end
  return e.h
end

-- Creates an engine from a resolved recipe (or a recipe file / table, with
-- overrides). opts.data = false: no training or validation data (sampling).
function M.new(r, overrides, opts)
  local recipe = require "moonspeed.recipe"
  local info
  if type(r) == "string" then
    local ok, res, inf = pcall(recipe.load, r, overrides)
    if not ok then error(res, 0) end
    r, info = res, inf
  elseif type(r) == "table" then
    local ok, res, inf = pcall(recipe.from_table, r, overrides)
    if not ok then error(res, 0) end
    r, info = res, inf
  else
    error("engine.new: expected a recipe (file name or table)", 2)
  end
  opts = opts or {}
  info = opts.info or info
  local cfg, anchors = M.config(r, opts)
  local out = ffi.new("ms_engine *[1]")
  check(C.ms_engine_create(cfg, out), "ms_engine_create")
  local e = EngineBox(out[0])
  local p = ffi.new("ms_plan")
  C.ms_engine_plan(e.h, p)
  side[e] = {
    recipe = r, info = info, anchors = anchors, peak = M.peak_gflops(r),
    n_params = tonumber(p.n_params), offloads = p.offload_units > 0, stats = ffi.new("ms_step_stats"),
    lossbuf = ffi.new("float[1]"),
  }
  return e
end

-- Frees the engine now; calling it again is harmless.
function Engine:free()
  if self.h ~= nil then
    C.ms_engine_free(self.h)
    self.h = nil
  end
end

function Engine:alive() return self.h ~= nil end

local COMM_KINDS = { "all_gather", "reduce_scatter", "all_reduce", "broadcast", "barrier" }

-- One optimizer step; returns its stats (step counts steps done: 1 after the first).
function Engine:step()
  local h = live(self, "e:step()")
  local s = state(self)
  check(C.ms_engine_step(h, s.stats), "ms_engine_step")
  local st = s.stats
  local seconds = tonumber(st.seconds)
  local flops = tonumber(st.flops)
  local gflops = seconds > 0 and flops / seconds / 1e9 or 0
  -- per collective kind: bytes, seconds and bus bandwidth (bytes each link carries, as nccl-tests count)
  local n = tonumber(C.ms_engine_world_size(h))
  local comm, comm_bytes, comm_seconds, bus_bytes = {}, 0, 0, 0
  for k = 0, 4 do
    local b, t = tonumber(st.comm_bytes[k]), tonumber(st.comm_seconds[k])
    if tonumber(st.comm_calls[k]) > 0 then
      local bus = b * C.ms_comm_bus_factor(k, n)
      comm[COMM_KINDS[k + 1]] = { calls = tonumber(st.comm_calls[k]), bytes = b, seconds = t,
                                  busbw = t > 0 and bus / t or 0 }
      comm_bytes, comm_seconds, bus_bytes = comm_bytes + b, comm_seconds + t, bus_bytes + bus
    end
  end
  return setmetatable({
    step = tonumber(st.step) + 1,
    loss = tonumber(st.loss),
    lr = tonumber(st.lr),
    grad_norm = tonumber(st.grad_norm),
    tokens = tonumber(st.tokens),
    seconds = seconds,
    flops = flops,
    tokens_per_s = seconds > 0 and tonumber(st.tokens) / seconds or 0,
    gflops = gflops,
    mfu = gflops / s.peak,
    comm = comm,
    comm_bytes = comm_bytes,
    comm_seconds = comm_seconds,
    busbw = comm_seconds > 0 and bus_bytes / comm_seconds or 0,
    -- the host's AdamW of offloaded units: its seconds that ended in this step, the seconds the
    -- step waited for it, and whether the update taken during the backward was redone
    offload = s.offloads and { update_s = tonumber(st.offload_update_seconds),
                               wait_s = tonumber(st.offload_wait_seconds),
                               recomputed = st.offload_recomputed ~= 0 } or nil,
    skipped = st.skipped ~= 0 or nil,
    nonfinite = st.skipped ~= 0 and ffi.string(st.nonfinite) or nil,
  }, Stats)
end

-- This process's rank and the number of ranks (1 outside a launched job).
function Engine:rank() return tonumber(C.ms_engine_rank(live(self, "e:rank()"))) end
function Engine:world_size() return tonumber(C.ms_engine_world_size(live(self, "e:world_size()"))) end
function Engine:threads() return tonumber(C.ms_engine_threads(live(self, "e:threads()"))) end

-- Mean held-out loss over train.eval_batches micro-batches (nats/token).
function Engine:eval()
  local h = live(self, "e:eval()")
  local buf = state(self).lossbuf
  check(C.ms_engine_eval(h, buf), "ms_engine_eval")
  return tonumber(buf[0])
end

-- Steps done so far; e:set_step(n) moves the schedule and the data order.
function Engine:get_step() return tonumber(C.ms_engine_get_step(live(self, "e:get_step()"))) end

function Engine:set_step(n)
  if type(n) ~= "number" or n < 0 or n ~= math.floor(n) then
    error("e:set_step(n): n must be an integer >= 0", 2)
  end
  check(C.ms_engine_set_step(live(self, "e:set_step()"), n), "ms_engine_set_step")
end

-- The peak learning rate from the next step on (the schedule scales from it).
-- With several ranks, every rank must call it between the same two steps.
function Engine:set_lr(lr)
  if type(lr) ~= "number" or not (lr > 0 and lr < 10) then
    error(("e:set_lr(lr): lr must be a number > 0 and < 10, got %s"):format(tostring(lr)), 2)
  end
  check(C.ms_engine_set_lr(live(self, "e:set_lr()"), lr), "ms_engine_set_lr")
end

-- Rank 0's bytes (a Lua string of n bytes) on every rank; collective.
function Engine:broadcast(s)
  local n = #s
  local buf = ffi.new("uint8_t[?]", math.max(n, 1))
  ffi.copy(buf, s, n)
  check(C.ms_engine_broadcast(live(self, "e:broadcast()"), buf, n), "ms_engine_broadcast")
  return ffi.string(buf, n)
end

-- Bytes reserved and used, by purpose.
function Engine:memory()
  local r = ffi.new("ms_memory_report")
  check(C.ms_engine_memory(live(self, "e:memory()"), r), "ms_engine_memory")
  return setmetatable({ reserved = memory_table(r.reserved), used = memory_table(r.used),
                        reservations = tonumber(r.reservations) }, Memory)
end

-- Starts timing every op the device runs, on its own clock, until e:profile_stop().
function Engine:profile_start()
  check(C.ms_engine_profile_start(live(self, "e:profile_start()")), "ms_engine_profile_start")
end

local PROFILE_OPS = 256 -- more distinct op names than a model has

-- Ends the window: { seconds = its length, ops = { { name, calls, seconds }, ... } },
-- the largest first; what the ops leave of the window is the device idle.
function Engine:profile_stop()
  local ops, count, window = ffi.new("ms_op_time[?]", PROFILE_OPS), ffi.new("int32_t[1]"), ffi.new("double[1]")
  check(C.ms_engine_profile_stop(live(self, "e:profile_stop()"), ops, PROFILE_OPS, count, window),
        "ms_engine_profile_stop")
  local out = { seconds = window[0], ops = {} }
  for i = 0, count[0] - 1 do
    out.ops[#out.ops + 1] = { name = ffi.string(ops[i].name), calls = tonumber(ops[i].calls),
                              seconds = ops[i].seconds }
  end
  return out
end

-- The memory plan the engine was created with (see moonspeed.plan).
function Engine:plan()
  local p = ffi.new("ms_plan")
  check(C.ms_engine_plan(live(self, "e:plan()"), p), "ms_engine_plan")
  local plan = require "moonspeed.plan"
  return plan.from_struct(p, state(self).recipe)
end

-- The units: { name, n_tensors, numel, padded_numel, index, tensors = {names} }.
function Engine:units()
  local h = live(self, "e:units()")
  local n = tonumber(C.ms_engine_unit_count(h))
  local info, ti = ffi.new("ms_unit_info"), ffi.new("ms_tensor_info")
  local list = {}
  for u = 0, n - 1 do
    check(C.ms_engine_unit(h, u, info), "ms_engine_unit")
    local names = {}
    for i = 0, info.n_tensors - 1 do
      check(C.ms_engine_tensor(h, u, i, ti), "ms_engine_tensor")
      names[#names + 1] = ffi.string(ti.name)
    end
    list[#list + 1] = { index = u + 1, name = ffi.string(info.name), n_tensors = tonumber(info.n_tensors),
                        numel = tonumber(info.numel), padded_numel = tonumber(info.padded_numel), tensors = names }
  end
  return setmetatable(list, Units)
end

local function unit_index(self, unit)
  if type(unit) == "string" then
    for _, u in ipairs(self:units()) do
      if u.name == unit then return u.index end
    end
    return nil, ("no unit named %q (see e:units())"):format(unit)
  elseif type(unit) == "number" then
    return unit
  end
  return nil, "unit must be a 1-based index or a unit name"
end

local function make_tensor(self, u, i)
  local h = self.h
  local ti = ffi.new("ms_tensor_info")
  check(C.ms_engine_tensor(h, u - 1, i - 1, ti), "ms_engine_tensor")
  local shape = {}
  for d = 0, ti.ndim - 1 do shape[#shape + 1] = tonumber(ti.shape[d]) end
  return setmetatable({
    engine = self, name = ffi.string(ti.name), unit = u, index = i, shape = shape,
    dtype = DTYPES[ti.dtype] or tostring(ti.dtype), numel = tonumber(ti.numel),
    decay = ti.decay ~= 0, offset = tonumber(ti.offset),
  }, Tensor)
end

-- Tensor i (1-based) of a unit (1-based index or name): shape, dtype, values.
function Engine:tensor(unit, i)
  local h = live(self, "e:tensor()")
  local u, err = unit_index(self, unit)
  if not u then error("e:tensor(unit, i): " .. err, 2) end
  if type(i) ~= "number" then error("e:tensor(unit, i): i must be a 1-based tensor index", 2) end
  local n = tonumber(C.ms_engine_unit_count(h))
  if u < 1 or u > n then error(("e:tensor(unit, i): unit %d does not exist; units are 1..%d"):format(u, n), 2) end
  local info = ffi.new("ms_unit_info")
  check(C.ms_engine_unit(h, u - 1, info), "ms_engine_unit")
  if i < 1 or i > info.n_tensors then
    error(("e:tensor(unit, i): unit %s has tensors 1..%d, not %s"):format(ffi.string(info.name), info.n_tensors, tostring(i)), 2)
  end
  return make_tensor(self, u, i)
end

-- A tensor by its full name, e.g. e:param("block.0.attn.wq").
function Engine:param(name)
  live(self, "e:param()")
  if type(name) ~= "string" then error("e:param(name): name must be a string like \"block.0.attn.wq\"", 2) end
  local all = {}
  for _, u in ipairs(self:units()) do
    for i, tn in ipairs(u.tensors) do
      if tn == name then return make_tensor(self, u.index, i) end
      all[#all + 1] = tn
    end
  end
  local best, best_d
  local distance = require("moonspeed.layer").distance
  for _, tn in ipairs(all) do
    local d = distance(name, tn)
    if not best_d or d < best_d then best, best_d = tn, d end
  end
  error(("e:param: no tensor named %q%s"):format(name,
    best and best_d <= 3 and ("; did you mean %q?"):format(best) or " (see e:units())"), 2)
end

-- Every tensor name, in order.
function Engine:params()
  local names = {}
  for _, u in ipairs(self:units()) do
    for _, tn in ipairs(u.tensors) do names[#names + 1] = tn end
  end
  return names
end

-- Text from the model: BOS, the prompt encoded by data.tokenizer, then up to
-- opts.tokens sampled tokens (stops at EOS). Returns the continuation (not
-- the prompt) and the number of tokens generated.
function Engine:generate(prompt, opts)
  local h = live(self, "e:generate()")
  if type(prompt) ~= "string" then error("e:generate(prompt, opts): prompt must be a string", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("e:generate(prompt, opts): opts must be a table", 2) end
  local log = state(self).recipe.log
  local tokens = opts.tokens or 200
  local temperature = opts.temperature or log.sample_temperature
  local top_k = opts.top_k or log.sample_top_k
  local seed = opts.seed or 1
  local function bad(cond, msg) if cond then error("e:generate: " .. msg, 3) end end
  bad(type(tokens) ~= "number" or tokens < 0 or tokens ~= math.floor(tokens), "tokens must be an integer >= 0")
  bad(type(temperature) ~= "number" or temperature < 0, "temperature must be a number >= 0 (0 = greedy)")
  bad(type(top_k) ~= "number" or top_k < 0 or top_k ~= math.floor(top_k), "top_k must be an integer >= 0 (0 = all)")
  bad(type(seed) ~= "number" or seed < 0 or seed ~= math.floor(seed), "seed must be an integer >= 0")
  local tok = require("moonspeed.tokenizer").for_recipe(state(self).recipe)
  local ids, n = tok:encode_cdata(prompt, { bos = true })
  local out = ffi.new("int32_t[?]", math.max(tokens, 1))
  local n_out = ffi.new("int32_t[1]")
  check(C.ms_engine_generate(h, ids, n, tokens, temperature, top_k, seed, tok.eos, out, n_out),
    "ms_engine_generate")
  return tok:decode_text(out, n_out[0]), tonumber(n_out[0])
end

-- fp32 logits of every position of one sequence: a list of n rows of
-- vocab_size numbers, for tokens (a list of n ids, 1 <= n <= train.seq_len).
-- Collective with several ranks.
function Engine:logits(tokens)
  local h = live(self, "e:logits()")
  if type(tokens) ~= "table" or #tokens == 0 then
    error("e:logits(tokens): tokens must be a non-empty list of token ids", 2)
  end
  local n, V = #tokens, state(self).recipe.model.vocab_size
  local ids = ffi.new("int32_t[?]", n)
  for i, t in ipairs(tokens) do
    if type(t) ~= "number" or t ~= math.floor(t) then
      error(("e:logits(tokens): tokens[%d] is %s, not a token id"):format(i, tostring(t)), 2)
    end
    ids[i - 1] = t
  end
  local out = ffi.new("float[?]", n * V)
  check(C.ms_engine_logits(h, ids, n, out), "ms_engine_logits")
  local rows = {}
  for p = 0, n - 1 do
    local row = {}
    for v = 0, V - 1 do row[v + 1] = out[p * V + v] end
    rows[p + 1] = row
  end
  return rows
end

-- Writes the fp32 master weights to path (atomically).
function Engine:save(path)
  local h = live(self, "e:save()")
  if type(path) ~= "string" then error("e:save(path): path must be a string", 2) end
  check(C.ms_engine_save_weights(h, path), "ms_engine_save_weights")
  return path
end

-- Loads weights saved by e:save (the shapes must match).
function Engine:load(path)
  local h = live(self, "e:load()")
  if type(path) ~= "string" then error("e:load(path): path must be a string", 2) end
  check(C.ms_engine_load_weights(h, path), "ms_engine_load_weights")
  return self
end

---------------------------------------------------------------------------
-- Checkpoint state (checkpoint.lua keeps the directories around it)
---------------------------------------------------------------------------

-- Starts writing this rank's state file into dir (collective; async: from a
-- host snapshot on a background thread).
function Engine:state_save(dir, async)
  check(C.ms_engine_state_save(live(self, "e:state_save()"), dir, async and 1 or 0), "ms_engine_state_save")
end

-- Collective. block: wait for every rank's writer. Returns false while any
-- rank is still writing (block = false), else true and every rank's file
-- record { name, bytes, crc32c }.
function Engine:state_wait(block)
  local h = live(self, "e:state_wait()")
  local n = self:world_size()
  local files, done = ffi.new("ms_state_file[?]", n), ffi.new("int32_t[1]")
  check(C.ms_engine_state_wait(h, block and 1 or 0, done, files), "ms_engine_state_wait")
  if done[0] == 0 then return false end
  local out = {}
  for i = 0, n - 1 do
    out[i + 1] = { name = ffi.string(files[i].name), bytes = tonumber(files[i].bytes), crc32c = tonumber(files[i].crc32c) }
  end
  return true, out
end

-- Loads the state saved in dir, described by its file records (collective).
-- Returns true, or false, the engine's message and its status code (a
-- damaged or foreign checkpoint leaves the engine unchanged).
function Engine:state_load(dir, files)
  local h = live(self, "e:state_load()")
  local recs = ffi.new("ms_state_file[?]", #files)
  for i, f in ipairs(files) do
    ffi.copy(recs[i - 1].name, f.name, math.min(#f.name, 63))
    recs[i - 1].bytes, recs[i - 1].crc32c = f.bytes, f.crc32c
  end
  local st = C.ms_engine_state_load(h, dir, recs, #files)
  if st ~= 0 then return false, last_error(), tonumber(st) end
  return true
end

M.STATUS_FORMAT, M.STATUS_IO = 3, 2

-- The largest value any rank passed (collective; every rank gets it).
function Engine:agree_max(value)
  local out = ffi.new("int32_t[1]")
  check(C.ms_engine_agree_max(live(self, "e:agree_max()"), value, out), "ms_engine_agree_max")
  return out[0]
end

-- A graceful stop: after watch_signals the first SIGTERM/SIGINT only sets a
-- flag that signal_pending returns (its number, 0 while none came).
function M.watch_signals() check(C.ms_signals_watch(), "ms_signals_watch") end
function M.signal_pending() return tonumber(C.ms_signal_pending()) end

-- CRC-32C and size of a whole file, or nil and the message.
function M.crc32c_file(path)
  local crc, bytes = ffi.new("uint32_t[1]"), ffi.new("uint64_t[1]")
  if C.ms_crc32c_file(path, crc, bytes) ~= 0 then return nil, last_error() end
  return tonumber(crc[0]), tonumber(bytes[0])
end

-- Durable directory operations: fsync a directory (so renames inside it
-- survive a crash), remove a tree, write a file atomically and durably.
function M.fsync_dir(path) check(C.ms_fsync_dir(path), "ms_fsync_dir") end
function M.remove_tree(path) check(C.ms_remove_tree(path), "ms_remove_tree") end
function M.write_atomic(path, text) check(C.ms_write_file(path, text, #text), "ms_write_file") end

---------------------------------------------------------------------------
-- Hugging Face export
---------------------------------------------------------------------------

-- Writes a Hugging Face Llama directory dir from the weights at source (a
-- model.bin or a run directory) for the resolved recipe r's model shape.
-- opts: dtype ("fp32" | "bf16"), max_shard_bytes, bos, eos (ids or nil).
-- Returns { shards, tensors, bytes }.
function M.export_hf(r, source, dir, opts)
  opts = opts or {}
  local cfg, anchors = M.config(r, { data = false })
  local o = ffi.new("ms_hf_export_options")
  o.dtype = opts.dtype == "bf16" and 1 or 0
  o.bos_token, o.eos_token = opts.bos or -1, opts.eos or -1
  o.max_shard_bytes = opts.max_shard_bytes or 0
  local rep = ffi.new("ms_hf_export_report")
  local st = C.ms_hf_export(cfg, source, dir, o, rep)
  local _ = anchors
  if st ~= 0 then error(last_error(), 0) end
  return { shards = tonumber(rep.shards), tensors = tonumber(rep.tensors), bytes = tonumber(rep.bytes) }
end

---------------------------------------------------------------------------
-- Data helpers
---------------------------------------------------------------------------

local function shard_table(info)
  return { version = tonumber(info.version), vocab_size = tonumber(info.vocab_size),
           n_tokens = tonumber(info.n_tokens), tokenizer = ffi.string(info.tokenizer) }
end

-- Byte-level shards from a text file: every val_every-th chunk goes to validation.
function M.prepare_bytes(text_path, train_path, val_path, val_every)
  local ti, vi = ffi.new("ms_shard_info"), ffi.new("ms_shard_info")
  check(C.ms_bytes_prepare(text_path, train_path, val_path, val_every or 20, ti, vi), "ms_bytes_prepare")
  return shard_table(ti), shard_table(vi)
end

-- The header of a token shard, or nil and the engine's message.
function M.shard_info(path)
  local info = ffi.new("ms_shard_info")
  if C.ms_shard_info_read(path, info) ~= 0 then return nil, last_error() end
  return shard_table(info)
end

return M
