-- spec/lua/cli_spec.lua — the moonspeed command line, end to end on a tiny model.

local support = require "support"
local json = require "moonspeed.json"
local recipe = require "moonspeed.recipe"

local TINY = "spec/fixtures/recipes/tiny.lua"

local function lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local function read_metrics(path)
  local recs = {}
  for _, l in ipairs(lines(assert(support.read(path)))) do recs[#recs + 1] = assert(json.decode(l)) end
  return recs
end

describe("moonspeed run", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())

  local dir, res
  setup(function()
    dir = support.tmpdir()
    res = support.moonspeed({ "run", TINY, "--run-dir", dir .. "/run" })
  end)
  teardown(function() support.cleanup() end)

  it("succeeds and writes the run directory", function()
    assert.are.equal("", res.stderr)
    assert.are.equal(0, res.code)
    assert.are.same({ "metrics.jsonl", "model.bin", "recipe.lua", "sample.txt" }, support.ls(dir .. "/run"))
  end)

  it("says in its last line what the host's updates cost when the optimizer is offloaded", function()
    local off = support.moonspeed({ "run", "spec/fixtures/recipes/tiny.lua", "offload.optimizer=cpu", "log.sample_tokens=0",
                                    "--run-dir", dir .. "/offload" })
    assert.are.equal(0, off.code, off.stderr)
    assert.matches("\ndone: 6 steps in [^\n]*, planned [%d.]+ [KMG]i?B; offload: the host's AdamW [%d.]+ ms a step, "
      .. "waited for [%d.]+ ms a step %([%d.]+%%%)\n", off.stdout)
    assert.matches('"offload":{"recomputed":false,"update_s":[%d.e-]+,"wait_s":[%d.e-]+}', support.read(dir .. "/offload/metrics.jsonl"))
  end)

  it("profiles steps 2-3 with train.profile = 2: every op by name and shape, its calls a step, within the step", function()
    local prof = support.moonspeed({ "run", TINY, "train.steps=4", "train.profile=2", "log.sample_tokens=0",
                                     "--run-dir", dir .. "/profile" })
    assert.are.equal(0, prof.code, prof.stderr)
    local step, ops, idle = prof.stdout:match("\nprofile: steps 2%-3 on rank 0, timed by the cpu device: ([%d.]+) ms "
      .. "a step; its ops ([%d.]+) ms, the device idle ([%d.]+) ms %([%d.]+%%%)\n")
    assert.is_not_nil(step, prof.stdout)
    step, ops, idle = tonumber(step), tonumber(ops), tonumber(idle)
    assert.is_true(ops > 0 and math.abs(step - ops - idle) <= 0.11, prof.stdout)
    local calls, sum, rows, last = {}, 0, 0, math.huge
    for ms, per, name in prof.stdout:gmatch("\nprofile: +([%d.]+) +[%d.]+%% +([%d.]+)  ([^\n]+)") do
      calls[name], sum, rows = tonumber(per), sum + tonumber(ms), rows + 1
      assert.is_true(tonumber(ms) <= last, "largest first")
      last = tonumber(ms)
    end
    assert.is_true(math.abs(sum - ops) <= 0.005 * rows + 0.05, prof.stdout) -- each row rounded to 0.01 ms
    -- the same window in profile.json: seconds, not rounded
    local saved = json.decode(support.read(dir .. "/profile/profile.json"))
    assert.are.same({ 2, 3, 0, "cpu", rows }, { saved.from, saved.to, saved.rank, saved.device, #saved.ops })
    assert.is_true(math.abs(saved.seconds * 1e3 / 2 - step) <= 0.051)
    for _, op in ipairs(saved.ops) do assert.are.equal(calls[op.name] * 2, op.calls) end -- over the two steps
    -- 2 layers, 2 micro-batches a step of 2 sequences of 32 tokens; dim 32, 2 heads and 1 kv head of 16, ffn 64
    assert.are.equal(4, calls.attention_fwd)
    assert.are.equal(4, calls.attention_bwd)
    assert.are.equal(2, calls.embedding_fwd)
    assert.are.equal(2, calls.lmhead_xent)
    assert.are.equal(8, calls["matmul_fwd 64x32x32"]) -- q and o
    assert.are.equal(8, calls["matmul_fwd 64x32x16"]) -- k and v
    assert.are.equal(8, calls["matmul_fwd 64x32x64"]) -- gate and up
    assert.are.equal(4, calls["matmul_fwd 64x64x32"]) -- down
    assert.are.equal("", prof.stderr)
  end)

  it("prints plain progress lines when the output is not a terminal", function()
    local out = lines(res.stdout)
    assert.matches("^run tiny: spec%-tiny, [%d.]+ K parameters, fp32 on cpu %(1 thread%); 6 steps of 4 x 32 tokens %-> .*/run$", out[1])
    assert.matches("^step 1/6  loss %d%.%d%d%d%d  lr %d%.%d%de%-0%d  [%d.]+k? tok/s  ETA %?$", out[2])
    assert.matches("^step 2/6  loss ", out[3])
    assert.matches("^step 3/6  loss %d%.%d%d%d%d  val_loss %d%.%d%d%d%d  lr ", out[4])
    assert.matches("^step 4/6  loss .* ETA [%d.]+s$", out[5])
    assert.matches("^step 6/6  loss %d%.%d%d%d%d  val_loss %d%.%d%d%d%d  lr ", out[6])
    assert.matches("^done: 6 steps in [%d.]+s, [%d.]+k? tok/s, [%d.]+ GFLOP/s %(mfu [%d.]+%%%); loss %d%.%d+, val_loss %d%.%d+; host memory peak [%d.]+ [KMG]i?B, planned [%d.]+ [KMG]i?B$", out[7])
    assert.are.equal("sample:", out[8])
    assert.matches("^And God said", out[9])
    assert.matches("^run directory: .*/run$", out[#out])
    assert.is_nil(res.stdout:find("\r", 1, true))
  end)

  it("writes one metrics line per step with every field", function()
    local recs = read_metrics(dir .. "/run/metrics.jsonl")
    assert.are.equal(6, #recs)
    for i, r in ipairs(recs) do
      assert.are.equal(i, r.step)
      for _, k in ipairs({ "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "gflops", "mfu", "memory_bytes",
                           "host_peak_bytes", "seconds", "elapsed" }) do
        assert.is_number(r[k], k)
      end
      assert.are.equal(4 * 32, r.tokens)
      assert.is_true(r.tokens_per_s > 0 and r.mfu > 0 and r.mfu < 1 and r.seconds > 0)
      assert.are.equal(recs[1].memory_bytes, r.memory_bytes)
      if i == 3 or i == 6 then assert.is_number(r.val_loss) else assert.is_nil(r.val_loss) end
    end
    assert.is_true(recs[6].loss < recs[1].loss)
    assert.is_true(recs[6].val_loss < recs[3].val_loss)
    assert.is_true(recs[6].elapsed >= recs[5].elapsed)
    assert.is_true(math.abs(recs[1].loss - math.log(258)) < 0.3)
    -- the first line, as written
    local first = support.read(dir .. "/run/metrics.jsonl"):match("^[^\n]+")
    assert.matches('^{"step":1,"loss":[%d.]+,"lr":[%d.e-]+,"grad_norm":[%d.]+,"tokens":128,"tokens_per_s":', first)
  end)

  it("reports the engine's reserved bytes, which equal the plan", function()
    local recs = read_metrics(dir .. "/run/metrics.jsonl")
    local child = support.luajit(([[
      local recipe = require "moonspeed.recipe"
      local plan = require "moonspeed.plan"
      print(plan.compute((recipe.load(%q))).device_bytes.total) -- the recipe alone, not its info as world
    ]]):format(TINY))
    assert.are.equal(tostring(recs[1].memory_bytes), child.stdout:match("%d+"))
  end)

  it("writes the resolved recipe, which loads back as the same recipe", function()
    local text = support.read(dir .. "/run/recipe.lua")
    assert.matches("^%-%- resolved recipe of the run in .*/run\n%-%- from spec/fixtures/recipes/tiny%.lua\nreturn {", text)
    assert.are.same(recipe.load(TINY), recipe.load(dir .. "/run/recipe.lua"))
  end)

  it("writes the sample", function()
    local s = support.read(dir .. "/run/sample.txt")
    assert.matches("^And God said", s)
    assert.is_true(#s <= #"And God said" + 24 + 1)
  end)

  it("samples from the run directory, reproducibly", function()
    local args = { "sample", dir .. "/run", "--prompt", "In the beginning", "--tokens", "20", "--seed", "3" }
    local a, b = support.moonspeed(args), support.moonspeed(args)
    assert.are.equal(0, a.code)
    assert.are.equal("", a.stderr)
    assert.matches("^In the beginning", a.stdout)
    assert.are.equal(a.stdout, b.stdout)
    local g = support.moonspeed({ "sample", dir .. "/run", "--prompt=And", "--tokens=12", "--temperature=0" })
    assert.are.equal(0, g.code)
    assert.matches("^And", g.stdout)
    assert.is_true(#g.stdout <= 3 + 12 + 1)
  end)

  it("plots the run", function()
    local p = support.moonspeed({ "plot", dir .. "/run" })
    assert.are.equal(0, p.code)
    assert.are.equal(("wrote %s/run/plot.svg (6 steps)\n"):format(dir), p.stdout)
    assert.matches("^<svg ", support.read(dir .. "/run/plot.svg"))
  end)

  it("refuses a run directory that holds a run already", function()
    local again = support.moonspeed({ "run", TINY, "--run-dir", dir .. "/run" })
    assert.are.equal(1, again.code)
    assert.are.equal(("moonspeed: run directory %s/run already holds a run (metrics.jsonl) and no checkpoint to resume from; choose another --run-dir\n")
      :format(dir), again.stderr)
  end)

  it("names run directories after the recipe and the time, under log.dir", function()
    local r = support.moonspeed({ "run", TINY, "train.steps=2", "log.sample_tokens=0", "log.dir=" .. dir .. "/runs" })
    assert.are.equal(0, r.code)
    local made = support.ls(dir .. "/runs")
    assert.are.equal(1, #made)
    assert.matches("^tiny%-%d%d%d%d%d%d%d%d%-%d%d%d%d%d%d$", made[1])
    assert.are.same({ "metrics.jsonl", "model.bin", "recipe.lua" }, support.ls(dir .. "/runs/" .. made[1]))
    assert.are.equal(2, #read_metrics(dir .. "/runs/" .. made[1] .. "/metrics.jsonl"))
    assert.matches("from spec/fixtures/recipes/tiny%.lua with train%.steps=2 log%.sample_tokens=0 log%.dir=",
      support.read(dir .. "/runs/" .. made[1] .. "/recipe.lua"))
  end)

  it("draws a live progress line on a terminal", function()
    local cmd = ("script -qfec %s /dev/null"):format(support.quote(("%s run %s train.steps=3 log.sample_tokens=0 --run-dir %s")
      :format(support.exe, TINY, dir .. "/tty")))
    local t = support.sh(cmd)
    assert.are.equal(0, t.code)
    assert.truthy(t.stdout:find("\rstep 1/3  loss ", 1, true))
    assert.truthy(t.stdout:find("\rstep 2/3  loss [%d.]+  lr [%d.e-]+  [%d.]+k? tok/s  ETA [%d.]+s\27%[K"))
    assert.truthy(t.stdout:find("\rstep 3/3  loss [%d.]+  val_loss [%d.]+  lr [%d.e-]+  [%d.]+k? tok/s  ETA [%d.]+s\27%[K\r?\n"))
  end)
end)

describe("moonspeed plan", function()
  after_each(function() support.cleanup() end)

  it("shows that llama-3-8b does not fit this machine, and why", function()
    local res = support.moonspeed({ "plan", "recipes/llama-3-8b.lua" })
    assert.are.equal(0, res.code)
    local out = res.stdout
    assert.matches("^recipes/llama%-3%-8b%.lua: llama%-3%-8b, 8%.03 B parameters %(32 layers, d 4096, 32 heads, 8 kv heads, vocab 128256%), bf16 on cpu\n", out)
    for _, row in ipairs({ "params", "grads", "master", "optimizer", "activations" }) do
      assert.matches("\n  " .. row .. " +[%d.]+ [KMGT]?i?B +0 B", out)
    end
    -- the host column is the staging between host and device: the batch (as big as the
    -- device's data row), a row of logits and a chunk of weights (workspace)
    local dev_data, host_data = out:match("\n  data +([%d.]+ [KMGT]?i?B) +([%d.]+ [KMGT]?i?B)")
    assert.are.equal(dev_data, host_data)
    assert.matches("\n  workspace +[%d.]+ [KMGT]?i?B +[%d.]+ MiB", out)
    assert.matches("\nthis machine: [%d.]+ GiB available of [%d.]+ GiB %(MemAvailable in /proc/meminfo%)\n", out)
    assert.matches("\ndoes not fit: the plan needs [%d.]+ GiB %(%d+ bytes%), [%d.]+ GiB more than the [%d.]+ GiB available\n", out)
    assert.matches("\n  largest parts: optimizer [%d.]+ GiB, ", out)
    assert.matches("exceed this machine", out)
  end)

  it("resolves \"auto\" against one GPU of the cluster: the lowest ZeRO stage that fits, then the fewest units offloaded", function()
    local res = support.moonspeed({ "plan", "recipes/llama-3-8b-g6e.lua", "zero.stage=auto", "offload.optimizer=auto" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches('\n  per rank of 4, ZeRO stage 3\n', res.stdout)
    assert.matches('\n  zero.stage = "auto" %-> 3: the lowest stage with which a rank of 4 fits the 48 GiB of one L40S '
      .. 'of cluster.instance g6e.8xlarge\n', res.stdout)
    assert.matches('\n  offload.optimizer = "auto" %-> "none": everything fits the 48 GiB', res.stdout)
    res = support.moonspeed({ "plan", "recipes/llama-3-8b-h200.lua" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches('\n  optimizer offloaded: 8 of 34 units %(2%.05 B parameters, 26%%, the last units first%)', res.stdout)
    assert.matches('\n  offload.optimizer = "auto" %-> "cpu", ratio 0%.265: 8 of 34 units offloaded, the fewest with which '
      .. 'the device needs 138%.74 GiB of the 141 GiB of one H200 of cluster.instance p5e%.48xlarge, 2%.00 GiB left for '
      .. 'the CUDA context and libraries\n', res.stdout)
    -- the host holds the offloaded units' master weights, and with the recipe's overlap a second copy
    assert.matches("\n  master +22%.27 GiB +15%.29 GiB", res.stdout)
    -- what its checkpoints and final weights take on disk: 12 and 4 bytes a parameter
    assert.matches("\n  disk: a checkpoint takes 89%.75 GiB %(12 bytes a parameter; up to checkpoint%.keep %+ 1 = 4 on "
      .. "disk while one is written%), model%.bin 29%.92 GiB %(the fp32 weights, written at the end%)\n", res.stdout)
    res = support.moonspeed({ "plan", "recipes/llama-3-8b-h200.lua", "offload.overlap=false" })
    assert.matches("\n  master +22%.27 GiB +7%.64 GiB", res.stdout)
    assert.matches("\n  offload moves 3%.82 GiB down and up again per step over PCIe", res.stdout)
  end)

  it("resolves zero.stage = \"auto\" on this machine: 0 for one rank, the lowest that fits for several", function()
    local res = support.moonspeed({ "plan", TINY, "train.batch=8", "zero.stage=auto" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches('\n  zero.stage = "auto" %-> 0: one rank, nothing to shard\n', res.stdout)
    res = support.moonspeed({ "plan", TINY, "train.batch=8", "train.micro_batch=4", "zero.stage=auto", "--world", "2" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches('\n  zero.stage = "auto" %-> 0: the lowest stage with which a rank of 2 fits the [%d.]+ GiB of MemAvailable\n',
      res.stdout)
  end)

  it("says what offload.optimizer = \"auto\" needs when there is no GPU and no cluster to decide against", function()
    local res = support.moonspeed({ "plan", TINY, "device=cuda", "offload.optimizer=auto" })
    if res.code == 0 then pending("this machine has a GPU") return end
    -- the reason is the engine's: no usable GPU here, or a build without the CUDA backend
    assert.matches('^moonspeed: offload%.optimizer = "auto" needs to know the GPU\'s memory, and device "cuda": '
      .. '.*; run it on the GPU, name cluster%.instance, or choose a value\n$', res.stderr)
  end)

  it("counts the GPU backend's own scratch in the device total, and none on the CPU", function()
    local plan = require "moonspeed.plan"
    local r = recipe.load(TINY)
    local cpu = plan.compute(r)
    r.device = "cuda"
    local gpu = plan.compute(r) -- a plan for a GPU needs none here
    assert.are.equal(0, cpu.device_bytes.backend)
    -- cuBLASLt's 32 MiB workspace, the sums and the kernels' scratch for 2 x 32 tokens of width 32
    assert.is_true(gpu.device_bytes.backend > 32 * 2 ^ 20 and gpu.device_bytes.backend < 33 * 2 ^ 20,
      tostring(gpu.device_bytes.backend))
    for _, p in ipairs({ cpu, gpu }) do
      local sum = 0
      for _, k in ipairs(plan.MEM_FIELDS) do
        if k ~= "total" then sum = sum + p.device_bytes[k] end
      end
      assert.are.equal(p.device_bytes.total, sum)
    end
    -- fp32 stores 4 bytes an element on both: the backend line is the whole difference
    assert.are.equal(gpu.device_bytes.total - cpu.device_bytes.total, gpu.device_bytes.backend)
    local res = support.moonspeed({ "plan", TINY, "device=cuda" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches("\n  backend +32%.%d%d MiB +0 B  the backend's own scratch", res.stdout)
    res = support.moonspeed({ "plan", TINY })
    assert.matches("\n  backend +0 B +0 B ", res.stdout)
  end)

  it("says a tiny recipe fits", function()
    local res = support.moonspeed({ "plan", TINY, "train.batch=8" })
    assert.are.equal(0, res.code)
    assert.matches("8 x seq_len 32", res.stdout)
    assert.matches("\nfits: the plan needs [%d.]+ [KM]iB, [%d.]+ GiB to spare\n$", res.stdout)
  end)
end)

describe("the command line", function()
  after_each(function() support.cleanup() end)

  for _, cmd in ipairs({ "run", "plan", "sample", "repl", "plot", "keys", "check", "prepare-bytes", "version" }) do
    it("explains `" .. cmd .. " --help`", function()
      local res = support.moonspeed({ cmd, "--help" })
      assert.are.equal(0, res.code)
      assert.matches("^usage: moonspeed " .. cmd:gsub("%-", "%%-"), res.stdout)
      assert.are.same(res, support.moonspeed({ "help", cmd }))
    end)
  end

  it("lists the commands", function()
    local res = support.moonspeed({ "--help" })
    assert.are.equal(0, res.code)
    for _, cmd in ipairs({ "run", "plan", "sample", "repl", "plot", "keys", "check", "prepare%-bytes", "version" }) do
      assert.matches("\n  " .. cmd .. " ", res.stdout)
    end
    local none = support.moonspeed({})
    assert.are.equal(2, none.code)
    assert.are.equal(res.stdout, none.stderr)
  end)

  local usage_errors = {
    { { "frobnicate" }, 'moonspeed: unknown command "frobnicate"\nrun `moonspeed --help` for the list of commands\n' },
    { { "sampel" }, 'moonspeed: unknown command "sampel"; did you mean sample?\nrun `moonspeed --help` for the list of commands\n' },
    { { "run", "--bogus" }, "moonspeed run: unknown option --bogus\nrun `moonspeed run --help` for usage\n" },
    { { "run", "--run-dri", "x" }, "moonspeed run: unknown option --run-dri; did you mean --run-dir?\nrun `moonspeed run --help` for usage\n" },
    { { "run", "--run-dir" }, "moonspeed run: option --run-dir needs a value\nrun `moonspeed run --help` for usage\n" },
    { { "run", "a.lua", "b.lua" }, 'moonspeed run: unexpected argument "b.lua"\nrun `moonspeed run --help` for usage\n' },
    { { "sample" }, "moonspeed sample: missing RUN_DIR (a directory written by moonspeed run)\nrun `moonspeed sample --help` for usage\n" },
    { { "sample", "x", "--tokens", "many" }, 'moonspeed sample: option --tokens needs an integer, got "many"\nrun `moonspeed sample --help` for usage\n' },
    { { "plot" }, "moonspeed plot: missing RUN_DIR (a directory written by moonspeed run)\nrun `moonspeed plot --help` for usage\n" },
    { { "prepare-bytes", "t.txt" }, "moonspeed prepare-bytes: missing --out DIR\nrun `moonspeed prepare-bytes --help` for usage\n" },
    { { "keys", "extra" }, 'moonspeed keys: unexpected argument "extra"\nrun `moonspeed keys --help` for usage\n' },
  }
  for _, u in ipairs(usage_errors) do
    it("rejects `moonspeed " .. table.concat(u[1], " ") .. "` with exit status 2", function()
      local res = support.moonspeed(u[1])
      assert.are.equal(u[2], res.stderr)
      assert.are.equal(2, res.code)
      assert.are.equal("", res.stdout)
    end)
  end

  it("tells what a run directory lacks", function()
    local dir = support.tmpdir()
    local res = support.moonspeed({ "sample", dir })
    assert.are.equal(1, res.code)
    assert.are.equal(("moonspeed: %s has no recipe.lua: is it a finished run directory of moonspeed run?\n"):format(dir), res.stderr)
  end)

  it("prints the version", function()
    local res = support.moonspeed({ "version" })
    assert.are.equal(0, res.code)
    assert.matches("^moonspeed %d+%.%d+%.%d+ %(LuaJIT 2%.1", res.stdout)
  end)

  it("checks a recipe and prints it resolved", function()
    local res = support.moonspeed({ "check", TINY, "lr=1e-3" })
    assert.are.equal(0, res.code)
    local dir = support.tmpdir()
    support.write(dir .. "/r.lua", res.stdout)
    local r = recipe.load(dir .. "/r.lua")
    assert.are.same(recipe.load(TINY, { "lr=1e-3" }), r)
  end)

  it("prepares byte shards from a text file", function()
    local dir = support.tmpdir()
    support.write(dir .. "/t.txt", ("And God said, Let there be light: and there was light.\n"):rep(3000))
    local res = support.moonspeed({ "prepare-bytes", dir .. "/t.txt", "--out", dir .. "/out/kjv" })
    assert.are.equal(0, res.code)
    local train, val = res.stdout:match("^train: (%d+) tokens %-> .-/train%.bin\nval:   (%d+) tokens %-> .-/val%.bin\n$")
    assert.is_not_nil(train)
    assert.is_true(tonumber(train) > 10 * tonumber(val))
    assert.are.same({ "train.bin", "val.bin" }, support.ls(dir .. "/out/kjv"))
  end)

  it("finds its Lua modules when installed, and through MOONSPEED_HOME", function()
    local dir = support.tmpdir()
    local inst = support.sh(("make -s install PREFIX=%s"):format(support.quote(dir)))
    assert.are.equal(0, inst.code, inst.stderr)
    local res = support.sh(support.quote(dir .. "/bin/moonspeed") .. " check", { cwd = dir })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches("resolved from " .. dir:gsub("%p", "%%%0") .. "/share/moonspeed/recipes/default%.lua", res.stdout)
    local bad = support.sh(support.quote(dir .. "/bin/moonspeed") .. " version", { env = { MOONSPEED_HOME = dir } })
    assert.are.equal(1, bad.code)
    assert.are.equal(("moonspeed: MOONSPEED_HOME=%s does not hold lua/moonspeed/cli.lua; point it at a moonspeed source tree or <prefix>/share/moonspeed\n"):format(dir), bad.stderr)
    local good = support.sh(support.quote(dir .. "/bin/moonspeed") .. " version", { env = { MOONSPEED_HOME = dir .. "/share/moonspeed" } })
    assert.are.equal(0, good.code)
  end)
end)
