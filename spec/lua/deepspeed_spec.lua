-- spec/lua/deepspeed_spec.lua — DeepSpeed configs as recipes (deepspeed.lua):
-- every key moonspeed translates, "auto" as the Hugging Face integration
-- resolves it, DeepSpeed's batch rule, the warnings, the refusals with their
-- messages, `moonspeed from-deepspeed`, and a ZeRO-3 offload config trained
-- unchanged on two CPU ranks.

local support = require "support"
local json = require "moonspeed.json"

local FIX = "spec/fixtures/deepspeed/"

-- The resolved recipe of a config (JSON text) over recipes/default.lua, and the translation.
local function translate(text, opts)
  opts = opts or {}
  local ds = require "moonspeed.deepspeed"
  local recipe = require "moonspeed.recipe"
  local cfg = assert(json.decode(text))
  local tr = ds.translate(cfg, { file = "ds.json", world = opts.world or 1, hidden = opts.hidden })
  local base = recipe.load("recipes/default.lua", opts.overrides)
  local r = recipe.resolve(recipe.merge(base, tr.layer), tr.origin, "ds.json")
  return r, tr
end

local function all_warnings(tr) return table.concat(tr.warnings, "\n") end

local function fails(text, want, opts)
  local ok, err = pcall(translate, text, opts)
  assert.is_false(ok, "accepted: " .. text)
  assert.is_truthy(tostring(err):find(want, 1, true), ("\n  want %s\n  got  %s"):format(want, tostring(err)))
end

local MICRO = '"train_micro_batch_size_per_gpu": 16'

describe("deepspeed translation", function()
  it("bf16 and fp16: bf16, fp16 as bf16 with a warning, fp32 otherwise, auto from the recipe", function()
    assert.are.equal("bf16", translate('{' .. MICRO .. ', "bf16": {"enabled": true}}').precision)
    local r, tr = translate('{' .. MICRO .. ', "fp16": {"enabled": true, "loss_scale": 0, "initial_scale_power": 16}}')
    assert.are.equal("bf16", r.precision)
    assert.matches("fp16.enabled = true: moonspeed has no fp16 and trains in bf16 instead", all_warnings(tr))
    assert.matches('fp16.initial_scale_power = 16: bf16 needs no loss scaling', all_warnings(tr))
    assert.are.equal("fp32", translate('{' .. MICRO .. ', "bf16": {"enabled": false}}').precision)
    assert.are.equal("fp32", translate('{' .. MICRO .. '}', { overrides = { "precision=bf16" } }).precision)
    assert.are.equal("bf16", translate('{' .. MICRO .. ', "bf16": {"enabled": "auto"}}',
      { overrides = { "precision=bf16" } }).precision)
  end)

  it("zero_optimization.stage 0-3 (absent: 0; true: the old spelling of stage 1)", function()
    for s = 0, 3 do
      assert.are.equal(s, translate(('{%s, "zero_optimization": {"stage": %d}}'):format(MICRO, s)).zero.stage)
    end
    assert.are.equal(1, translate('{' .. MICRO .. ', "zero_optimization": true}').zero.stage)
    assert.are.equal(0, translate('{' .. MICRO .. '}', { overrides = { "zero.stage=2" } }).zero.stage)
  end)

  it("offload_optimizer and offload_param: device, pin_memory, ratio", function()
    local r, tr = translate('{' .. MICRO .. ', "zero_optimization": {"stage": 3, ' ..
      '"offload_optimizer": {"device": "cpu", "pin_memory": true, "ratio": 0.5, "buffer_count": 4}, ' ..
      '"offload_param": {"device": "cpu", "pin_memory": false}}}')
    assert.are.same({ "cpu", "cpu", 0.5 }, { r.offload.optimizer, r.offload.params, r.offload.ratio })
    assert.matches("offload_param.pin_memory = false: moonspeed always pins host memory", all_warnings(tr))
    assert.matches("offload_optimizer.buffer_count = 4: settings of DeepSpeed's NVMe", all_warnings(tr))
    assert.is_nil(all_warnings(tr):find("offload_optimizer.pin_memory", 1, true))
    r = translate('{' .. MICRO .. ', "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "none"}}}',
      { overrides = { "offload.optimizer=cpu" } })
    assert.are.same({ "none", "none" }, { r.offload.optimizer, r.offload.params })
    r = translate('{' .. MICRO .. ', "zero_optimization": {"stage": 2, "cpu_offload": true}}')
    assert.are.equal("cpu", r.offload.optimizer)
  end)

  it("lists the ZeRO keys with no effect, each with its reason; numbers as 1e8 or \"1e8\"", function()
    local _, tr = translate('{' .. MICRO .. ', "zero_optimization": {"stage": 3, "overlap_comm": true, ' ..
      '"contiguous_gradients": true, "reduce_bucket_size": "auto", "allgather_bucket_size": "5e8", ' ..
      '"stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": 1e9, ' ..
      '"stage3_max_reuse_distance": "1e9", "sub_group_size": 1e9, "stage3_gather_16bit_weights_on_model_save": true, ' ..
      '"round_robin_gradients": true}}', { hidden = 64 })
    local want = {
      'allgather_bucket_size = "5e8": moonspeed reduces and gathers whole units (one transformer block each), not buckets',
      "contiguous_gradients = true: each unit's gradients already live in one flat buffer",
      "overlap_comm = true: moonspeed schedules each unit's collectives itself",
      'reduce_bucket_size = "auto": "auto" = hidden_size^2 = 4096; moonspeed reduces and gathers whole units',
      "round_robin_gradients = true: no moonspeed equivalent",
      "stage3_gather_16bit_weights_on_model_save = true: model.bin and `moonspeed export` always hold the whole model",
      "stage3_max_live_parameters = 1000000000: at most 1 + zero.prefetch units are gathered at a time",
      'stage3_max_reuse_distance = "1e9": at most 1 + zero.prefetch units',
      'stage3_param_persistence_threshold = "auto": "auto" = 10 x hidden_size = 640; every unit is sharded whole',
      "sub_group_size = 1000000000: the optimizer steps one unit's shard at a time",
    }
    assert.are.equal(#want, #tr.ignored)
    for i, w in ipairs(want) do
      assert.is_truthy(tr.ignored[i]:find("zero_optimization." .. w, 1, true), ("want %s\ngot  %s"):format(w, tr.ignored[i]))
    end
    assert.matches("ds.json: 10 keys have no effect in moonspeed:\n  ", all_warnings(tr))
    fails('{' .. MICRO .. ', "zero_optimization": {"reduce_bucket_size": "lots"}}',
      'ds.json: zero_optimization.reduce_bucket_size: must be a number or "auto", got "lots"')
  end)

  it("stage3_prefetch_bucket_size: the whole units that hold as many parameters, at most 2", function()
    -- one block of the default model: 2*128 + 2*128^2 + 2*128*64 + 3*128*384 = 196864 parameters
    assert.are.equal(196864, require("moonspeed.deepspeed").block_params(translate('{' .. MICRO .. '}').model))
    local function prefetch(v)
      return translate(('{%s, "zero_optimization": {"stage": 3, "stage3_prefetch_bucket_size": %s}}'):format(MICRO, v)).zero.prefetch
    end
    assert.are.same({ 0, 1, 1, 2, 2, 2 }, { prefetch("0"), prefetch("1e5"), prefetch("196864"), prefetch('"196865"'),
      prefetch("5e7"), prefetch('"auto"') + 1 })
    assert.are.equal(2, translate('{' .. MICRO .. ', "zero_optimization": {"stage": 3}}').zero.prefetch)  -- default 5e7
    local _, tr = translate('{' .. MICRO .. ', "zero_optimization": {"stage": 2, "stage3_prefetch_bucket_size": 1e6}}')
    assert.matches("stage3_prefetch_bucket_size = 1000000: only stage 3 prefetches parameters", all_warnings(tr))
  end)

  it("gradient_clipping: the value, auto from the recipe, absent = DeepSpeed's 0", function()
    assert.are.equal(0.5, translate('{' .. MICRO .. ', "gradient_clipping": 0.5}').train.clip)
    assert.are.equal(1, translate('{' .. MICRO .. ', "gradient_clipping": "auto"}').train.clip)
    assert.are.equal(0, translate('{' .. MICRO .. '}').train.clip)
  end)

  it("batch sizes by DeepSpeed's rule: train_batch_size = micro x accumulation x world", function()
    local function b(text, world, overrides)
      local r = translate("{" .. text .. "}", { world = world, overrides = overrides })
      return { r.train.batch, r.train.micro_batch }
    end
    assert.are.same({ 16, 4 }, b('"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2', 2))
    assert.are.same({ 32, 4 }, b('"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4', 2))
    assert.are.same({ 32, 8 }, b('"train_batch_size": 32, "gradient_accumulation_steps": 2', 2))
    assert.are.same({ 16, 8 }, b('"train_batch_size": 16', 2))
    assert.are.same({ 8, 4 }, b('"train_micro_batch_size_per_gpu": "4"', 2))
    assert.are.same({ 16, 4 }, b('"train_batch_size": 16, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2', 2))
    assert.are.same({ 32, 4 }, b('"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", ' ..
      '"gradient_accumulation_steps": "auto"', 2, { "train.batch=32", "train.micro_batch=4" }))
    assert.are.same({ 24, 4 }, b('"train_batch_size": "auto", "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 3', 2))
  end)

  it("optimizer: Adam and AdamW with lr, betas, eps, weight_decay; auto from the recipe", function()
    local r = translate('{' .. MICRO .. ', "optimizer": {"type": "AdamW", "params": {"lr": "3e-4", "betas": [0.8, 0.99], ' ..
      '"eps": 1e-6, "weight_decay": 0.01}}}')
    assert.are.same({ 3e-4, 0.8, 0.99, 1e-6, 0.01 }, { r.train.lr, r.train.beta1, r.train.beta2, r.train.eps, r.train.weight_decay })
    r = translate('{' .. MICRO .. ', "optimizer": {"type": "Adam", "params": {"lr": "auto", "betas": "auto", "eps": "auto", ' ..
      '"weight_decay": "auto", "torch_adam": true, "adam_w_mode": true}}}', { overrides = { "lr=5e-4" } })
    assert.are.same({ 5e-4, 0.9, 0.95, 1e-8, 0.1 }, { r.train.lr, r.train.beta1, r.train.beta2, r.train.eps, r.train.weight_decay })
  end)

  it("schedulers: WarmupLR, WarmupDecayLR and WarmupCosineLR", function()
    local r, tr = translate('{' .. MICRO .. ', "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0, ' ..
      '"warmup_max_lr": 0.003, "warmup_num_steps": 10}}}')
    assert.are.same({ "constant", 0.003, 10 }, { r.train.schedule, r.train.lr, r.train.warmup })
    assert.matches('warmup_type: moonspeed warms up linearly; DeepSpeed\'s warmup_type is "log" by default', all_warnings(tr))
    r, tr = translate('{' .. MICRO .. ', "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_max_lr": 0.002, ' ..
      '"warmup_num_steps": 5, "total_num_steps": 50, "warmup_type": "linear"}}}')
    assert.are.same({ "linear", 0.002, 0, 5, 50 }, { r.train.schedule, r.train.lr, r.train.min_lr, r.train.warmup, r.train.steps })
    assert.are.same({}, tr.warnings)
    r = translate('{' .. MICRO .. ', "optimizer": {"type": "AdamW", "params": {"lr": 0.001}}, "scheduler": ' ..
      '{"type": "WarmupCosineLR", "params": {"warmup_num_steps": 3, "total_num_steps": 40, "cos_min_ratio": 0.05, ' ..
      '"warmup_type": "linear"}}}')
    assert.are.same({ "cosine", 0.001, 3, 40 }, { r.train.schedule, r.train.lr, r.train.warmup, r.train.steps })
    assert.is_true(math.abs(r.train.min_lr - 5e-5) < 1e-18)
    r = translate('{' .. MICRO .. ', "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto", ' ..
      '"warmup_max_lr": "auto", "warmup_num_steps": "auto", "total_num_steps": "auto", "warmup_type": "linear"}}}',
      { overrides = { "train.steps=77", "train.warmup=7", "lr=4e-4" } })
    assert.are.same({ "linear", 4e-4, 7, 77 }, { r.train.schedule, r.train.lr, r.train.warmup, r.train.steps })
  end)

  it("steps_per_print, wall_clock_breakdown, activation_checkpointing, and unknown keys", function()
    local r, tr = translate('{' .. MICRO .. ', "steps_per_print": 5, "wall_clock_breakdown": true, ' ..
      '"activation_checkpointing": {"partition_activations": true, "cpu_checkpointing": true}, ' ..
      '"tensorboard": {"enabled": true}, "my_flag": 1, "zero_optimization": {"stage": 1, "new_knob": 2}}')
    assert.are.same({ 5, true }, { r.log.every, r.train.checkpoint_activations })
    local w = all_warnings(tr)
    assert.matches("activation_checkpointing.cpu_checkpointing = true: the kept block inputs stay on the device", w)
    assert.matches('tensorboard = "{...}": metrics.jsonl records every step', w, 1, true)
    assert.matches("ds.json: 2 keys are unknown to moonspeed and ignored: my_flag, zero_optimization.new_knob", w, 1, true)
    assert.is_nil(w:find("wall_clock_breakdown", 1, true))
    local lines = table.concat(require("moonspeed.deepspeed").report(tr.entries, r), "\n")
    assert.matches("wall_clock_breakdown = true%s+%->  always on: metrics.jsonl records every step's seconds", lines)
    assert.matches("steps_per_print = 5%s+%->  log.every = 5", lines)
  end)

  it("refuses contradictions and impossible values, naming the JSON key and what would be right", function()
    fails('{"train_batch_size": 32, "train_micro_batch_size_per_gpu": 3, "gradient_accumulation_steps": 2}',
      "ds.json: train_batch_size: train_batch_size (32) must equal train_micro_batch_size_per_gpu (3) x " ..
      "gradient_accumulation_steps (2) x world size, but 32 is not a multiple of 3 x 2 = 6 whatever the world size")
    fails('{"train_batch_size": 16, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2}',
      "ds.json: train_batch_size (16) != train_micro_batch_size_per_gpu (4) x gradient_accumulation_steps (2) x " ..
      "world size 1 (as given) = 8, which DeepSpeed refuses; this config is for a world of 2 ranks")
    fails('{"train_batch_size": 12, "train_micro_batch_size_per_gpu": 4}',
      "ds.json: train_batch_size (12) is not a multiple of train_micro_batch_size_per_gpu (4) x world size 2 (as given) = 8",
      { world = 2 })
    fails('{"gradient_accumulation_steps": 2}', "ds.json: train_batch_size: give train_batch_size or train_micro_batch_size_per_gpu")
    fails('{"train_batch_size": 0}', "ds.json: train_batch_size: must be an integer >= 1, got 0")
    fails('{"train_batch_size": 8.5}', 'ds.json: train_batch_size: must be an integer or "auto", got 8.5')
    fails('{' .. MICRO .. ', "zero_optimization": {"stage": 4}}', "ds.json: zero_optimization.stage: ZeRO has stages 0, 1, 2 and 3, got 4")
    fails('{' .. MICRO .. ', "zero_optimization": {"stage": "auto"}}',
      'ds.json: zero_optimization.stage: "auto" is resolved only where the Hugging Face integration resolves it')
    fails('{' .. MICRO .. ', "bf16": {"enabled": true}, "fp16": {"enabled": true}}',
      "ds.json: fp16.enabled: bf16.enabled and fp16.enabled are both true (DeepSpeed refuses this too); enable one")
    fails('{' .. MICRO .. ', "zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}}',
      "ds.json: zero_optimization.offload_param.device: offloading parameters needs ZeRO stage 3 (zero_optimization.stage is 2)")
    fails('{' .. MICRO .. ', "zero_optimization": {"offload_optimizer": {"device": "cpu"}}}',
      "offloading the optimizer needs ZeRO stage 1, 2 or 3 (zero_optimization.stage is 0)")
    fails('{' .. MICRO .. ', "zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}}',
      'zero_optimization.offload_param.device: moonspeed offloads to host memory only, not to NVMe; write "cpu"')
    fails('{' .. MICRO .. ', "optimizer": {"type": "Lamb"}}', 'ds.json: optimizer.type: moonspeed trains with AdamW only; "Lamb" is not supported')
    fails('{' .. MICRO .. ', "optimizer": {"type": "AdamW", "params": {"amsgrad": true}}}', "optimizer.params.amsgrad: moonspeed's AdamW has no AMSGrad")
    fails('{' .. MICRO .. ', "optimizer": {"type": "Adam", "params": {"adam_w_mode": false, "weight_decay": 0.1}}}',
      "optimizer.params.adam_w_mode: false asks for Adam with L2 regularization")
    fails('{' .. MICRO .. ', "optimizer": {"type": "AdamW", "params": {"lr": 20}}}',
      "ds.json: optimizer.params.lr: train.lr must be a number > 0 and < 10, got 20")
    fails('{' .. MICRO .. ', "optimizer": {"type": "AdamW", "params": {"betas": [0.9]}}}',
      'optimizer.params.betas: must be a list of two numbers [beta1, beta2] or "auto", got [0.9]')
    fails('{' .. MICRO .. ', "scheduler": {"type": "OneCycle"}}',
      'ds.json: scheduler.type: "OneCycle" is not a schedule moonspeed has; write WarmupLR, WarmupDecayLR or WarmupCosineLR')
    fails('{' .. MICRO .. ', "scheduler": {"type": "warmupcosinelr"}}', 'write "WarmupCosineLR"')
    fails('{' .. MICRO .. ', "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 5}}}',
      "scheduler.params.total_num_steps: WarmupDecayLR needs total_num_steps")
    fails('{' .. MICRO .. ', "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 50, "total_num_steps": 10}}}',
      "scheduler.params.warmup_num_steps: 50 warmup steps are more than total_num_steps (10)")
    fails('{' .. MICRO .. ', "gradient_clipping": "1e"}', 'ds.json: gradient_clipping: must be a number or "auto", got "1e"')
    fails('{' .. MICRO .. ', "zero_optimization": [1]}', "ds.json: zero_optimization: must be an object {...}, got [1]")
  end)

  it("reads a Hugging Face config.json as the model section", function()
    local jc = require "moonspeed.jsonconf"
    local model = jc.model_from_hf(jc.read_file(FIX .. "hf_config.json"), "hf_config.json")
    assert.are.same({ name = "tiny-llama", vocab_size = 258, dim = 64, n_layers = 2, n_heads = 4, n_kv_heads = 2,
      ffn_dim = 192, max_seq_len = 256, tie_embeddings = true, rope_theta = 10000, norm_eps = 1e-5, init_std = 0.02 }, model)
    local ok, err = pcall(jc.model_from_hf, { hidden_size = 64, attention_bias = true }, "c.json")
    assert.is_false(ok)
    assert.are.equal("c.json: attention_bias: moonspeed's Llama has no biases; this model cannot be built", err)
    ok, err = pcall(jc.read_file, support.write(support.tmpdir() .. "/x.json", '{\n  "a": 1,\n  "b": }'))
    assert.matches("x.json:3:8: not valid JSON: json: unexpected character$", err)
    support.cleanup()
  end)
end)

describe("moonspeed from-deepspeed and deepspeed() in recipes", function()
  assert.is_nil(support.missing_build())
  teardown(function() support.cleanup() end)

  it("prints a recipe that loads as what the config means, with the report and the warnings", function()
    local dir = support.tmpdir()
    local res = support.moonspeed({ "from-deepspeed", FIX .. "zero3_offload.json", "--hf-config", FIX .. "hf_config.json",
      "--world", "2", "-o", dir .. "/ds.lua" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches("warning: " .. FIX:gsub("%p", "%%%0") .. "zero3_offload.json: 14 keys have no effect in moonspeed:", res.stderr)
    local text = support.read(dir .. "/ds.lua")
    assert.matches("^%-%- spec/fixtures/deepspeed/zero3_offload.json, translated by moonspeed from%-deepspeed", text)
    assert.matches("\n%-%-   train_batch_size %(absent%)%s+%->  train.batch = 16  %(absent: micro x", text)
    assert.matches('\n%-%-   zero_optimization.offload_param.device = "cpu"%s+%->  offload.params = "cpu"\n', text)
    assert.matches('\nreturn extend%("default.lua", {\n  precision = "bf16",\n', text)
    -- the printed recipe is the recipe that reads the config itself, at world 2
    local recipe = require "moonspeed.recipe"
    local printed = recipe.load(dir .. "/ds.lua")
    local direct = recipe.load(FIX .. "recipe-ds.lua", { "train.eval_every=100", "train.eval_batches=16",
      "log.sample_tokens=200" })
    assert.are.equal(16, printed.train.batch)
    direct.train.batch = 16   -- deepspeed() here is at world 1: micro 4 x accumulation 2 = 8
    assert.are.same(printed, direct)
  end)

  it("refuses contradictory batch sizes and unknown stages from files, with exit status 1", function()
    local res = support.moonspeed({ "from-deepspeed", FIX .. "bad_batch.json" })
    assert.are.equal(1, res.code)
    assert.are.equal("moonspeed: spec/fixtures/deepspeed/bad_batch.json: train_batch_size: train_batch_size (32) must " ..
      "equal train_micro_batch_size_per_gpu (3) x gradient_accumulation_steps (2) x world size, but 32 is not a " ..
      "multiple of 3 x 2 = 6 whatever the world size\n", res.stderr)
    res = support.moonspeed({ "from-deepspeed", FIX .. "bad_stage.json" })
    assert.are.equal(1, res.code)
    assert.are.equal("moonspeed: spec/fixtures/deepspeed/bad_stage.json: zero_optimization.stage: ZeRO has stages 0, 1, " ..
      "2 and 3, got 4\n", res.stderr)
    res = support.moonspeed({ "from-deepspeed" })
    assert.are.equal(2, res.code)
    assert.matches("missing DS_CONFIG.json", res.stderr)
    local dir = support.tmpdir()
    support.write(dir .. "/r.lua", 'return extend("default.lua", deepspeed("missing.json"))\n')
    res = support.moonspeed({ "check", dir .. "/r.lua" })
    assert.are.equal(1, res.code)
    assert.matches('r.lua:1: deepspeed: cannot find "missing.json" next to this file', res.stderr)
  end)

  it("resolves the Hugging Face example's \"auto\" values from the recipe and says what each became", function()
    local res = support.moonspeed({ "from-deepspeed", FIX .. "hf_auto.json", "--world", "2", "train.micro_batch=4",
      "train.batch=32", "lr=3e-4" })
    assert.are.equal(0, res.code, res.stderr)
    local out = res.stdout
    assert.matches('optimizer.params.lr = "auto"%s+%->  train.lr = 0.0003  %(auto: the recipe\'s, like Hugging Face\'s learning_rate%)', out)
    assert.matches('train_batch_size = "auto"%s+%->  train.batch = 32', out)
    assert.matches('zero_optimization.stage3_prefetch_bucket_size = "auto"%s+%->  zero.prefetch = 1', out)
    assert.matches('gradient_clipping = "auto"%s+%->  train.clip = 1 ', out)
    assert.matches('\n    lr = 0.0003,\n', out)
  end)

  it("trains a ZeRO-3 offload config unchanged on two CPU ranks", function()
    assert.is_nil(support.missing_data())
    local dir = support.tmpdir()
    local res = support.moonspeed({ "launch", "--nproc-per-node", "2", FIX .. "recipe-ds.lua", "--run-dir", dir .. "/run" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches("warning: spec/fixtures/deepspeed/zero3_offload.json: 14 keys have no effect", res.stderr)
    local _, n = res.stderr:gsub("keys have no effect", "")
    assert.are.equal(1, n)   -- rank 0 alone warns
    local recipe = require "moonspeed.recipe"
    local r = recipe.load(dir .. "/run/recipe.lua")
    assert.are.same({ "bf16", 3, 2, "cpu", "cpu", 16, 4, 6, "cosine", true, 64 }, { r.precision, r.zero.stage,
      r.zero.prefetch, r.offload.optimizer, r.offload.params, r.train.batch, r.train.micro_batch, r.train.steps,
      r.train.schedule, r.train.checkpoint_activations, r.model.dim })
    local recs = assert(require("moonspeed.metrics").read(dir .. "/run/metrics.jsonl"))
    assert.are.equal(6, #recs)
    assert.is_true(recs[6].loss < recs[1].loss, ("loss %s -> %s"):format(recs[1].loss, recs[6].loss))
    assert.is_true(math.abs(recs[6].lr - 2e-4) < 1e-9)   -- the cosine ends at cos_min_ratio x lr
  end)
end)
