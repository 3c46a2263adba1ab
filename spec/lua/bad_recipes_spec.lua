-- spec/lua/bad_recipes_spec.lua — the catalogue of bad recipes and overrides.
--
-- Each entry runs `moonspeed run` in an empty folder (where the fixtures are
-- linked as bad/) and asserts the exact message on stderr, exit status 1, and
-- that nothing was created on disk: no run directory, no runs/ folder. The same
-- entries are loaded in-process through recipe.load for the same message.

local support = require "support"

local FIX = support.root .. "/spec/fixtures/recipes/bad"

-- { fixture file or recipe, overrides, message (after "moonspeed: "), env }
local catalogue = {
  -- unknown and misspelt keys: file:line and the closest valid key
  { "bad/unknown-key.lua", {}, "bad/unknown-key.lua:4: unknown key train.lrr; did you mean train.lr?" },
  { "bad/unknown-section.lua", {}, "bad/unknown-section.lua:2: unknown key trian; did you mean train?" },
  { "bad/wrong-section.lua", {}, "bad/wrong-section.lua:4: unknown key model.lr; did you mean train.lr?" },
  { "bad/top-level-key.lua", {}, "bad/top-level-key.lua:2: unknown key steps; did you mean train.steps?" },
  { "bad/extend-unknown-key.lua", {},
    "bad/extend-unknown-key.lua:4: unknown key train.stepz; did you mean train.steps?" },
  -- duplicates inside one table constructor
  { "bad/duplicate-key.lua", {}, "bad/duplicate-key.lua:5: duplicate key train.lr (first set at line 3)" },
  { "bad/duplicate-section.lua", {}, "bad/duplicate-section.lua:4: duplicate key model (first set at line 2)" },
  -- types and ranges
  { "bad/string-for-number.lua", {},
    'bad/string-for-number.lua:2: train.lr must be a number > 0 and < 10, got "3e-4" (a string)' },
  { "bad/misspelt-enum.lua", {},
    'bad/misspelt-enum.lua:3: train.schedule must be one of "constant", "linear", "cosine", got "cosin" (a string); did you mean "cosine"?' },
  { "bad/bad-precision.lua", {},
    'bad/bad-precision.lua:2: precision must be one of "fp32", "bf16", got "fp16" (a string)' },
  { "bad/negative-steps.lua", {},
    "bad/negative-steps.lua:2: train.steps must be an integer in [1, 1000000000], got -5" },
  { "bad/fractional-batch.lua", {},
    "bad/fractional-batch.lua:2: train.batch must be an integer in [1, 2^24], got 2.5" },
  { "bad/number-for-bool.lua", {}, "bad/number-for-bool.lua:2: model.tie_embeddings must be true or false, got 1" },
  { "bad/zero-lr.lua", {}, "bad/zero-lr.lua:2: train.lr must be a number > 0 and < 10, got 0" },
  { "bad/section-not-table.lua", {}, "bad/section-not-table.lua:2: model must be a table of keys (a section), got 5" },
  { "bad/list-as-recipe.lua", {},
    "bad/list-as-recipe.lua: a recipe is a table of named keys; found a value at index 1 (1)" },
  { "bad/returns-number.lua", {},
    "bad/returns-number.lua: a recipe must return a table (or extend(base, overrides)), got 42" },
  -- cross-key rules
  { "bad/dim-not-divisible.lua", {},
    "bad/dim-not-divisible.lua:3: model.dim (130) must be divisible by model.n_heads (4)" },
  { "bad/heads-not-multiple.lua", {},
    "bad/heads-not-multiple.lua:2: model.n_heads (4) must be a multiple of model.n_kv_heads (3)" },
  { "bad/odd-head-dim.lua", {},
    "bad/odd-head-dim.lua:2: head_dim = model.dim / model.n_heads = 3 must be even (RoPE rotates pairs)" },
  { "bad/batch-not-multiple.lua", {},
    "bad/batch-not-multiple.lua:3: train.batch (6) must be a multiple of train.micro_batch (4)" },
  { "bad/seq-too-long.lua", {}, "bad/seq-too-long.lua:3: train.seq_len (512) must be <= model.max_seq_len (256)" },
  { "bad/min-lr-above-lr.lua", {}, "bad/min-lr-above-lr.lua:2: train.min_lr (0.001) must be <= train.lr (0.0001)" },
  { "bad/vocab-too-small.lua", {},
    "bad/vocab-too-small.lua:2: model.vocab_size (100) is too small for the bytes tokenizer, which needs 258 (256 bytes, BOS, EOS)" },
  -- offload
  { "bad/offload-device.lua", {},
    'bad/offload-device.lua:2: offload.optimizer must be one of "none", "cpu", "auto", got "gpu" (a string); did you mean "cpu"?' },
  -- the sandbox
  { "bad/sandbox-io.lua", {},
    "bad/sandbox-io.lua:1: io is not available in recipes (recipes are data; helpers: extend, env, remove, deepspeed, sweep, grid, zip)" },
  { "bad/sandbox-require.lua", {},
    "bad/sandbox-require.lua:1: require is not available in recipes (recipes are data; helpers: extend, env, remove, deepspeed, sweep, grid, zip)" },
  { "bad/sandbox-dofile.lua", {},
    "bad/sandbox-dofile.lua:1: dofile is not available in recipes (recipes are data; helpers: extend, env, remove, deepspeed, sweep, grid, zip)" },
  { "bad/env-not-number.lua", {}, 'bad/env-not-number.lua:2: env("MOONSPEED_SPEC_STEPS"): "abc" is not a number',
    { MOONSPEED_SPEC_STEPS = "abc" } },
  -- Lua errors keep their file:line
  { "bad/syntax-error.lua", {}, "bad/syntax-error.lua:3: unexpected symbol near '<eof>'" },
  { "bad/runtime-error.lua", {}, "bad/runtime-error.lua:2: attempt to index local 'sizes' (a nil value)" },
  -- extend
  { "bad/extend-missing.lua", {},
    'bad/extend-missing.lua:1: extend: cannot find the base recipe "no-such-recipe.lua" next to this file or in the recipes folder' },
  { "bad/cycle-a.lua", {}, "bad/cycle-b.lua:1: extend cycle: bad/cycle-a.lua -> bad/cycle-b.lua -> bad/cycle-a.lua" },
  -- computed values
  { "bad/computed-wrong-type.lua", {},
    'bad/computed-wrong-type.lua:3: train.lr must be a number > 0 and < 10, got "high" (a string) (computed)' },
  { "bad/computed-cycle.lua", {}, "bad/computed-cycle.lua:3: train.lr: computed values refer to each other in a cycle" },
  -- command-line overrides: the same checks
  { "good.lua", { "train.lrr=1" }, "override train.lrr=1: unknown key train.lrr; did you mean train.lr?" },
  { "good.lua", { "train.steps=abc" },
    'override train.steps=abc: train.steps must be an integer in [1, 1000000000], got "abc" (a string)' },
  { "good.lua", { "lr=abc" }, 'override lr=abc: train.lr must be a number > 0 and < 10, got "abc" (a string)' },
  { "good.lua", { "model=3" }, "override model=3: model is a section; set one of its keys, e.g. model.name=..." },
  { "good.lua", { "offload.ratio=2" }, "override offload.ratio=2: offload.ratio must be a number in [0, 1], got 2" },
  { "good.lua", { "zero.stage=5" }, "override zero.stage=5: zero.stage must be an integer in [0, 3] or \"auto\", got 5" },
  { "good.lua", { "zero.prefech=1" }, "override zero.prefech=1: unknown key zero.prefech; did you mean zero.prefetch?" },
  { "bad/zero-stage.lua", {}, "bad/zero-stage.lua:2: zero.stage must be an integer in [0, 3] or \"auto\", got 4" },
  { "bad/comm-timeout.lua", {}, "bad/comm-timeout.lua:2: comm.timeout_s must be a number > 0 and <= 86400, got 0" },
  -- the cluster section
  { "bad/cluster-instance.lua", {},
    'bad/cluster-instance.lua:4: cluster.instance "g6e.8xlargee" is not in the instance catalogue; did you mean "g6e.8xlarge"?; known: g6e.12xlarge, g6e.16xlarge, g6e.24xlarge, g6e.48xlarge, g6e.8xlarge, p4d.24xlarge, p4de.24xlarge, p5.48xlarge, p5e.48xlarge' },
  { "bad/cluster-unknown-key.lua", {}, "bad/cluster-unknown-key.lua:2: unknown key cluster.nodez; did you mean cluster.nodes?" },
  { "bad/cluster-toleration.lua", {},
    "bad/cluster-toleration.lua:3: cluster.tolerations[1] has an unknown key operater; allowed: effect, key, operator, tolerationSeconds, value" },
  { "bad/cluster-pet-env.lua", {},
    "bad/cluster-pet-env.lua:4: cluster.env must not set PET_NNODES: the PET_* variables are Kubeflow's torch policy's (PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT) and moonspeed launch reads them" },
  { "good.lua", { "cluster.gpus_per_node=1.5" },
    "override cluster.gpus_per_node=1.5: cluster.gpus_per_node must be an integer in [0, 64], got 1.5" },
  { "good.lua", { "cluster.env.PET_NODE_RANK=0" },
    "override cluster.env.PET_NODE_RANK=0: cluster.env must not set PET_NODE_RANK: the PET_* variables are Kubeflow's torch policy's (PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT) and moonspeed launch reads them" },
  { "good.lua", { "=5" }, "override =5: expected section.key=value (e.g. train.lr=3e-4)" },
  { "good.lua", { "train.micro_batch=3" },
    "override train.micro_batch=3: train.batch (16) must be a multiple of train.micro_batch (3)" },
  { "good.lua", { "train.checkpoint_activations=maybe" },
    'override train.checkpoint_activations=maybe: train.checkpoint_activations must be true or false, got "maybe" (a string)' },
  { "good.lua", { "train.schedule=cosin" },
    'override train.schedule=cosin: train.schedule must be one of "constant", "linear", "cosine", got "cosin" (a string); did you mean "cosine"?' },
  { "good.lua", { "model.n_kv_heads=3" },
    "override model.n_kv_heads=3: model.n_heads (4) must be a multiple of model.n_kv_heads (3)" },
  { "good.lua", { "train.seq_len=1024" },
    "override train.seq_len=1024: train.seq_len (1024) must be <= model.max_seq_len (256)" },
  -- a recipe that is fine but whose data is missing
  { "good.lua", { "data.train=nope.bin" },
    'override data.train=nope.bin: data.train = "nope.bin" does not exist; run `make data`, or point data.train at a token shard' },
  { "no-such-file.lua", {}, "recipe no-such-file.lua does not exist" },
}

describe("bad recipes", function()
  local missing = support.missing_build()
  local dir

  before_each(function()
    dir = support.tmpdir()
    os.execute(("ln -s %s %s"):format(support.quote(FIX), support.quote(dir .. "/bad")))
    support.write(dir .. "/good.lua", 'return extend("default.lua", {})\n')
  end)
  after_each(function() support.cleanup() end)

  it("has at least 25 entries", function()
    assert.is_true(#catalogue >= 25)
  end)

  for _, entry in ipairs(catalogue) do
    local file, overrides, message, env = entry[1], entry[2], entry[3], entry[4]
    local label = file .. (#overrides > 0 and (" " .. table.concat(overrides, " ")) or "")

    it("moonspeed run " .. label .. " fails with the exact message and writes nothing", function()
      assert.is_nil(missing)
      local args = { "run", file }
      for _, o in ipairs(overrides) do args[#args + 1] = o end
      args[#args + 1] = "--run-dir"
      args[#args + 1] = "out"
      local before = support.ls(dir)
      local res = support.moonspeed(args, { cwd = dir, env = env })
      assert.are.equal("moonspeed: " .. message .. "\n", res.stderr)
      assert.are.equal(1, res.code)
      assert.are.equal("", res.stdout)
      assert.are.same(before, support.ls(dir))        -- no out/, no runs/
    end)
  end

  it("loads the same entries in-process with the same messages", function()
    local recipe = require "moonspeed.recipe"
    local checked = 0
    for _, entry in ipairs(catalogue) do
      local file, overrides, message, env = entry[1], entry[2], entry[3], entry[4]
      if file:match("^bad/") and not env then
        local path = "spec/fixtures/recipes/" .. file
        local ok, err = pcall(recipe.load, path, overrides)
        assert.is_false(ok, path)
        local want = message:gsub("bad/", "spec/fixtures/recipes/bad/")
        assert.are.equal(want, err)
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 30)
  end)

  it("refuses a plan that does not fit, with the numbers, before creating anything", function()
    assert.is_nil(missing)
    local before = support.ls(dir)
    local res = support.moonspeed({ "run", support.root .. "/recipes/llama-3-8b.lua", "--run-dir", "out" }, { cwd = dir })
    assert.are.equal(1, res.code)
    assert.matches("does not fit: the plan needs [%d.]+ GiB %(%d+ bytes%)", res.stderr)
    assert.matches("moonspeed: the plan for .*llama%-3%-8b%.lua does not fit this machine: it needs [%d.]+ GiB, [%d.]+ [GMK]iB is available %(MemAvailable in /proc/meminfo%); nothing was started\n$", res.stderr)
    assert.are.same(before, support.ls(dir))
  end)

  it("refuses a GPU recipe on a machine without a GPU, saying so, before creating anything", function()
    assert.is_nil(missing)
    if require("moonspeed.plan").gpu() then
      pending("this machine has a GPU: make test-gpu runs the GPU recipe (spec/gpu/run_tracks_cpu.sh)")
      return
    end
    local before = support.ls(dir)
    local res = support.moonspeed({ "run", support.root .. "/recipes/default.lua", "device=cuda", "--run-dir", "out" },
      { cwd = dir })
    assert.are.equal(1, res.code)
    -- with the CUDA backend built: no usable GPU; without it: no backend
    assert.matches('^moonspeed: .*default%.lua: device "cuda": this (%a+) ', res.stderr)
    local why = res.stderr:match('device "cuda": this (%a+)')
    assert.is_true(why == "machine" or why == "build", res.stderr)
    assert.matches('use device = "cpu".*; nothing was started\n$', res.stderr)
    assert.are.same(before, support.ls(dir))
  end)
end)
