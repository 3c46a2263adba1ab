-- spec/lua/checkpoint_spec.lua — sharded checkpoints: bitwise-identical resume
-- (one rank, two ranks at stages 0 and 3, with the optimizer state and the
-- parameters offloaded, resharded onto four), atomic saves
-- that survive SIGKILL at any moment, damaged files refused by name, keep,
-- async, and save -> load -> save giving the same bytes.

local support = require "support"

local TINY = "spec/fixtures/recipes/tiny.lua"
-- two ranks need a global batch of whole micro-batches on each
local COMMON = { TINY, "train.steps=40", "train.batch=8", "train.micro_batch=2", "train.eval_every=0",
                 "log.sample_tokens=0" }

local function args(...)
  local out = {}
  for _, a in ipairs(COMMON) do out[#out + 1] = a end
  for _, a in ipairs({ ... }) do out[#out + 1] = a end
  return out
end

local function launch(n, ...)
  local a = { "launch", "--nproc-per-node", tostring(n) }
  for _, x in ipairs(args(...)) do a[#a + 1] = x end
  return support.moonspeed(a)
end

local function run(...)
  local a = { "run" }
  for _, x in ipairs(args(...)) do a[#a + 1] = x end
  return support.moonspeed(a)
end

local function losses(dir)
  local out = {}
  for l in support.read(dir .. "/metrics.jsonl"):gmatch("[^\n]+") do
    out[#out + 1] = assert(tonumber(l:match('"loss":([%d.e+-]+)')))
  end
  return out
end

local function ok(res) assert.are.equal(0, res.code, res.stdout .. res.stderr) end

-- The fp32 values of a model.bin (after its 16-byte header and unit headers
-- alike: both files share the layout, so comparing every float is enough).
local function floats(path)
  local ffi = require "ffi"
  local s = support.read(path)
  local n = math.floor(#s / 4)
  local p = ffi.cast("const float *", s)
  local out = {}
  for i = 0, n - 1 do out[i + 1] = p[i] end
  return out, s
end

describe("checkpoints", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())
  teardown(function() support.cleanup() end)

  it("resume bitwise: 40 steps straight equal 20 + stop + resume + 20 on one rank", function()
    local dir = support.tmpdir()
    ok(run("--run-dir", dir .. "/straight"))
    local first = run("--run-dir", dir .. "/split", "--stop-at", "20")
    ok(first)
    assert.matches("checkpoint [^\n]*/split/checkpoints/step%-00000020 written %(1 file%)", first.stdout)
    assert.matches("stopped after step 20 of 40, as asked; the checkpoint in [^\n]*/split/checkpoints resumes it", first.stdout)
    local second = run("--run-dir", dir .. "/split")
    ok(second)
    assert.matches("resumed from [^\n]*step%-00000020 at step 20 %(saved by 1 rank, ZeRO stage 0%)", second.stdout)
    assert.are.same(losses(dir .. "/straight"), losses(dir .. "/split"))
    assert.are.equal(support.read(dir .. "/straight/model.bin"), support.read(dir .. "/split/model.bin"))
  end)

  for _, stage in ipairs({ 0, 3 }) do
    it(("resume bitwise on two ranks at ZeRO stage %d"):format(stage), function()
      local dir = support.tmpdir()
      local z = "zero.stage=" .. stage
      ok(launch(2, z, "--run-dir", dir .. "/straight"))
      ok(launch(2, z, "--run-dir", dir .. "/split", "--stop-at", "20"))
      local files = support.ls(dir .. "/split/checkpoints/step-00000020")
      assert.are.same({ "meta.json", "rank-00000-of-00002.state", "rank-00001-of-00002.state" }, files)
      local again = launch(2, z, "--run-dir", dir .. "/split")
      ok(again)
      assert.matches(("resumed from [^\n]* at step 20 %%(saved by 2 ranks, ZeRO stage %d%%)"):format(stage), again.stdout)
      assert.are.same(losses(dir .. "/straight"), losses(dir .. "/split"))
      assert.are.equal(support.read(dir .. "/straight/model.bin"), support.read(dir .. "/split/model.bin"))
    end)
  end

  it("an offloaded run resumes bitwise, and ends with the weights of the run kept on the device", function()
    local dir = support.tmpdir()
    ok(run("--run-dir", dir .. "/device"))
    ok(run("offload.optimizer=cpu", "offload.ratio=0.5", "--run-dir", dir .. "/split", "--stop-at", "20"))
    ok(run("offload.optimizer=cpu", "offload.ratio=0.5", "--run-dir", dir .. "/split"))
    assert.are.same(losses(dir .. "/device"), losses(dir .. "/split"))
    assert.are.equal(support.read(dir .. "/device/model.bin"), support.read(dir .. "/split/model.bin"))
  end)

  it("two ranks at stage 3 with the optimizer and the parameter shards offloaded resume bitwise", function()
    local dir = support.tmpdir()
    local off = { "zero.stage=3", "offload.optimizer=cpu", "offload.params=cpu" }
    ok(launch(2, "zero.stage=3", "--run-dir", dir .. "/device"))
    ok(launch(2, off[1], off[2], off[3], "--run-dir", dir .. "/split", "--stop-at", "20"))
    ok(launch(2, off[1], off[2], off[3], "--run-dir", dir .. "/split"))
    assert.are.same(losses(dir .. "/device"), losses(dir .. "/split"))
    assert.are.equal(support.read(dir .. "/device/model.bin"), support.read(dir .. "/split/model.bin"))
  end)

  it("reshards: a two-rank stage-3 checkpoint resumes on four ranks (stage 3) and on one (stage 0)", function()
    local dir = support.tmpdir()
    ok(launch(2, "zero.stage=3", "--run-dir", dir .. "/straight"))
    ok(launch(2, "zero.stage=3", "--run-dir", dir .. "/two", "--stop-at", "20"))
    for _, case in ipairs({ { "four", function(d) return launch(4, "zero.stage=3", "--run-dir", d) end },
                            { "one", function(d) return run("--run-dir", d) end } }) do
      local d = dir .. "/" .. case[1]
      ok(support.sh(("cp -r %s %s"):format(support.quote(dir .. "/two"), support.quote(d))))
      local res = case[2](d)
      ok(res)
      assert.matches("resumed from [^\n]* at step 20 %(saved by 2 ranks, ZeRO stage 3%)", res.stdout)
      local a, b = losses(dir .. "/straight"), losses(d)
      assert.are.equal(40, #b)
      for i = 1, 40 do
        assert.is_true(math.abs(a[i] - b[i]) <= 1e-6 * a[i], ("%s, step %d: %.9g vs %.9g"):format(case[1], i, a[i], b[i]))
      end
      local wa, wb = floats(dir .. "/straight/model.bin"), floats(d .. "/model.bin")
      assert.are.equal(#wa, #wb)
      local worst = 0
      for i = 5, #wa do worst = math.max(worst, math.abs(wa[i] - wb[i]) / math.max(1, math.abs(wa[i]))) end
      assert.is_true(worst <= 1e-6, ("%s: final weights differ by %g"):format(case[1], worst))
    end
  end)

  it("keeps the newest `keep`, points `latest` at the newest, and async saves write the same bytes", function()
    local dir = support.tmpdir()
    ok(run("--run-dir", dir .. "/sync", "checkpoint.every=5", "checkpoint.keep=2"))
    ok(run("--run-dir", dir .. "/async", "checkpoint.every=5", "checkpoint.keep=2", "checkpoint.async=true"))
    for _, d in ipairs({ "sync", "async" }) do
      assert.are.same({ "latest", "step-00000035", "step-00000040" }, support.ls(dir .. "/" .. d .. "/checkpoints"))
      assert.are.equal("step-00000040\n", support.read(dir .. "/" .. d .. "/checkpoints/latest"))
    end
    for _, s in ipairs({ "35", "40" }) do
      local f = "/checkpoints/step-000000" .. s .. "/rank-00000-of-00001.state"
      assert.are.equal(support.read(dir .. "/sync" .. f), support.read(dir .. "/async" .. f))
    end
    assert.are.equal(support.read(dir .. "/sync/model.bin"), support.read(dir .. "/async/model.bin"))
  end)

  it("save -> load -> save gives byte-identical shards, and meta.json says what was saved", function()
    local dir = support.tmpdir()
    ok(launch(2, "zero.stage=1", "--run-dir", dir .. "/a", "--stop-at", "10"))
    local res = support.luajit(([[
      local recipe = require "moonspeed.recipe"
      local engine = require "moonspeed.engine"
      local checkpoint = require "moonspeed.checkpoint"
      local json = require "moonspeed.json"
      local r = recipe.load(%q, { "train.batch=8", "train.micro_batch=2", "zero.stage=1", "checkpoint.dir=%s/b" })
      r.checkpoint.resume = "%s/a/checkpoints/step-00000010"
      -- one rank of a world of one reads both ranks' files, then writes its own
      local e = engine.new(r)
      local p = checkpoint.policy(r, e, "%s/b")
      print(p:resume())
      p:save(false)
      print(json.encode(checkpoint.read_meta("%s/a/checkpoints/step-00000010")))
    ]]):format(TINY, dir, dir, dir, dir))
    ok(res)
    assert.matches("^10\n", res.stdout)
    local meta = support.json_result(res)
    assert.are.equal(10, meta.step)
    assert.are.equal(2, meta.world_size)
    assert.are.equal(1, meta.zero_stage)
    assert.are.equal(80, meta.data.sequences_seen)
    assert.are.same({ generator = "philox4x32-10", seed = 1234, counter = 10 }, meta.rng)
    assert.matches("resolved recipe of the run", meta.recipe)
    assert.are.equal(2, #meta.files)
    -- the world-of-one file holds what both ranks' files held, in the same order
    local one = support.read(dir .. "/b/step-00000010/rank-00000-of-00001.state")
    local r0 = support.read(dir .. "/a/checkpoints/step-00000010/rank-00000-of-00002.state")
    local r1 = support.read(dir .. "/a/checkpoints/step-00000010/rank-00001-of-00002.state")
    assert.is_true(#one > 0 and #one < #r0 + #r1) -- one header instead of two
    -- a second round trip through the world of one is byte-identical
    local again = support.luajit(([[
      local recipe = require "moonspeed.recipe"
      local engine = require "moonspeed.engine"
      local checkpoint = require "moonspeed.checkpoint"
      local r = recipe.load(%q, { "train.batch=8", "train.micro_batch=2", "zero.stage=1", "checkpoint.dir=%s/c" })
      r.checkpoint.resume = "%s/b/step-00000010"
      local e = engine.new(r)
      local p = checkpoint.policy(r, e, "%s/c")
      p:resume()
      p:save(false)
    ]]):format(TINY, dir, dir, dir))
    ok(again)
    assert.are.equal(one, support.read(dir .. "/c/step-00000010/rank-00000-of-00001.state"))
  end)

  it("exports a stopped run's newest checkpoint, or a checkpoint named, as the weights it holds", function()
    local dir = support.tmpdir()
    ok(launch(2, "zero.stage=3", "--run-dir", dir .. "/run", "--stop-at", "10"))
    ok(support.moonspeed({ "export", dir .. "/run", "--hf", dir .. "/from-run", "--dtype", "fp32" }))
    ok(support.moonspeed({ "export", dir .. "/run/checkpoints/step-00000010", "--hf", dir .. "/from-ckpt", "--dtype", "fp32" }))
    -- the same weights through the engine: resumed on one rank and saved as model.bin
    ok(support.luajit(([[
      local recipe = require "moonspeed.recipe"
      local engine = require "moonspeed.engine"
      local checkpoint = require "moonspeed.checkpoint"
      local r = recipe.load("%s/run/recipe.lua")
      r.checkpoint.resume = "%s/run/checkpoints/step-00000010"
      local e = engine.new(r)
      checkpoint.policy(r, e, "%s/unused"):resume()
      e:save("%s/model.bin")
    ]]):format(dir, dir, dir, dir)))
    support.sh("mkdir -p " .. support.quote(dir .. "/resumed"))
    support.write(dir .. "/resumed/recipe.lua", support.read(dir .. "/run/recipe.lua"))
    os.rename(dir .. "/model.bin", dir .. "/resumed/model.bin")
    ok(support.moonspeed({ "export", dir .. "/resumed", "--hf", dir .. "/from-bin", "--dtype", "fp32" }))
    local shard = "/model-00001-of-00001.safetensors"
    assert.are.equal(support.read(dir .. "/from-bin" .. shard), support.read(dir .. "/from-run" .. shard))
    assert.are.equal(support.read(dir .. "/from-bin" .. shard), support.read(dir .. "/from-ckpt" .. shard))
  end)

  describe("damage", function()
    local dir
    local ckpts
    before_each(function()
      dir = support.tmpdir()
      ok(run("--run-dir", dir .. "/r", "--stop-at", "20", "checkpoint.every=10"))
      ckpts = dir .. "/r/checkpoints"
    end)

    local function resume_from(...)
      return run("--run-dir", dir .. "/r", "--stop-at", "21", ...)
    end

    it("skips a truncated file with the reason, resuming from the one before", function()
      local f = ckpts .. "/step-00000020/rank-00000-of-00001.state"
      local s = support.read(f)
      support.write(f, s:sub(1, #s - 100))
      local res = resume_from()
      ok(res)
      assert.matches(("warning: skipping checkpoint [^\n]*step%%-00000020: [^\n]*rank%%-00000%%-of%%-00001.state: %d bytes, but meta.json records %d; the file is truncated")
        :format(#s - 100, #s), res.stderr)
      assert.matches("resumed from [^\n]*step%-00000010 at step 10", res.stdout)
    end)

    it("skips a modified byte (CRC-32C), and a save that never wrote meta.json", function()
      local f = ckpts .. "/step-00000020/rank-00000-of-00001.state"
      local s = support.read(f)
      local at = #s - 7
      support.write(f, s:sub(1, at - 1) .. string.char((s:byte(at) + 1) % 256) .. s:sub(at + 1))
      os.remove(ckpts .. "/step-00000010/meta.json")
      local res = resume_from()
      ok(res)
      assert.matches("skipping checkpoint [^\n]*step%-00000020: [^\n]*CRC%-32C is %x+, but meta.json records %x+; the file was modified or damaged", res.stderr)
      assert.matches("skipping checkpoint [^\n]*step%-00000010: meta.json is missing %(the save did not finish%)", res.stderr)
      assert.matches("no valid checkpoint in [^\n]*: starting at step 0", res.stdout)
    end)

    it("refuses a damaged checkpoint named explicitly, and one of another model", function()
      local f = ckpts .. "/step-00000020/rank-00000-of-00001.state"
      support.write(f, support.read(f):sub(1, 50))
      local res = resume_from("checkpoint.resume=" .. ckpts .. "/step-00000020")
      assert.are.equal(1, res.code)
      assert.matches("cannot resume from [^\n]*step%-00000020: [^\n]*the file is truncated", res.stderr)
      res = resume_from("model.dim=64")
      assert.are.equal(1, res.code)
      assert.matches("checkpoint [^\n]*step%-00000020 was saved by a different model %(model.dim 32 vs 64%)", res.stderr)
    end)

    it("warns when the resumed recipe changes the data order", function()
      local res = resume_from("train.seed=7", "train.batch=16")
      ok(res)
      assert.matches("warning: resuming [^\n]*step%-00000020 with another data order %(train.seed 1234 vs 7, " ..
        "train.batch 8 vs 16%): the steps after it differ from the saved run's", res.stderr)
    end)

    it("lists checkpoints and what is wrong with them", function()
      os.remove(ckpts .. "/step-00000010/meta.json")
      local res = support.moonspeed({ "checkpoint", ckpts })
      assert.are.equal(1, res.code)
      assert.matches("step%-00000020%s+step 20%s+1 rank%s+stage 0%s+[%d.]+ [KMG]?i?B%s+ok", res.stdout)
      assert.matches("step%-00000010%s+damaged: meta.json is missing", res.stdout)
      assert.matches("latest: step%-00000020", res.stdout)
    end)
  end)

  it("survives SIGKILL at 30 moments during saving: every final checkpoint is intact, and the state is as if never killed", function()
    local dir = support.tmpdir()
    local ck = dir .. "/ck"
    -- a state large next to its compute, so that most of the time goes to saving
    local shape = { "model.dim=512", "model.ffn_dim=1024", "model.n_heads=4", "model.n_kv_heads=2",
                    "train.batch=2", "train.micro_batch=1", "train.seq_len=16", "train.steps=100000",
                    "checkpoint.keep=2", "checkpoint.dir=" .. ck }
    local function cmd(run_dir, ...)
      local a = { support.quote(support.exe), "run" }
      for _, x in ipairs(args(unpack(shape))) do a[#a + 1] = support.quote(x) end
      for _, x in ipairs({ "--run-dir", run_dir, ... }) do a[#a + 1] = support.quote(x) end
      return table.concat(a, " ")
    end
    math.randomseed(20261129)
    local checkpoint = require "moonspeed.checkpoint"
    local during, tries = 0, 0
    while during < 30 do
      tries = tries + 1
      assert.is_true(tries <= 150, ("only %d of %d kills landed during a save"):format(during, tries - 1))
      -- every attempt resumes in a new run directory; once it has saved its
      -- first checkpoint, it is killed at a random moment of the saves that follow
      local out = ("%s/k%d.out"):format(dir, tries)
      support.sh(("{ %s checkpoint.every=1 >%s 2>&1 & pid=$!; " ..
        "while kill -0 $pid 2>/dev/null && ! grep -q written %s; do sleep 0.01; done; " ..
        "sleep %.3f; kill -KILL $pid; wait $pid; }"):format(cmd(dir .. "/k" .. tries), support.quote(out),
        support.quote(out), math.random() * 0.2))
      for _, n in ipairs(support.ls(ck)) do
        if n:match("^%.tmp%-") or n:match("^%.trash%-") then during = during + 1 break end
      end
      for _, c in ipairs(checkpoint.list(ck)) do
        local fine, why = checkpoint.verify(c.path)
        assert.is_true(fine, ("after kill %d: %s is damaged: %s"):format(tries, c.name, tostring(why)))
      end
    end
    -- the survivor resumes and goes on a few steps; a run never killed stops at
    -- the same step: both save the very same bytes
    local newest = checkpoint.list(ck)[1].step
    local stop = tostring(newest + 3)
    local last = support.sh(cmd(dir .. "/last", "checkpoint.every=1", "--stop-at", stop))
    ok(last)
    assert.matches(("resumed from [^\n]*step%%-%08d at step %d"):format(newest, newest), last.stdout)
    shape[#shape] = "checkpoint.dir=" .. dir .. "/straight-ck"
    ok(support.sh(cmd(dir .. "/straight", "--stop-at", stop)))
    local name = ("/step-%08d/rank-00000-of-00001.state"):format(newest + 3)
    assert.are.equal(support.read(dir .. "/straight-ck" .. name), support.read(ck .. name))
  end)
end)
