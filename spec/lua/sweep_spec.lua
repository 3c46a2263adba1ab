-- spec/lua/sweep_spec.lua — experiments (sweep.lua): grid, zip and the variants'
-- names; `moonspeed run EXPERIMENT` with --list, --only N and all variants one
-- after the other; `moonspeed k8s EXPERIMENT` (a TrainJob per variant, one
-- runtime and ConfigMap, valid against Kubeflow Trainer's CRDs); `moonspeed compare`.

local support = require "support"
local ks = require "k8s_support"

local EXP = "spec/fixtures/sweep/lr-stage.lua"

local function pairs_of(list)
  local out = {}
  for i, a in ipairs(list) do
    local parts = {}
    for _, kv in ipairs(a) do parts[#parts + 1] = kv[1] .. "=" .. tostring(kv[2]) end
    out[i] = table.concat(parts, " ")
  end
  return out
end

describe("sweep, grid and zip", function()
  local sweep = require "moonspeed.sweep"

  it("grid takes every combination, the first argument slowest; a map's keys in alphabetical order", function()
    assert.are.same({ "train.lr=0.001 zero.stage=2", "train.lr=0.001 zero.stage=3", "train.lr=0.003 zero.stage=2",
      "train.lr=0.003 zero.stage=3" }, pairs_of(sweep.grid({ ["train.lr"] = { 1e-3, 3e-3 } }, { ["zero.stage"] = { 2, 3 } })))
    assert.are.same({ "zero.stage=2 train.lr=0.001", "zero.stage=2 train.lr=0.003", "zero.stage=3 train.lr=0.001",
      "zero.stage=3 train.lr=0.003" }, pairs_of(sweep.grid({ ["zero.stage"] = { 2, 3 } }, { ["train.lr"] = { 1e-3, 3e-3 } })))
    assert.are.same({ "cluster.nodes=1 train.lr=0.1", "cluster.nodes=1 train.lr=0.2", "cluster.nodes=2 train.lr=0.1",
      "cluster.nodes=2 train.lr=0.2" }, pairs_of(sweep.as_variants({ ["train.lr"] = { 0.1, 0.2 }, ["cluster.nodes"] = { 1, 2 } }, "x")))
  end)

  it("zip pairs values up, and refuses lists of different lengths", function()
    assert.are.same({ "train.lr=0.001 train.warmup=10", "train.lr=0.003 train.warmup=30" },
      pairs_of(sweep.zip({ ["train.lr"] = { 1e-3, 3e-3 }, ["train.warmup"] = { 10, 30 } })))
    assert.are.same({ "train.lr=0.001 train.warmup=10 zero.stage=2", "train.lr=0.001 train.warmup=10 zero.stage=3",
      "train.lr=0.003 train.warmup=30 zero.stage=2", "train.lr=0.003 train.warmup=30 zero.stage=3" },
      pairs_of(sweep.grid(sweep.zip({ ["train.lr"] = { 1e-3, 3e-3 }, ["train.warmup"] = { 10, 30 } }), { ["zero.stage"] = { 2, 3 } })))
    assert.has_error(function() sweep.zip({ ["train.lr"] = { 1, 2 }, ["train.warmup"] = { 1, 2, 3 } }) end,
      "zip: train.warmup has 3 values but train.lr has 2; zip pairs them up, so they need as many")
    assert.has_error(function() sweep.zip({ { lr = 1 } }, { { lr = 2 }, { lr = 3 } }) end,
      "zip: argument 2 has 2 variants but argument 1 has 1; zip pairs them up, so they need as many")
  end)

  it("names variants after their values, distinct, and makes DNS labels of them", function()
    local labels = sweep.labels(sweep.grid({ ["train.lr"] = { 1e-4, 3e-4, 0.5 } }, { ["offload"] = {
      { optimizer = "cpu", ratio = 0.25 } } }, { ["log.every"] = { 10 }, ["checkpoint.every"] = { 0 } },
      { ["train.checkpoint_activations"] = { true } }))
    assert.are.same({
      "lr1e-4-offload-optimizer-cpu-ratio-0p25-checkpoint-every0-log-every10-checkpoint-activations-on",
      "lr3e-4-offload-optimizer-cpu-ratio-0p25-checkpoint-every0-log-every10-checkpoint-activations-on",
      "lr0p5-offload-optimizer-cpu-ratio-0p25-checkpoint-every0-log-every10-checkpoint-activations-on" }, labels)
    assert.are.same({ "lr1e-3", "lr1e-3-v2", "stage2", "beta1-0p9" }, sweep.labels({ { { "train.lr", 1e-3 } },
      { { "train.lr", 0.001 } }, { { "zero.stage", 2 } }, { { "train.beta1", 0.9 } } }))
    assert.are.equal("exp-lr1e-3", sweep.dns_name("exp", "lr1e-3", 54))
    local a = sweep.dns_name("a-long-experiment-name", labels[1], 54)
    local b = sweep.dns_name("a-long-experiment-name", labels[2], 54)
    assert.is_true(#a <= 54 and #b <= 54)
    assert.are_not.equal(a, b)
    assert.matches("^a%-long%-experiment%-name%-lr1e%-4%-offload%-optimizer%-%x%x%x%x%x%x$", a)
    assert.is_true(require("moonspeed.cluster").is_dns_label(a))
  end)
end)

describe("sweep's recipe layers and sandbox helpers", function()
  local sweep = require "moonspeed.sweep"

  it("key_path names a key by its path, its unique name or its section, or says why not", function()
    assert.are.same({ "train.lr", "train.lr" }, { sweep.key_path("lr"), (select(2, sweep.key_path("lr"))).path })
    assert.are.same({ "offload" }, { sweep.key_path("offload") })
    assert.are.same({ nil, "unknown key train.lrr; did you mean train.lr?" }, { sweep.key_path("train.lrr") })
    assert.are.same({ nil, "every is ambiguous: write one of checkpoint.every, log.every" }, { sweep.key_path("every") })
  end)

  it("variant_layer makes a variant a recipe layer, merging whole sections, with its origins", function()
    local origin = {}
    local layer = sweep.variant_layer({ { "train.lr", 1e-3 }, { "offload", { optimizer = "cpu" } },
      { "offload", { ratio = 0.5 } }, { "precision", "bf16" } }, "x.lua:1 (variant 2, v)", origin)
    assert.are.same({ train = { lr = 1e-3 }, offload = { optimizer = "cpu", ratio = 0.5 }, precision = "bf16" }, layer)
    assert.are.same({ ["train.lr"] = "x.lua:1 (variant 2, v)", ["offload.optimizer"] = "x.lua:1 (variant 2, v)",
      ["offload.ratio"] = "x.lua:1 (variant 2, v)", precision = "x.lua:1 (variant 2, v)" }, origin)
  end)

  it("sandbox_helpers gives a sandbox sweep, grid and zip that check every key and report at the call", function()
    local env, bases = {}, {}
    sweep.sandbox_helpers(env, function(name) return "x.lua:7 (" .. name .. ")" end,
      function(base) bases[#bases + 1] = base return { seed = 1 }, { seed = "b.lua:2" } end)
    local exp = env.sweep("b.lua", env.grid({ lr = { 1e-3, 3e-3 } }, { ["zero.stage"] = { 2 } }))
    assert.are.equal(sweep.Sweep, getmetatable(exp))
    assert.are.same({ "b.lua" }, bases)
    assert.are.same({ { seed = 1 }, { seed = "b.lua:2" }, "x.lua:7 (sweep)" }, { exp.base, exp.origin, exp.at })
    assert.are.same({ "train.lr=0.001 zero.stage=2", "train.lr=0.003 zero.stage=2" }, pairs_of(exp.variants))
    local function fails(fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      return err
    end
    assert.are.equal("x.lua:7 (sweep): sweep: variant 1: train.lr must be a number > 0 and < 10, got 20",
      fails(env.sweep, "b.lua", { lr = { 20 } }))
    assert.are.equal("x.lua:7 (sweep): sweep(base, spec): base must be a recipe file name or a table, got 3",
      fails(env.sweep, 3, { lr = { 1 } }))
    assert.are.equal("x.lua:7 (sweep): unknown key offload.zzz; offload has: optimizer, params, ratio, overlap",
      fails(env.sweep, {}, { offload = { { zzz = 1 } } }))
    assert.matches("^x%.lua:7 %(zip%): zip: argument 2 has 2 variants but argument 1 has 1",
      fails(env.zip, { lr = { 1 } }, { warmup = { 1, 2 } }))
  end)
end)

describe("moonspeed run EXPERIMENT", function()
  assert.is_nil(support.missing_build())
  teardown(function() support.cleanup() end)

  it("lists the variants", function()
    local res = support.moonspeed({ "run", EXP, "--list" })
    assert.are.equal(0, res.code, res.stderr)
    assert.are.equal("experiment " .. EXP .. ": 4 variants\n" ..
      "   1  lr1e-3-stage2  train.lr = 0.001, zero.stage = 2\n" ..
      "   2  lr1e-3-stage3  train.lr = 0.001, zero.stage = 3\n" ..
      "   3  lr3e-3-stage2  train.lr = 0.003, zero.stage = 2\n" ..
      "   4  lr3e-3-stage3  train.lr = 0.003, zero.stage = 3\n", res.stdout)
    res = support.moonspeed({ "run", "recipes/experiments/kjv-sweep.lua", "--list" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches("4 variants", res.stdout)
  end)

  it("runs every variant one after the other, then compares them; --only N runs one", function()
    assert.is_nil(support.missing_data())
    local dir = support.tmpdir()
    local res = support.moonspeed({ "run", EXP, "--run-dir", dir .. "/all" })
    assert.are.equal(0, res.code, res.stderr)
    assert.are.same({ "lr1e-3-stage2", "lr1e-3-stage3", "lr3e-3-stage2", "lr3e-3-stage3" }, support.ls(dir .. "/all"))
    local recipe = require "moonspeed.recipe"
    local metrics = require "moonspeed.metrics"
    for _, v in ipairs({ { "lr1e-3-stage2", 1e-3, 2 }, { "lr3e-3-stage3", 3e-3, 3 } }) do
      local r = recipe.load(dir .. "/all/" .. v[1] .. "/recipe.lua")
      assert.are.same({ v[2], v[3], 3 }, { r.train.lr, r.zero.stage, r.train.steps })
      assert.are.equal(3, #metrics.read(dir .. "/all/" .. v[1] .. "/metrics.jsonl"))
    end
    assert.matches("== variant 3 %(3 of 4%): lr%-stage%-lr3e%-3%-stage2\n", res.stdout)
    local tail = res.stdout:match("== " .. EXP:gsub("%p", "%%%0") .. ": 4 of 4 variants finished\n(.*)$")
    assert.is_truthy(tail, res.stdout)
    local rows = {}
    for l in tail:gmatch("[^\n]+") do rows[#rows + 1] = l end
    assert.are.equal(5, #rows)
    assert.matches("^run%s+steps%s+loss%s+val_loss%s+tokens/s%s+peak memory%s+train.lr%s+zero.stage$", rows[1])
    assert.matches("^lr3e%-3%-stage3%s+3%s+%d%.%d%d%d%d%s+%d%.%d%d%d%d%s+%d+%s+[%d.]+ MiB%s+0.003%s+3$", rows[5])
    -- the same lr gives the same losses at stages 2 and 3 (one rank: the stage only moves state)
    assert.are.equal(rows[2]:match("^%S+%s+%d+%s+(%S+)"), rows[3]:match("^%S+%s+%d+%s+(%S+)"))
    res = support.moonspeed({ "run", EXP, "--only", "2", "--run-dir", dir .. "/one" })
    assert.are.equal(0, res.code, res.stderr)
    assert.are.same({ "lr1e-3-stage3" }, support.ls(dir .. "/one"))
    -- compare: the table, the JSON lines, the curves together
    local dirs = {}
    for i, v in ipairs(support.ls(dir .. "/all")) do dirs[i] = dir .. "/all/" .. v end
    res = support.moonspeed({ "compare", dirs[1], dirs[4], "--plot", dir .. "/c.svg" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches("^run%s+steps%s+loss%s+val_loss%s+tokens/s%s+peak memory%s+train.lr%s+zero.stage\n" ..
      "lr1e%-3%-stage2 .*\nlr3e%-3%-stage3 .*\nwrote .*c.svg %(2 runs%)\n$", res.stdout)
    local svg = support.read(dir .. "/c.svg")
    local _, lines = svg:gsub("<polyline", "")
    assert.are.equal(6, lines)   -- per run: train loss, val loss, tokens/s
    assert.matches(">lr1e%-3%-stage2</text>", svg)
    res = support.moonspeed({ "compare", "--json", dirs[2] })
    local row = assert(require("moonspeed.json").decode(res.stdout))
    assert.are.same({ dirs[2], 3 }, { row.run, row.steps })
    assert.is_true(row.peak_memory_bytes > 0 and row.tokens_per_s > 0 and row.loss > 0)
  end)

  it("refuses what an experiment cannot mean, naming where", function()
    local cases = {
      { { "run", EXP, "train.lr=1e-4" }, "override train.lr=1e-4: train.lr is a key this experiment varies" },
      { { "run", EXP, "--only", "5", "--list" }, "--only 5: the experiment has variants 1 to 4" },
      { { "check", EXP }, "this is an experiment of 4 variants (sweep); `moonspeed run " .. EXP .. " --list` lists them" },
      { { "run", "recipes/default.lua", "--only", "2" }, "--only 2: this recipe is not an experiment (sweep)" },
    }
    local bad = {
      { 'return sweep("default.lua", { ["train.lrr"] = { 1 } })', "x.lua:1: sweep: variant 1: unknown key train.lrr; did you mean train.lr?" },
      { 'return sweep("default.lua", { lr = { 20 } })', "x.lua:1: sweep: variant 1: train.lr must be a number > 0 and < 10, got 20" },
      { 'return sweep("default.lua", { every = { 1 } })', "sweep: variant 1: every is ambiguous: write one of" },
      { 'return sweep("default.lua", { lr = 1 })', "x.lua:1: sweep: the values of lr must be a non-empty list" },
      { 'return sweep("default.lua",\n zip({ lr = { 1e-3 } }, { warmup = { 1, 2 } }))',
        "x.lua:2: zip: argument 2 has 2 variants but argument 1 has 1" },
      { 'return sweep("default.lua", { micro_batch = { 3 } })', "x.lua:1 (variant 1, micro-batch3): train.batch (16) must be a multiple of train.micro_batch (3)" },
    }
    for _, b in ipairs(bad) do
      local f = support.write(support.tmpdir() .. "/x.lua", b[1])
      cases[#cases + 1] = { { "run", f, "--list" }, b[2] }
      if b[2]:match("^variant") then cases[#cases][1] = { "run", f } end
    end
    for _, c in ipairs(cases) do
      local res = support.moonspeed(c[1])
      assert.are.equal(1, res.code, table.concat(c[1], " ") .. ": " .. res.stderr)
      assert.is_truthy(res.stderr:find(c[2], 1, true), ("%s\n  want %s\n  got  %s"):format(table.concat(c[1], " "), c[2], res.stderr))
    end
  end)
end)

describe("moonspeed k8s EXPERIMENT", function()
  teardown(function() support.cleanup() end)

  it("emits a TrainJob per variant, with one runtime and one ConfigMap, valid against the CRDs", function()
    local dir = support.tmpdir()
    local out = dir .. "/exp.yaml"
    local res = support.moonspeed({ "k8s", EXP, "-o", out })
    assert.are.equal(0, res.code, res.stderr)
    local ok, why = ks.node_ready()
    assert.is_true(ok, why)
    local docs = ks.read_back(out)
    local kinds, names = {}, {}
    for i, d in ipairs(docs) do kinds[i] = d.kind; names[i] = d.metadata.name end
    assert.are.same({ "ConfigMap", "ClusterTrainingRuntime", "TrainJob", "TrainJob", "TrainJob", "TrainJob" }, kinds)
    assert.are.same({ "kjv-sweep-recipe", "moonspeed", "kjv-sweep-lr1e-3-stage2", "kjv-sweep-lr1e-3-stage3",
      "kjv-sweep-lr3e-3-stage2", "kjv-sweep-lr3e-3-stage3" }, names)
    for i = 3, 6 do
      local t = docs[i].spec.trainer
      assert.are.same({ "moonspeed", "launch", "/etc/moonspeed/recipe/lr-stage.lua", "--only", tostring(i - 2) }, t.command)
      assert.are.equal("kjv-sweep-recipe", docs[i].spec.podTemplateOverrides[1].spec.volumes[1].configMap.name)
      assert.are.equal(tostring(i - 2), docs[i].metadata.labels["moonspeed/variant"])
    end
    assert.are.same({ "default.lua", "lr-stage.lua" }, (function()
      local keys = {}
      for k in pairs(docs[1].data) do keys[#keys + 1] = k end
      table.sort(keys)
      return keys
    end)())
    local dir_ok, dwhy = ks.crd_dir()
    if not dir_ok then pending(dwhy) return end
    for _, r in ipairs(ks.validate({ out })) do
      assert.is_true(r.valid, ("#%d %s %s: %s"):format(r.index, r.kind, r.name, table.concat(r.errors or {}, "; ")))
    end
    assert.are.same({}, require("moonspeed.k8s_rules").check(docs))
    -- the pods load the variant they are given from the mounted files
    local mnt = support.tmpdir()
    for k, text in pairs(docs[1].data) do support.write(mnt .. "/" .. k, text) end
    local vs = require("moonspeed.recipe").load_experiment(mnt .. "/lr-stage.lua", {}, 4)
    assert.are.same({ 3e-3, 3 }, { vs[1].r.train.lr, vs[1].r.zero.stage })
  end)
end)
