-- lua/moonspeed/plan.lua — the memory plan of a recipe, and whether it fits here.
--
-- The bytes come from the engine (ms_plan_compute runs the model's layout in
-- sizing mode; the engine later reserves exactly that), so `moonspeed plan`
-- and `moonspeed run` can never disagree. This module turns the plan into a
-- table, prints it, and compares it with this machine: on the CPU the device
-- is the host, so the plan must fit in MemAvailable (/proc/meminfo); on a GPU
-- the device bytes must fit in its free memory and the host staging in
-- MemAvailable. "auto" in zero.stage and offload.optimizer is resolved
-- here, against the device the plan is for (resolve_auto).

local ffi = require "ffi"
local engine = require "moonspeed.engine"
local fmt = require "moonspeed.fmt"
local sys = require "moonspeed.sys"

local M = {}

local MEM_FIELDS = engine.MEM_FIELDS
M.MEM_FIELDS = MEM_FIELDS

local WHAT = {
  params = "the compute copy of the parameters",
  grads = "parameter gradients",
  master = "fp32 master weights (bf16 precision)",
  optimizer = "AdamW moments (2 fp32 numbers per parameter)",
  activations = "activations kept for the backward pass",
  workspace = "scratch for one op or block at a time",
  data = "token batches",
  backend = "the backend's own scratch: cuBLASLt workspace, kernels' temporaries",
  checkpoint = "this rank's state, copied for asynchronous checkpoints (checkpoint.async)",
}

local Plan = {}
Plan.__index = Plan
M.Plan = Plan

local memory_table = engine.memory_table

-- A Lua table from an ms_plan struct; r (the recipe) adds context for printing.
function M.from_struct(p, r)
  local devices = { [0] = "cpu", [1] = "cuda" }
  return setmetatable({
    device = devices[tonumber(p.device)] or tostring(p.device),
    n_units = tonumber(p.n_units),
    world_size = tonumber(p.world_size),
    zero_stage = tonumber(p.zero_stage),
    n_params = tonumber(p.n_params),
    n_params_matmul = tonumber(p.n_params_matmul),
    flops_per_token = tonumber(p.flops_per_token),
    flops_per_token_full = tonumber(p.flops_per_token_full),
    device_bytes = memory_table(p.device_bytes),
    host_bytes = memory_table(p.host_bytes),
    offload_units = tonumber(p.offload_units),
    offload_params = tonumber(p.offload_params),
    recipe = r,
  }, Plan)
end

-- The plan of a resolved recipe (allocates nothing).
-- world: plan for that many ranks (nil: the environment's world, else 1).
function M.compute(r, world)
  local cfg, anchors = engine.config(r, { data = false, world = world })
  local p = ffi.new("ms_plan")
  if engine.C.ms_plan_compute(cfg, p) ~= 0 then
    error("ms_plan_compute failed: " .. engine.last_error(), 2)
  end
  local _ = anchors
  return M.from_struct(p, r)
end

-- GPU memory "auto" leaves unplanned: the CUDA context, the libraries'
-- handles and NCCL's buffers (cuBLASLt's workspace and the kernels' scratch
-- are in the plan: its backend line).
M.AUTO_HEADROOM = 2 * 2 ^ 30

-- The device memory "auto" decides against: `budget` bytes named by
-- `source` (a cluster's GPU), else this machine's: its GPU's size (the same
-- on every rank, unlike what is free), or for the CPU MemAvailable.
local function auto_budget(r, budget, source, what)
  if budget then return budget, source end
  if r.device ~= "cuda" then
    local avail = (sys.meminfo() or {}).MemAvailable or 0
    return avail, ("the %s of MemAvailable"):format(fmt.bytes(avail))
  end
  local gpu, why = M.gpu()
  if not gpu then
    error(('%s needs to know the GPU\'s memory, and %s; run it on the GPU, name cluster.instance, or choose a value')
      :format(what, why), 0)
  end
  return gpu.total, ("the %s of GPU %d (%s)"):format(fmt.bytes(gpu.total), gpu.index, gpu.name)
end

-- What a plan needs of the memory "auto" decides against (on a GPU less
-- AUTO_HEADROOM is available to it; on the CPU device and host share the RAM).
local function auto_fits(r, p, budget)
  if r.device == "cuda" then return p.device_bytes.total <= budget - M.AUTO_HEADROOM end
  return M.need(p) <= budget
end

-- zero.stage = "auto": 0 for one rank (nothing to shard); for several, the
-- lowest stage whose plan fits (the least communication), else 3.
local function resolve_zero(r, world, budget, source)
  r.zero.stage = 0
  local p = M.compute(r, world)
  if p.world_size == 1 then return 'zero.stage = "auto" -> 0: one rank, nothing to shard' end
  for stage = 0, 3 do
    r.zero.stage = stage
    p = M.compute(r, world)
    if auto_fits(r, p, budget) then
      return ('zero.stage = "auto" -> %d: the lowest stage with which a rank of %d fits %s'):format(stage,
        p.world_size, source)
    end
  end
  return ('zero.stage = "auto" -> 3: no stage makes a rank of %d fit %s'):format(p.world_size, source)
end

-- offload.optimizer = "auto": the smallest offloaded share (whole units, the
-- last first) whose plan fits; nothing offloaded when all fits, all of it at
-- worst; on the CPU none (the host memory is the device's).
local function resolve_offload(r, world, budget, source)
  r.offload.optimizer = "none"
  if r.device ~= "cuda" then return 'offload.optimizer = "auto" -> "none": on the CPU the host memory is the device\'s' end
  local p = M.compute(r, world)
  if auto_fits(r, p, budget) then return ('offload.optimizer = "auto" -> "none": everything fits %s'):format(source) end
  r.offload.optimizer = "cpu"
  local units = p.n_units
  for k = 1, units do
    r.offload.ratio = k / units
    p = M.compute(r, world)
    local fits = auto_fits(r, p, budget)
    if fits or k == units then
      return ('offload.optimizer = "auto" -> "cpu", ratio %.3f: %d of %d units offloaded, the fewest with which the '
        .. 'device needs %s of %s%s'):format(r.offload.ratio, p.offload_units, units, fmt.bytes(p.device_bytes.total),
        source, fits and (", " .. fmt.bytes(M.AUTO_HEADROOM) .. " left for the CUDA context and libraries") or " (it does not fit even so)")
    end
  end
end

-- Resolves "auto" in zero.stage and offload.optimizer in r, in that order (a
-- stage first, offload only for what no stage makes fit: the fastest layout
-- that fits), against `budget` bytes named by `source`, or this machine
-- (auto_budget). Returns the sentences saying what was chosen and why.
function M.resolve_auto(r, world, budget, source)
  local notes = {}
  local zero_auto, offload_auto = r.zero.stage == "auto", r.offload.optimizer == "auto"
  if not zero_auto and not offload_auto then return notes end
  budget, source = auto_budget(r, budget, source, zero_auto and 'zero.stage = "auto"' or 'offload.optimizer = "auto"')
  if zero_auto then
    if offload_auto then r.offload.optimizer = "none" end
    notes[#notes + 1] = resolve_zero(r, world, budget, source)
  end
  if offload_auto then notes[#notes + 1] = resolve_offload(r, world, budget, source) end
  return notes
end

-- The GPU this process takes (its local rank's), or nil and the engine's sentence saying why not.
function M.gpu()
  local info = ffi.new("ms_device_info")
  if engine.C.ms_device_query(1, info) ~= 0 then return nil, engine.last_error() end
  return { name = ffi.string(info.name), count = tonumber(info.count), index = tonumber(info.index),
           free = tonumber(info.free_bytes), total = tonumber(info.total_bytes) }
end

-- This machine for plan p: { available = bytes, total = bytes, source = "...",
-- host_available = bytes }: the RAM for a CPU plan, the GPU for a GPU plan.
-- A GPU plan on a machine without a usable GPU is an error saying so.
function M.machine(p)
  local info = sys.meminfo() or {}
  local host = { available = info.MemAvailable or 0, total = info.MemTotal or 0,
                 source = "MemAvailable in /proc/meminfo" }
  if not p or p.device ~= "cuda" then return host end
  local gpu, why = M.gpu()
  if not gpu then error(why, 0) end
  return { available = gpu.free, total = gpu.total, source = ("free memory of GPU %d, %s"):format(gpu.index, gpu.name),
           host_available = host.available }
end

-- Bytes the plan needs on this machine's device (CPU: device and host share the RAM).
function M.need(p)
  if p.device == "cuda" then return p.device_bytes.total end
  return p.device_bytes.total + p.host_bytes.total
end

-- fits (bool), need, available; a GPU plan's host staging must fit the RAM too.
function M.fits(p, machine)
  machine = machine or M.machine(p)
  local need = M.need(p)
  local host_ok = not machine.host_available or p.host_bytes.total <= machine.host_available
  return need <= machine.available and host_ok, need, machine.available
end

-- The largest parts of the plan, as "optimizer 59.80 GiB".
function M.largest(p, n)
  local parts = {}
  for _, k in ipairs(MEM_FIELDS) do
    if k ~= "total" then
      local b = p.device_bytes[k] + p.host_bytes[k]
      if b > 0 then parts[#parts + 1] = { k, b } end
    end
  end
  table.sort(parts, function(a, b) return a[2] > b[2] end)
  local out = {}
  for i = 1, math.min(n or 3, #parts) do
    out[i] = ("%s %s"):format(parts[i][1], fmt.bytes(parts[i][2]))
  end
  return out
end

-- The verdict lines: whether it fits, and why not.
function M.verdict(p, machine)
  if not machine then
    local got, m = pcall(M.machine, p)
    if not got then return "cannot run here: " .. tostring(m) end
    machine = m
  end
  local ok, need, have = M.fits(p, machine)
  local lines = {}
  lines[#lines + 1] = ("this machine: %s available of %s (%s)"):format(
    fmt.bytes(have), fmt.bytes(machine.total), machine.source)
  if ok then
    lines[#lines + 1] = ("fits: the plan needs %s, %s to spare"):format(fmt.bytes(need), fmt.bytes(have - need))
  else
    lines[#lines + 1] = ("does not fit: the plan needs %s (%d bytes), %s more than the %s available"):format(
      fmt.bytes(need), need, fmt.bytes(need - have), fmt.bytes(have))
    lines[#lines + 1] = "  largest parts: " .. table.concat(M.largest(p, 3), ", ")
    local r = p.recipe
    local hints = {}
    if r and p.device_bytes.activations > 0.25 * need then
      if not r.train.checkpoint_activations then hints[#hints + 1] = "train.checkpoint_activations = true" end
      if r.train.micro_batch > 1 then hints[#hints + 1] = "a smaller train.micro_batch" end
      hints[#hints + 1] = "a shorter train.seq_len"
    end
    if p.device_bytes.params + p.device_bytes.grads + p.device_bytes.master + p.device_bytes.optimizer > have then
      hints[#hints + 1] = "the weights, gradients and optimizer state alone exceed this machine: "
        .. "shard them over more devices (zero), offload the optimizer state (offload.optimizer = \"cpu\" or \"auto\"), "
        .. "or train a smaller model"
    end
    if #hints > 0 then lines[#lines + 1] = "  to shrink it: " .. table.concat(hints, "; ") end
  end
  return table.concat(lines, "\n")
end

-- The bytes of one checkpoint, all ranks' files together: the fp32 master
-- weights and both Adam moments of every parameter (headers aside).
function M.checkpoint_bytes(n_params) return 12 * n_params end

-- The plan as a table for humans (what `moonspeed plan` prints).
function M.format(p, title, machine)
  local r = p.recipe
  local out = {}
  local head = title or "plan"
  if r then
    head = ("%s: %s, %s parameters (%d layers, d %d, %d heads, %d kv heads, vocab %d), %s on %s"):format(
      head, r.model.name, fmt.count(p.n_params), r.model.n_layers, r.model.dim, r.model.n_heads,
      r.model.n_kv_heads, r.model.vocab_size, r.precision, p.device)
  else
    head = ("%s: %s parameters on %s"):format(head, fmt.count(p.n_params), p.device)
  end
  out[#out + 1] = head
  if r then
    local tokens = r.train.batch * r.train.seq_len
    out[#out + 1] = ("  %d units; %s training FLOP/token; %d tokens/step (batch %d x seq_len %d, micro_batch %d%s)"):format(
      p.n_units, fmt.si(p.flops_per_token), tokens, r.train.batch, r.train.seq_len, r.train.micro_batch,
      r.train.checkpoint_activations and ", activation checkpointing"
        or (r.train.selective_checkpoint and ", selective checkpointing" or ""))
    if p.world_size > 1 or p.zero_stage > 0 then
      out[#out + 1] = ("  per rank of %d, ZeRO stage %d"):format(p.world_size, p.zero_stage)
    end
  end
  if p.offload_units > 0 then
    out[#out + 1] = ("  optimizer offloaded: %d of %d units (%s parameters, %.0f%%, the last units first): their fp32 "
      .. "master weights, Adam moments and gradients in host memory, updated by the CPU"):format(p.offload_units,
      p.n_units, fmt.count(p.offload_params), 100 * p.offload_params / p.n_params)
  end
  for _, note in ipairs(p.auto_notes or {}) do out[#out + 1] = "  " .. note end
  out[#out + 1] = ""
  local rows = { { "", ("device (%s)"):format(p.device), "host", "" } }
  for _, k in ipairs(MEM_FIELDS) do
    rows[#rows + 1] = { k, fmt.bytes(p.device_bytes[k]), fmt.bytes(p.host_bytes[k]), k ~= "total" and WHAT[k] or "" }
  end
  out[#out + 1] = fmt.columns(rows, { [2] = true, [3] = true }, "  ")
  if r then
    out[#out + 1] = ("  disk: a checkpoint takes %s (12 bytes a parameter; up to checkpoint.keep + 1 = %d on disk while "
      .. "one is written), model.bin %s (the fp32 weights, written at the end)"):format(
      fmt.bytes(M.checkpoint_bytes(p.n_params)), r.checkpoint.keep + 1, fmt.bytes(4 * p.n_params))
  end
  out[#out + 1] = ""
  out[#out + 1] = M.verdict(p, machine)
  local c = r and M.cluster(r)
  if c then
    out[#out + 1] = ""
    for _, line in ipairs(M.cluster_lines(c, r)) do out[#out + 1] = line end
  end
  return table.concat(out, "\n")
end

-- A recipe whose cluster names an instance type: one rank's plan at the
-- cluster's world against one GPU's memory, and the gradient traffic of a step
-- against the network. Returns { world, gpu_bytes, need, fits, network_bytes,
-- network_seconds, instance } or nil when no instance is named. The bytes are
-- the reference (CPU) backend's plan, where bf16 takes 4 bytes: an upper bound
-- for the GPU. The traffic is each rank's share of ZeRO's collectives
-- (ring algorithms: gradients reduced, stage 3 also gathers the parameters in
-- forward and backward); a lower bound on the time at the instance's Gbps.
function M.cluster(r)
  local inst = r.cluster and r.cluster.instance ~= "" and require("moonspeed.instances").get(r.cluster.instance)
  if not inst then return nil end
  local per_node = r.cluster.gpus_per_node > 0 and r.cluster.gpus_per_node or inst.gpus
  local world = r.cluster.nodes * per_node
  local p = M.compute(r, world)
  local need = p.device_bytes.total
  local gpu = inst.gpu_memory_gib * 2 ^ 30
  local share = (world - 1) / world
  local grad_bytes = (r.precision == "bf16" and 2 or 4) * p.n_params
  local traffic = 2 * share * grad_bytes                             -- reduce-scatter + all-gather (or all-reduce)
  if r.zero.stage == 3 then traffic = traffic + 2 * share * grad_bytes end  -- parameters gathered twice
  local seconds = r.cluster.nodes > 1 and traffic * 8 / (inst.network_gbps * 1e9) or 0
  -- offload: each step this rank's part of the offloaded gradients goes down and of the parameters
  -- up, in the compute dtype (a 1/world shard from ZeRO stage 1 on)
  local pcie = p.offload_params * (r.precision == "bf16" and 2 or 4) / (r.zero.stage >= 1 and world or 1)
  return { world = world, instance = inst, gpu_bytes = gpu, need = need, fits = need <= gpu,
           host_need = p.host_bytes.total * per_node, ram_bytes = inst.ram_gib * 2 ^ 30,
           network_bytes = traffic, network_seconds = seconds, pcie_bytes = pcie,
           pcie_seconds = pcie / (inst.pcie_gbs * 1e9), plan = p }
end

-- The ranks of a recipe's cluster, or nil when it names no instance.
function M.cluster_world(r)
  local inst = r.cluster.instance ~= "" and require("moonspeed.instances").get(r.cluster.instance)
  if not inst then return nil end
  return r.cluster.nodes * (r.cluster.gpus_per_node > 0 and r.cluster.gpus_per_node or inst.gpus)
end

-- One GPU's memory of a recipe's cluster and a phrase naming it (what
-- offload.optimizer = "auto" is resolved against), or nil.
function M.cluster_budget(r)
  local inst = r.cluster.instance ~= "" and require("moonspeed.instances").get(r.cluster.instance)
  if not inst then return nil end
  return inst.gpu_memory_gib * 2 ^ 30, ("the %s GiB of one %s of cluster.instance %s"):format(
    inst.gpu_memory_gib, inst.gpu, inst.name)
end

-- The lines `moonspeed plan` adds for a cluster.
function M.cluster_lines(c, r)
  local inst = c.instance
  local lines = { ("cluster: %d x %s (%s), %d rank%s"):format(r.cluster.nodes, inst.name,
    require("moonspeed.instances").describe(inst), c.world, c.world == 1 and "" or "s") }
  lines[#lines + 1] = ("  one rank needs %s on its %s (%s GiB): %s"):format(fmt.bytes(c.need), inst.gpu,
    inst.gpu_memory_gib, c.fits and "fits" or ("does not fit, " .. fmt.bytes(c.need - c.gpu_bytes) .. " over"))
  local host_fits = c.host_need <= 0.85 * c.ram_bytes -- cluster.memory = "auto" gives a pod 85% of the RAM
  lines[#lines + 1] = ("  its host memory: %s per rank, %s per node of %s GiB: %s"):format(
    fmt.bytes(c.plan.host_bytes.total), fmt.bytes(c.host_need), inst.ram_gib,
    host_fits and "fits in the pod's 85%" or "does not fit in the pod's 85%")
  if c.pcie_bytes > 0 then
    lines[#lines + 1] = ("  offload moves %s down and up again per step over PCIe: at least %s each way at %d GB/s"):format(
      fmt.bytes(c.pcie_bytes), fmt.duration(c.pcie_seconds), inst.pcie_gbs)
  end
  if r.cluster.nodes > 1 then
    lines[#lines + 1] = ("  each rank moves %s a step over the network: at least %s at %d Gbps%s"):format(
      fmt.bytes(c.network_bytes), fmt.duration(c.network_seconds), inst.network_gbps,
      inst.gpudirect_rdma and "" or " (no GPUDirect RDMA: staged through host memory)")
  end
  return lines
end

Plan.__tostring = function(p) return M.format(p) end

return M
