-- lua/moonspeed/deepspeed.lua — DeepSpeed JSON configs as recipe layers, and what each key became.
--
-- translate(cfg, opts) reads a decoded DeepSpeed config and returns a
-- translation { layer, origin, entries, warnings }:
--   layer     recipe keys (a table to merge, as extend() takes it); values that
--             depend on the world size or the model are computed values
--             (functions of the resolved recipe), so the same config gives the
--             right numbers under `moonspeed run`, `launch` and `k8s`;
--   origin    recipe key -> "FILE: json.key.path", for messages;
--   entries   one per DeepSpeed key read, in a fixed order: { kind, ds, value,
--             to, how } with kind "set", "auto", "default" (absent: DeepSpeed's
--             default applies) or "info";
--   warnings  sentences: keys with no effect in moonspeed (with the reason),
--             keys moonspeed does not know, approximations.
-- Contradictions and impossible values raise "FILE: json.key.path: what; what
-- would be right".
--
-- "auto" means what the Hugging Face integration makes of it: the training
-- arguments' value. A recipe's training arguments are the recipe itself, so an
-- "auto" key sets nothing and the recipe's value stands (the base recipe's, the
-- defaults', an override's); the model-derived ones (bucket sizes) come from
-- model.dim or the Hugging Face config. A key that is absent takes DeepSpeed's
-- default where that changes training (no clipping, fp32, ZeRO stage 0, no
-- offload); an absent optimizer or scheduler leaves the recipe's, as the
-- Trainer would bring its own. Numbers may be written 1e8 or "1e8".
--
-- The world size (DeepSpeed's batch rule train_batch_size = micro x
-- accumulation x world) is opts.world, else the launched world (MS_WORLD_SIZE,
-- PET_NNODES x PET_NPROC_PER_NODE, WORLD_SIZE), else the recipe's cluster
-- (nodes x ranks per node) when it names one, else 1.

local jc = require "moonspeed.jsonconf"
local json = require "moonspeed.json"
local schema = require "moonspeed.schema"

local M = {}

local shown, as_number = jc.shown, jc.as_number

---------------------------------------------------------------------------
-- The world, and the model behind the "auto" bucket sizes
---------------------------------------------------------------------------

-- The world of the ranks this process belongs to, from the environment; nil when not launched.
function M.launched_world(getenv)
  getenv = getenv or os.getenv
  local n = tonumber(getenv("MS_WORLD_SIZE") or "")
  if n then return n, "MS_WORLD_SIZE" end
  local nodes, nproc = tonumber(getenv("PET_NNODES") or ""), tonumber(getenv("PET_NPROC_PER_NODE") or "")
  if nodes and nproc then return nodes * nproc, "PET_NNODES x PET_NPROC_PER_NODE" end
  n = tonumber(getenv("WORLD_SIZE") or "")
  if n then return n, "WORLD_SIZE" end
end

-- The world size a recipe r (a resolved recipe or a computed value's view) runs at, and its source.
function M.world_of(r, given)
  if given then return given, "as given" end
  local n, src = M.launched_world()
  if n then return n, src end
  local c = r.cluster
  if c.nodes > 1 or c.gpus_per_node > 0 or c.instance ~= "" then
    return require("moonspeed.cluster").world(c), "cluster.nodes x ranks per node"
  end
  return 1, "one process"
end

-- Parameters of one transformer block (one unit) of the recipe's model.
local function block_params(m)
  local kv = m.dim / m.n_heads * m.n_kv_heads
  return 2 * m.dim + 2 * m.dim * m.dim + 2 * m.dim * kv + 3 * m.dim * m.ffn_dim
end
M.block_params = block_params

---------------------------------------------------------------------------
-- The sections
---------------------------------------------------------------------------

local function precision(rd)
  local bf = rd:get("bf16.enabled", "bool", { auto = true })
  local fp = rd:get("fp16.enabled", "bool", { auto = true })
  rd:section("bf16")
  local fp16 = rd:section("fp16")
  if bf == true and fp == true then
    rd:fail("fp16.enabled", "bf16.enabled and fp16.enabled are both true (DeepSpeed refuses this too); enable one")
  end
  if bf == true then
    rd:set("bf16.enabled", true, "precision", "bf16")
  elseif fp == true then
    rd:set("fp16.enabled", true, "precision", "bf16", "moonspeed has no fp16")
    rd:warn("fp16.enabled = true: moonspeed has no fp16 and trains in bf16 instead (the same 16-bit compute and " ..
      "memory; bf16's 8 exponent bits need no loss scaling); for exact fp32 set precision = \"fp32\"")
  elseif bf == "auto" or fp == "auto" then
    rd:entry("auto", bf == "auto" and "bf16.enabled" or "fp16.enabled", "auto", "precision",
      "the recipe's, like Hugging Face's the bf16/fp16 training arguments")
  else
    local which = (bf == nil and fp == nil) and "default" or "set"
    rd:put(bf ~= nil and "bf16.enabled" or "fp16.enabled", "precision", "fp32")
    rd:entry(which, bf ~= nil and "bf16.enabled" or (fp ~= nil and "fp16.enabled" or "bf16/fp16"),
      bf ~= nil and bf or fp, "precision", which == "default" and "DeepSpeed trains in fp32 unless bf16 or fp16 is enabled" or nil)
  end
  local why = "bf16 needs no loss scaling"
  for _, k in ipairs({ "loss_scale", "initial_scale_power", "loss_scale_window", "hysteresis",
                       "consecutive_hysteresis", "min_loss_scale", "auto_cast", "fp16_master_weights_and_grads" }) do
    local v = rd:raw("fp16." .. k)
    if v ~= nil then rd:ignore("fp16." .. k, v, why) end
  end
  for _, k in ipairs({ "immediate_grad_update", "check_grad_overflow", "bf16_master_weights_and_grads",
                       "bf16_optimizer_states" }) do
    local v = rd:raw("bf16." .. k)
    if v ~= nil then rd:ignore("bf16." .. k, v, "moonspeed keeps fp32 master weights, gradients and optimizer state") end
  end
  return fp16
end

local NO_BUCKETS = "moonspeed reduces and gathers whole units (one transformer block each), not buckets"
local ZERO_IGNORED = {
  overlap_comm = "moonspeed schedules each unit's collectives itself (at stage 3 it gathers zero.prefetch units ahead); there is no switch",
  contiguous_gradients = "each unit's gradients already live in one flat buffer",
  reduce_bucket_size = NO_BUCKETS,
  allgather_bucket_size = NO_BUCKETS,
  reduce_scatter = "the stage decides the collectives (stages 2 and 3 reduce-scatter each unit's gradients)",
  allgather_partitions = "the stage decides the collectives",
  stage3_param_persistence_threshold = "every unit is sharded whole; small tensors live in their unit's buffer and are gathered with it",
  stage3_max_live_parameters = "at most 1 + zero.prefetch units are gathered at a time; each is released right after use",
  stage3_max_reuse_distance = "at most 1 + zero.prefetch units are gathered at a time; each is released right after use",
  sub_group_size = "the optimizer steps one unit's shard at a time",
  stage3_gather_16bit_weights_on_model_save = "model.bin and `moonspeed export` always hold the whole model",
  gather_16bit_weights_on_model_save = "model.bin and `moonspeed export` always hold the whole model",
  stage3_gather_fp16_weights_on_model_save = "model.bin and `moonspeed export` always hold the whole model",
}
local ZERO_NO_EQUIVALENT = { "round_robin_gradients", "elastic_checkpoint", "ignore_unused_parameters",
  "load_from_fp32_weights", "legacy_stage1", "memory_efficient_linear", "zero_hpz_partition_size",
  "zero_quantized_weights", "zero_quantized_gradients", "zero_quantized_nontrainable_weights", "mics_shard_size",
  "mics_hierarchical_params_gather", "use_multi_rank_bucket_allreduce", "stage3_model_persistence_threshold",
  "log_trace_cache_warnings", "module_granularity_threshold", "use_all_reduce_for_fetch_params",
  "cpu_offload_params", "cpu_offload_use_pin_memory", "stage3_module_granularity_threshold" }

local OFFLOAD_IGNORED = { "buffer_count", "buffer_size", "max_in_cpu", "fast_init", "nvme_path", "pipeline",
  "pipeline_read", "pipeline_write" }

-- offload_optimizer or offload_param: the device, pinning, and what has no effect.
local function offload(rd, stage, what)
  local p = "zero_optimization." .. what
  local sec = rd:section(p)
  local to = what == "offload_optimizer" and "offload.optimizer" or "offload.params"
  if not sec then
    rd:put(p, to, "none")
    rd:entry("default", p, nil, to, "no " .. what .. ": nothing is offloaded")
    return
  end
  local dev = rd:get(p .. ".device", "string") or "none"
  if dev == "nvme" then
    rd:fail(p .. ".device", 'moonspeed offloads to host memory only, not to NVMe; write "cpu"')
  elseif dev ~= "cpu" and dev ~= "none" then
    rd:fail(p .. ".device", ('must be "cpu", "nvme" or "none", got %s'):format(shown(dev)))
  end
  if dev == "cpu" and what == "offload_param" and stage ~= 3 then
    rd:fail(p .. ".device", ("offloading parameters needs ZeRO stage 3 (zero_optimization.stage is %d); DeepSpeed refuses it too")
      :format(stage))
  end
  if dev == "cpu" and stage == 0 then
    rd:fail(p .. ".device", "offloading the optimizer needs ZeRO stage 1, 2 or 3 (zero_optimization.stage is 0); DeepSpeed refuses it too")
  end
  rd:set(p .. ".device", dev, to, dev)
  local pin = rd:get(p .. ".pin_memory", "bool")
  if pin == true then
    rd:entry("info", p .. ".pin_memory", true, nil, "always: moonspeed pins its host buffers")
  elseif pin == false then
    rd:ignore(p .. ".pin_memory", false, "moonspeed always pins host memory (the transfers overlap compute only from pinned memory)")
  end
  if what == "offload_optimizer" then
    local ratio = rd:get(p .. ".ratio", "number", { min = 0, max = 1 })
    if ratio then rd:set(p .. ".ratio", ratio, "offload.ratio", ratio) end
  end
  for _, k in ipairs(OFFLOAD_IGNORED) do
    local v = rd:raw(p .. "." .. k)
    if v ~= nil then rd:ignore(p .. "." .. k, v, "settings of DeepSpeed's NVMe and buffer pipeline; moonspeed has none") end
  end
end

-- stage3_prefetch_bucket_size -> zero.prefetch: the whole units (transformer
-- blocks) it takes to hold that many parameters, rounded up, at most 2; 0 = none.
local function prefetch_units(bucket)
  return function(r)
    if bucket == 0 then return 0 end
    return math.min(2, math.ceil(bucket / block_params(r.model)))
  end
end

local function zero(rd, hidden)
  local z = "zero_optimization"
  local raw = rd:raw(z)
  if type(raw) == "boolean" then   -- DeepSpeed's old spelling: true = stage 1
    rd:set(z, raw, "zero.stage", raw and 1 or 0)
    rd:put(z, "offload.optimizer", "none")
    rd:put(z, "offload.params", "none")
    return
  end
  local sec = rd:section(z)
  local stage = sec and rd:get(z .. ".stage", "int")
  if stage and (stage < 0 or stage > 3) then
    rd:fail(z .. ".stage", ("ZeRO has stages 0, 1, 2 and 3, got %s"):format(shown(rd:raw(z .. ".stage"))))
  end
  if stage then
    rd:set(z .. ".stage", stage, "zero.stage", stage)
  else
    rd:put(z, "zero.stage", 0)
    rd:entry("default", z .. ".stage", nil, "zero.stage", "DeepSpeed's default stage is 0")
    stage = 0
  end
  local legacy = sec and rd:get(z .. ".cpu_offload", "bool")
  if legacy then   -- the old spelling of offload_optimizer.device = "cpu"
    if stage == 0 then rd:fail(z .. ".cpu_offload", "offloading the optimizer needs ZeRO stage 1, 2 or 3") end
    rd:set(z .. ".cpu_offload", true, "offload.optimizer", "cpu")
    if rd:raw(z .. ".offload_optimizer") ~= nil then
      rd:fail(z .. ".cpu_offload", "give either cpu_offload (the old spelling) or offload_optimizer, not both")
    end
  else
    offload(rd, stage, "offload_optimizer")
  end
  offload(rd, stage, "offload_param")
  -- stage3_prefetch_bucket_size: the one bucket with a moonspeed meaning
  local pk = z .. ".stage3_prefetch_bucket_size"
  local pb = sec and rd:get(pk, "number", { min = 0, auto = true })
  if stage == 3 then
    local bucket, kind, how = pb, "set", nil
    if pb == "auto" then
      bucket = nil
      if hidden then
        bucket, kind = math.floor(0.9 * hidden * hidden), "auto"
        how = ("0.9 x hidden_size^2 = %s (as Hugging Face resolves it)"):format(schema.fmtnum(bucket))
      end
    elseif pb == nil then
      bucket, kind, how = 5e7, "default", "DeepSpeed's default 5e7"
    end
    if bucket then
      rd:put(pk, "zero.prefetch", prefetch_units(bucket))
      rd:entry(kind, pk, pb, "zero.prefetch", (how and (how .. "; ") or "") ..
        "the whole units (transformer blocks) that hold that many parameters, rounded up, at most 2")
    else   -- "auto" with the model known only when the recipe resolves
      rd:put(pk, "zero.prefetch", function(r) return prefetch_units(math.floor(0.9 * r.model.dim ^ 2))(r) end)
      rd:entry("auto", pk, pb, "zero.prefetch", "0.9 x model.dim^2 (as Hugging Face resolves it) in whole units " ..
        "(transformer blocks), rounded up, at most 2")
    end
  elseif pb ~= nil then
    rd:ignore(pk, pb, "only stage 3 prefetches parameters")
  end
  local model_auto = { reduce_bucket_size = { 1, "hidden_size^2" },
                       stage3_param_persistence_threshold = { 10, "10 x hidden_size" } }
  for k, why in pairs(ZERO_IGNORED) do
    local key = z .. "." .. k
    local v = sec and rd:raw(key)
    if v ~= nil then
      local num = (type(v) == "number" or type(v) == "string") and as_number(v)
      if v == "auto" and model_auto[k] then
        local a = model_auto[k]
        local val = hidden and (k == "reduce_bucket_size" and hidden * hidden or a[1] * hidden)
        why = ('"auto" = %s%s; %s'):format(a[2], val and (" = " .. schema.fmtnum(val)) or "", why)
      elseif type(v) == "string" and not num then
        rd:fail(key, ("must be a number or \"auto\", got %s"):format(shown(v)))
      end
      rd:ignore(key, v, why)
    end
  end
  for _, k in ipairs(ZERO_NO_EQUIVALENT) do
    local v = sec and rd:raw(z .. "." .. k)
    if v ~= nil then rd:ignore(z .. "." .. k, v, "no moonspeed equivalent") end
  end
end

local function clipping(rd)
  local v = rd:get("gradient_clipping", "number", { min = 0, auto = true })
  if v == "auto" then
    rd:entry("auto", "gradient_clipping", v, "train.clip", "the recipe's, like Hugging Face's max_grad_norm")
  elseif v then
    rd:set("gradient_clipping", v, "train.clip", v)
  else
    rd:put("gradient_clipping", "train.clip", 0)
    rd:entry("default", "gradient_clipping", nil, "train.clip", "DeepSpeed clips nothing unless gradient_clipping is set")
  end
end

-- train_batch_size = micro x accumulation x world (DeepSpeed's rule).
local function batch(rd, given_world)
  local T = rd:get("train_batch_size", "int", { min = 1, auto = true })
  local Mi = rd:get("train_micro_batch_size_per_gpu", "int", { min = 1, auto = true })
  local G = rd:get("gradient_accumulation_steps", "int", { min = 1, auto = true })
  local tn, mn, gn = type(T) == "number", type(Mi) == "number", type(G) == "number"
  local file = rd.file
  if T == nil and Mi == nil then
    rd:fail("train_batch_size", "give train_batch_size or train_micro_batch_size_per_gpu (or both, or \"auto\"); " ..
      "DeepSpeed needs one of them too")
  end
  if tn and mn and gn and T % (Mi * G) ~= 0 then
    rd:fail("train_batch_size", ("train_batch_size (%d) must equal train_micro_batch_size_per_gpu (%d) x " ..
      "gradient_accumulation_steps (%d) x world size, but %d is not a multiple of %d x %d = %d whatever the world size")
      :format(T, Mi, G, T, Mi, G, Mi * G))
  end
  if tn and mn and T % Mi ~= 0 then
    rd:fail("train_batch_size", ("train_batch_size (%d) must be a multiple of train_micro_batch_size_per_gpu (%d)")
      :format(T, Mi))
  end
  if tn and gn and T % G ~= 0 then
    rd:fail("train_batch_size", ("train_batch_size (%d) must be a multiple of gradient_accumulation_steps (%d)")
      :format(T, G))
  end
  local function world(r)
    local w, src = M.world_of(r, given_world)
    return w, ("%d (%s)"):format(w, src)
  end
  -- micro batch
  if mn then
    rd:set("train_micro_batch_size_per_gpu", Mi, "train.micro_batch", Mi)
  elseif Mi == "auto" or not tn or G == "auto" then
    rd:entry(Mi == "auto" and "auto" or "default", "train_micro_batch_size_per_gpu", Mi, "train.micro_batch",
      "the recipe's, like Hugging Face's per_device_train_batch_size")
  else
    rd:put("train_micro_batch_size_per_gpu", "train.micro_batch", function(r)
      local w, ws = world(r)
      local per = w * (G or 1)
      if T % per ~= 0 then
        error(("%s: train_batch_size (%d) must be divisible by world size %s x gradient_accumulation_steps (%d) " ..
          "to give train_micro_batch_size_per_gpu"):format(file, T, ws, G or 1), 0)
      end
      return T / per
    end)
    rd:entry("default", "train_micro_batch_size_per_gpu", nil, "train.micro_batch",
      "train_batch_size / (world size x gradient_accumulation_steps), as DeepSpeed derives it")
  end
  -- global batch
  if tn then
    rd:put("train_batch_size", "train.batch", function(r)
      local w, ws = world(r)
      local m = r.train.micro_batch
      if gn and T ~= m * G * w then
        error(("%s: train_batch_size (%d) != train_micro_batch_size_per_gpu (%d) x gradient_accumulation_steps (%d) " ..
          "x world size %s = %d, which DeepSpeed refuses; this config is for a world of %s"):format(file, T, m, G, ws,
          m * G * w, T % (m * G) == 0 and tostring(T / (m * G)) .. " ranks" or "another micro batch"), 0)
      end
      if T % (m * w) ~= 0 then
        error(("%s: train_batch_size (%d) is not a multiple of train_micro_batch_size_per_gpu (%d) x world size %s = %d")
          :format(file, T, m, ws, m * w), 0)
      end
      return T
    end)
    rd:entry("set", "train_batch_size", T, "train.batch", gn and "checked: = micro x gradient_accumulation_steps x world"
      or "gradient accumulation = train.batch / (micro x world)")
  elseif G == "auto" or (T == "auto" and not gn) then
    rd:entry("auto", "train_batch_size", T, "train.batch",
      "the recipe's, like Hugging Face's world x per_device_train_batch_size x gradient_accumulation_steps")
  else
    rd:put(T == "auto" and "train_batch_size" or "train_micro_batch_size_per_gpu", "train.batch", function(r)
      local w = world(r)
      return r.train.micro_batch * (G or 1) * w
    end)
    rd:entry(T == "auto" and "auto" or "default", "train_batch_size", T, "train.batch",
      "micro x gradient_accumulation_steps x world, as DeepSpeed derives it")
  end
  if gn then
    rd:entry("info", "gradient_accumulation_steps", G, nil, "moonspeed accumulates train.batch / (micro x world) micro-batches")
  elseif G == "auto" then
    rd:entry("auto", "gradient_accumulation_steps", G, nil, "the recipe's train.batch / (micro x world), like Hugging Face's gradient_accumulation_steps")
  end
end

local OPTIMIZERS = { adam = true, adamw = true }

local function optimizer(rd)
  local sec = rd:section("optimizer")
  if not sec then
    rd:entry("info", "optimizer", nil, nil, "absent: the recipe's AdamW settings (train.lr, beta1, beta2, eps, " ..
      "weight_decay) stand, as the Hugging Face Trainer brings its own optimizer")
    return nil
  end
  local t = rd:get("optimizer.type", "string")
  if not t then rd:fail("optimizer.type", 'missing: write "AdamW" (or "Adam")') end
  if not OPTIMIZERS[t:lower()] then
    rd:fail("optimizer.type", ("moonspeed trains with AdamW only; %s is not supported (write \"AdamW\" or \"Adam\", or " ..
      "remove the optimizer section to keep the recipe's AdamW)"):format(shown(t)))
  end
  rd:entry("info", "optimizer.type", t, nil, "moonspeed's AdamW (decoupled weight decay, not on norms and embeddings)")
  local P = "optimizer.params."
  local lr = rd:get(P .. "lr", "number", { gt = 0, auto = true })
  if lr == "auto" then
    rd:entry("auto", P .. "lr", lr, "train.lr", "the recipe's, like Hugging Face's learning_rate")
  elseif lr then
    rd:set(P .. "lr", lr, "train.lr", lr)
  end
  local betas = rd:raw(P .. "betas")
  if betas == "auto" then
    rd:entry("auto", P .. "betas", betas, "train.beta1", "the recipe's, like Hugging Face's adam_beta1, adam_beta2")
  elseif betas ~= nil then
    if type(betas) ~= "table" or #betas ~= 2 or not as_number(betas[1]) or not as_number(betas[2]) then
      rd:fail(P .. "betas", ("must be a list of two numbers [beta1, beta2] or \"auto\", got %s"):format(shown(betas)))
    end
    rd:set(P .. "betas", betas, "train.beta1", as_number(betas[1]))
    rd:put(P .. "betas", "train.beta2", as_number(betas[2]))
  end
  for _, kt in ipairs({ { "eps", "train.eps" }, { "weight_decay", "train.weight_decay" } }) do
    local k, to = kt[1], kt[2]
    local v = rd:get(P .. k, "number", { min = 0, auto = true })
    if v == "auto" then
      rd:entry("auto", P .. k, v, to, ("the recipe's, like Hugging Face's %s"):format(k == "eps" and "adam_epsilon" or "weight_decay"))
    elseif v then
      rd:set(P .. k, v, to, v)
    end
  end
  local wmode = rd:get(P .. "adam_w_mode", "bool")
  local wd = rd:get(P .. "weight_decay", "number", { min = 0, auto = true })
  if wmode == false and t:lower() == "adam" and wd ~= 0 then
    rd:fail(P .. "adam_w_mode", "false asks for Adam with L2 regularization; moonspeed's AdamW decays weights " ..
      "decoupled only: set adam_w_mode to true (DeepSpeed's default) or weight_decay to 0")
  elseif wmode ~= nil then
    rd:entry("info", P .. "adam_w_mode", wmode, nil, "decoupled weight decay, as moonspeed's AdamW")
  end
  if rd:get(P .. "amsgrad", "bool") == true then
    rd:fail(P .. "amsgrad", "moonspeed's AdamW has no AMSGrad variant; set it to false")
  end
  if rd:get(P .. "bias_correction", "bool") == false then
    rd:fail(P .. "bias_correction", "moonspeed's AdamW always corrects the moments' bias; set it to true")
  end
  for _, k in ipairs({ "torch_adam", "fused", "foreach", "capturable", "set_grad_none" }) do
    local v = rd:raw(P .. k)
    if v ~= nil then rd:ignore(P .. k, v, "moonspeed has one AdamW implementation per device") end
  end
  rd.seen["optimizer.params"] = true
  return lr
end

local SCHEDULES = { WarmupLR = "constant", WarmupDecayLR = "linear", WarmupCosineLR = "cosine" }

local function scheduler(rd, opt_lr)
  local sec = rd:section("scheduler")
  if not sec then
    rd:entry("info", "scheduler", nil, nil, "absent: the recipe's train.schedule, warmup and min_lr stand")
    return
  end
  local t = rd:get("scheduler.type", "string")
  if not t or not SCHEDULES[t] then
    local near
    for name in pairs(SCHEDULES) do if t and name:lower() == t:lower() then near = name end end
    rd:fail("scheduler.type", ("%s is not a schedule moonspeed has; write %s (WarmupLR: constant after warmup, " ..
      "WarmupDecayLR: linear to 0, WarmupCosineLR: cosine), or remove the scheduler section to keep the recipe's")
      :format(t and shown(t) or "a missing type", near and ("\"" .. near .. "\"") or "WarmupLR, WarmupDecayLR or WarmupCosineLR"))
  end
  rd:set("scheduler.type", t, "train.schedule", SCHEDULES[t])
  rd.seen["scheduler.params"] = true
  local P = "scheduler.params."
  local warm = rd:get(P .. "warmup_num_steps", "int", { min = 0, auto = true })
  if warm == "auto" then
    rd:entry("auto", P .. "warmup_num_steps", warm, "train.warmup", "the recipe's, like Hugging Face's warmup_steps")
  else
    warm = warm or 1000
    rd:put(P .. "warmup_num_steps", "train.warmup", warm)
    rd:entry(rd:raw(P .. "warmup_num_steps") and "set" or "default", P .. "warmup_num_steps",
      rd:raw(P .. "warmup_num_steps"), "train.warmup", not rd:raw(P .. "warmup_num_steps") and "DeepSpeed's default 1000" or nil)
  end
  local wtype = rd:get(P .. "warmup_type", "string") or "log"
  if wtype ~= "log" and wtype ~= "linear" then
    rd:fail(P .. "warmup_type", ('must be "log" or "linear", got %s'):format(shown(wtype)))
  end
  if wtype == "log" and warm ~= 0 then
    rd:warn(("%s: moonspeed warms up linearly; DeepSpeed's warmup_type is \"log\"%s, so the first %s steps' " ..
      "learning rates differ (set warmup_type to \"linear\" to silence this)"):format(P .. "warmup_type",
      rd:raw(P .. "warmup_type") and "" or " by default", warm == "auto" and "train.warmup" or tostring(warm)))
  end
  local total = rd:get(P .. "total_num_steps", "int", { min = 1, auto = true })
  if t ~= "WarmupLR" then
    if total == nil then
      rd:fail(P .. "total_num_steps", t .. " needs total_num_steps (the steps its decay spans; moonspeed's train.steps)")
    elseif total == "auto" then
      rd:entry("auto", P .. "total_num_steps", total, "train.steps", "the recipe's, like Hugging Face's training steps")
    else
      if type(warm) == "number" and warm > total then
        rd:fail(P .. "warmup_num_steps", ("%d warmup steps are more than total_num_steps (%d)"):format(warm, total))
      end
      rd:set(P .. "total_num_steps", total, "train.steps", total)
    end
  elseif total ~= nil then
    rd:ignore(P .. "total_num_steps", total, "WarmupLR holds its rate after warmup; train.steps alone sets the run's length")
  end
  if t == "WarmupCosineLR" then
    local cmin = rd:get(P .. "cos_min_ratio", "number", { min = 0, max = 1 }) or 1e-4
    rd:put(P .. "cos_min_ratio", "train.min_lr", function(r) return cmin * r.train.lr end)
    rd:entry(rd:raw(P .. "cos_min_ratio") and "set" or "default", P .. "cos_min_ratio", rd:raw(P .. "cos_min_ratio"),
      "train.min_lr", ("%s x train.lr"):format(schema.fmtnum(cmin)))
    local wmin = rd:get(P .. "warmup_min_ratio", "number", { min = 0, max = 1 })
    if wmin and wmin > 0 then
      rd:warn(("%s = %s: moonspeed's warmup starts from 0, not from %s x train.lr"):format(P .. "warmup_min_ratio",
        shown(wmin), shown(wmin)))
    end
    for _, k in ipairs({ "warmup_min_lr", "warmup_max_lr" }) do
      if rd:raw(P .. k) ~= nil then rd:ignore(P .. k, rd:raw(P .. k), "WarmupCosineLR takes its rate from the optimizer") end
    end
    return
  end
  -- WarmupLR and WarmupDecayLR: warmup_min_lr -> warmup_max_lr, which overrides the optimizer's lr
  local wmin = rd:get(P .. "warmup_min_lr", "number", { min = 0, auto = true })
  if type(wmin) == "number" and wmin > 0 then
    rd:warn(("%s = %s: moonspeed's warmup starts from 0, not from warmup_min_lr"):format(P .. "warmup_min_lr", shown(wmin)))
  end
  local wmax = rd:get(P .. "warmup_max_lr", "number", { gt = 0, auto = true })
  if wmax == "auto" then
    rd:entry("auto", P .. "warmup_max_lr", wmax, "train.lr",
      type(opt_lr) == "number" and "optimizer.params.lr" or "the recipe's, like Hugging Face's learning_rate")
  else
    local v = wmax or 0.001
    if type(opt_lr) == "number" and opt_lr ~= v then
      rd:warn(("%s = %s overrides optimizer.params.lr = %s, as in DeepSpeed (the scheduler sets the rate)")
        :format(P .. "warmup_max_lr", schema.fmtnum(v), schema.fmtnum(opt_lr)))
    end
    rd:set(P .. "warmup_max_lr", wmax, "train.lr", v, not wmax and "DeepSpeed's default 0.001" or nil)
  end
  if t == "WarmupDecayLR" then
    rd:put("scheduler.type", "train.min_lr", 0)
    rd:entry("info", "scheduler.type", t, "train.min_lr", "WarmupDecayLR decays to 0")
  end
end

local function activation_checkpointing(rd)
  local sec = rd:section("activation_checkpointing")
  if not sec then return end
  rd:put("activation_checkpointing", "train.checkpoint_activations", true)
  rd:entry("set", "activation_checkpointing", "{...}", "train.checkpoint_activations",
    "the section is there: each block keeps its input and recomputes its forward in backward")
  local why = {
    partition_activations = "no model parallelism in moonspeed: each rank keeps its own blocks' inputs",
    cpu_checkpointing = "the kept block inputs stay on the device",
    contiguous_memory_optimization = "the kept inputs already live in the plan's arena",
    number_checkpoints = "moonspeed keeps one input per block",
    synchronize_checkpoint_boundary = "no switch: moonspeed's step is one schedule",
    profile = "metrics.jsonl has the step times",
  }
  for k, w in pairs(why) do
    local v = rd:raw("activation_checkpointing." .. k)
    if v ~= nil then rd:ignore("activation_checkpointing." .. k, v, w) end
  end
end

local MONITORS = "metrics.jsonl records every step (moonspeed plot, moonspeed compare)"
local TOP_IGNORED = {
  prescale_gradients = "gradients are averaged once, in fp32", gradient_predivide_factor = "gradients are averaged once, in fp32",
  communication_data_type = "moonspeed reduces in fp32 (bf16 payloads are summed in fp32)",
  sparse_gradients = "no sparse gradients", zero_allow_untested_optimizer = "moonspeed has one optimizer",
  zero_force_ds_cpu_optimizer = "moonspeed has one optimizer", dump_state = "moonspeed check prints the resolved recipe",
  flops_profiler = MONITORS, tensorboard = MONITORS, wandb = MONITORS, csv_monitor = MONITORS, comet = MONITORS,
  comms_logger = "metrics.jsonl records each step's collectives (comm)", memory_breakdown = "moonspeed plan prints the memory",
  amp = "precision is the recipe's precision", checkpoint = "the recipe's checkpoint section (every, keep, async)",
  data_types = "gradients accumulate in fp32", elasticity = "no elastic training", autotuning = "no autotuning",
  compression_training = "no compression", data_efficiency = "no data sampling schemes",
  curriculum_learning = "no curriculum", aio = "no NVMe offload", pipeline = "no pipeline parallelism",
  sequence_parallel_size = "no sequence parallelism", timers = MONITORS, eigenvalue = "no eigenvalue monitor",
  progressive_layer_drop = "no layer drop", hybrid_engine = "no hybrid engine", nebula = "the recipe's checkpoint section",
  use_node_local_storage = "the recipe's checkpoint section", weight_quantization = "no quantization",
  graph_harvesting = "no graph capture", torch_autocast = "precision is the recipe's precision",
  compile = "no torch.compile", disable_allgather = "the stage decides the collectives",
}

---------------------------------------------------------------------------
-- The translation
---------------------------------------------------------------------------

-- Leaf paths of cfg not read (unknown to moonspeed).
local function unread(cfg, seen, prefix, out)
  for k, v in pairs(cfg) do
    local p = prefix and (prefix .. "." .. k) or k
    if not seen[p] then
      if type(v) == "table" and v ~= json.null and #v == 0 and next(v) ~= nil then
        unread(v, seen, p, out)
      else
        out[#out + 1] = p
      end
    end
  end
  return out
end

-- cfg: a decoded config; opts.file (for messages), opts.world (the world
-- size, else as the module header says), opts.hidden (the model's hidden size
-- for the "auto" bucket sizes, when known before resolving).
function M.translate(cfg, opts)
  opts = opts or {}
  local file = opts.file or "deepspeed config"
  if type(cfg) ~= "table" or cfg == json.null or (#cfg > 0) then
    error(("%s: a DeepSpeed config is a JSON object {...}"):format(file), 0)
  end
  local rd = jc.reader(cfg, file)
  precision(rd)
  zero(rd, opts.hidden)
  clipping(rd)
  batch(rd, opts.world)
  local lr = optimizer(rd)
  scheduler(rd, lr)
  local every = rd:get("steps_per_print", "int", { min = 1 })
  if every then rd:set("steps_per_print", every, "log.every", every, "progress lines when the output is not a terminal") end
  local wcb = rd:get("wall_clock_breakdown", "bool")
  if wcb ~= nil then
    rd:entry("info", "wall_clock_breakdown", wcb, nil,
      "always on: metrics.jsonl records every step's seconds and its collectives' time (comm_seconds)")
  end
  activation_checkpointing(rd)
  for k, why in pairs(TOP_IGNORED) do
    local v = rd:raw(k)
    if v ~= nil then rd:ignore(k, type(v) == "table" and "{...}" or v, why) end
  end
  for _, k in ipairs({ "bf16", "fp16", "zero_optimization", "optimizer", "scheduler", "activation_checkpointing" }) do
    rd.seen[k] = nil   -- read as sections; their unknown keys are listed below
  end
  local unknown = unread(cfg, rd.seen, nil, {})
  table.sort(unknown)
  table.sort(rd.ignored)
  local warnings = {}
  if #rd.ignored > 0 then
    warnings[1] = ("%s: %d key%s no effect in moonspeed:\n  %s"):format(file, #rd.ignored,
      #rd.ignored == 1 and " has" or "s have", table.concat(rd.ignored, "\n  "))
  end
  if #unknown > 0 then
    warnings[#warnings + 1] = ("%s: %d key%s unknown to moonspeed and ignored: %s"):format(file, #unknown,
      #unknown == 1 and " is" or "s are", table.concat(unknown, ", "))
  end
  for _, w in ipairs(rd.warnings) do warnings[#warnings + 1] = file .. ": " .. w end
  return { layer = rd.layer, origin = rd.origin, entries = rd.entries, warnings = warnings, file = file,
           ignored = rd.ignored, unknown = unknown }
end

-- Reads and translates a DeepSpeed config file.
function M.load(path, opts)
  local cfg = jc.read_file(path)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.file = path
  return M.translate(cfg, o)
end

-- What deepspeed(path, opts) in a recipe stands for: the translation of the
-- config at path, with the model section of opts.hf_config when named.
-- near(name) finds a file next to the recipe; fail(msg) raises at the call.
function M.recipe_layer(path, opts, near, fail)
  if type(path) ~= "string" then
    fail(("deepspeed(path [, opts]): path must be the name of a DeepSpeed JSON config, got %s"):format(schema.describe(path)))
  end
  opts = opts or {}
  if type(opts) ~= "table" then fail("deepspeed(path, opts): opts must be a table { world = N, hf_config = \"config.json\" }") end
  for k in pairs(opts) do
    if k ~= "world" and k ~= "hf_config" then
      fail(("deepspeed(path, opts): unknown option %s; the options are world and hf_config"):format(tostring(k)))
    end
  end
  if opts.world ~= nil and (type(opts.world) ~= "number" or opts.world < 1 or opts.world ~= math.floor(opts.world)) then
    fail(("deepspeed: world must be a whole number of ranks >= 1, got %s"):format(schema.describe(opts.world)))
  end
  local model, hf_entries, hf_warn
  if opts.hf_config ~= nil then
    if type(opts.hf_config) ~= "string" then fail("deepspeed: hf_config must be the name of a config.json") end
    local hp = near(opts.hf_config)
    model, hf_entries, hf_warn = jc.model_from_hf(jc.read_file(hp), hp)
  end
  local tr = M.load(near(path), { world = opts.world, hidden = model and model.dim })
  if model then
    tr.layer.model = model
    for k in pairs(model) do tr.origin["model." .. k] = opts.hf_config end
    for i, e in ipairs(hf_entries) do table.insert(tr.entries, i, e) end
    for _, w in ipairs(hf_warn) do tr.warnings[#tr.warnings + 1] = w end
  end
  return tr
end

---------------------------------------------------------------------------
-- The report: what each key became, with the resolved values
---------------------------------------------------------------------------

local function resolved(r, to)
  local f = schema.field_by_path[to]
  if not f then return "" end
  local v = f.section and r[f.section][f.key] or r[f.key]
  if type(v) == "number" then return schema.fmtnum(v) end
  return type(v) == "string" and ("%q"):format(v) or tostring(v)
end

-- Lines saying what each entry became in the resolved recipe r.
function M.report(entries, r)
  local out = {}
  local width = 0
  local left = {}
  for i, e in ipairs(entries) do
    left[i] = ("%s = %s"):format(e.ds, e.value == nil and "(absent)" or (e.value == "{...}" and "{...}" or shown(e.value)))
    if e.value == nil then left[i] = e.ds .. " (absent)" end
    width = math.max(width, #left[i])
  end
  width = math.min(width, 56)
  for i, e in ipairs(entries) do
    local right
    if e.to and r then
      right = ("%s = %s"):format(e.to, resolved(r, e.to))
      if e.to == "train.beta1" then right = right .. ", train.beta2 = " .. resolved(r, "train.beta2") end
    elseif e.to then
      right = e.to
    else
      right = ""
    end
    local tag = ({ auto = "auto: ", default = "absent: " })[e.kind] or ""
    local how = e.how and (right ~= "" and ("  (" .. tag .. e.how .. ")") or (tag .. e.how)) or (tag ~= "" and ("  (" .. tag:sub(1, -3) .. ")") or "")
    out[#out + 1] = ("%-" .. width .. "s  ->  %s%s"):format(left[i], right, how)
  end
  return out
end

return M
