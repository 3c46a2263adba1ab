-- spec/lua/faults_spec.lua — faults a long run meets: preemption (SIGTERM),
-- NaN or Inf in the loss or gradients, a full disk and a read-only folder
-- while checkpointing. Each asserts that nothing was lost and that the error
-- names the cause.

local support = require "support"

local TINY = "spec/fixtures/recipes/tiny.lua"

local function ok(res) assert.are.equal(0, res.code, res.stdout .. res.stderr) end

local function run(args, opts)
  local a = { "run", TINY, "train.eval_every=0", "log.sample_tokens=0" }
  for _, x in ipairs(args) do a[#a + 1] = x end
  return support.moonspeed(a, opts)
end

-- A tmpfs of `size` (and mount options) at path, made as root; nil where
-- mounting is not allowed. The caller unmounts it.
local function small_fs(path, size, opts)
  local cmd = ("[ $(id -u) = 0 ] && mkdir -p %s && mount -t tmpfs -o %ssize=%s tmpfs %s")
    :format(support.quote(path), opts or "", size, support.quote(path))
  return support.sh(cmd).code == 0 or nil
end
local function unmount(...)
  for _, path in ipairs({ ... }) do support.sh("umount " .. support.quote(path) .. " 2>/dev/null") end
end

local function quoted(list)
  local q = {}
  for i, a in ipairs(list) do q[i] = support.quote(a) end
  return table.concat(q, " ")
end

describe("faults", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())
  teardown(function() support.cleanup() end)

  it("SIGTERM to a two-rank launch: every rank stops after the same step, saves, exits 143; the resume continues exactly", function()
    local dir = support.tmpdir()
    local common = { TINY, "train.steps=100000", "train.batch=8", "zero.stage=2", "train.eval_every=0",
                     "log.sample_tokens=0", "log.every=1" }
    local launch = { support.exe, "launch", "--nproc-per-node", "2", "--grace", "20", unpack(common) }
    local out = dir .. "/term.out"
    -- preempted once it has trained a while; the launcher forwards the signal
    local res = support.sh(("{ %s --run-dir %s >%s 2>&1 & pid=$!; " ..
      "while kill -0 $pid 2>/dev/null && ! grep -q 'step *30/' %s; do sleep 0.02; done; " ..
      "kill -TERM $pid; wait $pid; echo rc=$?; }"):format(quoted(launch), support.quote(dir .. "/run"),
      support.quote(out), support.quote(out)))
    local text = support.read(out)
    assert.matches("rc=143\n", res.stdout, text)
    local step = tonumber(text:match("%[rank 0%] stopped by SIGTERM after step (%d+) of 100000; the checkpoint in [^\n]* resumes it"))
    assert.is_not_nil(step, text)
    assert.matches(("%%[rank 0%%] checkpoint [^\n]*step%%-%08d written %%(2 files%%)"):format(step), text)
    assert.matches("moonspeed launch: interrupted by SIGTERM", text)
    -- the resumed run and one never stopped reach step + 3 with the same state
    local stop = tostring(step + 3)
    local launch_args = { "launch", "--nproc-per-node", "2", unpack(common) }
    local function go(run_dir)
      local a = { unpack(launch_args) }
      for _, x in ipairs({ "--run-dir", run_dir, "--stop-at", stop }) do a[#a + 1] = x end
      return support.moonspeed(a)
    end
    local resumed = go(dir .. "/run")
    ok(resumed)
    assert.matches(("resumed from [^\n]*step%%-%08d at step %d %%(saved by 2 ranks, ZeRO stage 2%%)"):format(step, step),
      resumed.stdout)
    ok(go(dir .. "/straight"))
    for r = 0, 1 do
      local name = ("/checkpoints/step-%08d/rank-%05d-of-00002.state"):format(step + 3, r)
      assert.are.equal(support.read(dir .. "/straight" .. name), support.read(dir .. "/run" .. name))
    end
  end)

  describe("NaN", function()
    it("stops the run by default, naming the unit whose gradients went bad, with nothing updated", function()
      local dir = support.tmpdir()
      local res = run({ "train.steps=10", "--run-dir", dir }, { env = { MS_FAULT = "nan_grad:5:block.1" } })
      assert.are.equal(1, res.code)
      assert.matches("step 5: the loss is [%d.]+ and the gradient norm nan; the first non%-finite numbers are in " ..
        "the gradients of unit block.1%. Nothing was updated; lower train.lr, set train.clip, or set train.nan = \"skip\"", res.stderr)
    end)

    it("skips and counts the step under train.nan = \"skip\", and training goes on", function()
      local dir = support.tmpdir()
      local res = run({ "train.steps=10", "train.nan=skip", "--run-dir", dir }, { env = { MS_FAULT = "nan_grad:5:block.0" } })
      ok(res)
      assert.matches("step 6 skipped: the loss or gradients are not finite %(first in the gradients of unit block.0%); 1 skipped so far", res.stdout)
      local skipped = 0
      for line in support.read(dir .. "/metrics.jsonl"):gmatch("[^\n]+") do
        if line:find('"skipped":true', 1, true) then
          skipped = skipped + 1
          assert.matches('"step":6,', line)
          assert.matches('"nonfinite":"the gradients of unit block.0"', line)
        end
      end
      assert.are.equal(1, skipped)
      assert.matches("done: 10 steps", res.stdout)
    end)

    it("names the unit whose parameters went bad, and ends a run that keeps skipping", function()
      local res = support.luajit(([[
        local recipe = require "moonspeed.recipe"
        local engine = require "moonspeed.engine"
        local r = recipe.load(%q, { "train.nan=skip" })
        local e = engine.new(r)
        e:step()
        local w = e:param("block.1.attn_norm")
        local v = w:read()
        v[3] = 0 / 0
        w:set(v)
        local st = e:step()
        print(st.skipped, st.nonfinite)
      ]]):format(TINY))
      ok(res)
      assert.matches("true\tthe parameters of unit block.1\n", res.stdout)
      local dir = support.tmpdir()
      res = run({ "train.steps=20", "train.nan=skip", "train.nan_max_skips=3", "--run-dir", dir },
        { env = { MS_FAULT = "nan_grad:4:head" } })
      assert.are.equal(0, res.code, res.stderr) -- one bad step is not three in a row
    end)
  end)

  describe("checkpointing onto a bad disk", function()
    it("a full disk: the save fails naming the file and the cause, the earlier checkpoint stays, nothing half-written", function()
      local dir = support.tmpdir()
      ok(run({ "train.steps=30", "--stop-at", "10", "--run-dir", dir }))
      local before = support.read(dir .. "/checkpoints/step-00000010/rank-00000-of-00001.state")
      -- a file-size limit below a state file's size: every write of one fails as on a full disk
      local a = { support.exe, "run", TINY, "train.eval_every=0", "log.sample_tokens=0", "train.steps=30",
                  "--stop-at", "20", "--run-dir", dir }
      local res = support.sh(("ulimit -f %d; %s"):format(math.floor(#before / 1024 / 2), quoted(a)))
      assert.are.equal(1, res.code)
      assert.matches("checkpoint [^\n]*step%-00000020 could not be written: rank 0 could not write its checkpoint state: " ..
        "checkpoint state [^\n]*rank%-00000%-of%-00001.state: write failed: File too large; [^\n]*the checkpoint of step 10 is intact",
        res.stderr)
      assert.are.same({ "latest", "step-00000010" }, support.ls(dir .. "/checkpoints"))
      assert.are.equal("step-00000010\n", support.read(dir .. "/checkpoints/latest"))
      assert.are.equal(before, support.read(dir .. "/checkpoints/step-00000010/rank-00000-of-00001.state"))
      ok(support.moonspeed({ "checkpoint", dir }))
    end)

    it("a disk without room for one checkpoint is refused before any training; one without room for the kept ones is warned about", function()
      local dir = support.tmpdir()
      -- two small file systems: a tmpfs each (as root), the tiny model's checkpoint being about 315 KiB
      local small, mid = dir .. "/small", dir .. "/mid"
      if not (small_fs(small, "128k") and small_fs(mid, "1m")) then
        unmount(small, mid)
        pending("a small file system needs a tmpfs mount, which needs root")
        return
      end
      local none = run({ "train.steps=5", "checkpoint.every=1", "checkpoint.dir=" .. small .. "/ck", "--run-dir", dir .. "/r1" })
      local kept = run({ "train.steps=5", "checkpoint.every=1", "checkpoint.dir=" .. mid .. "/ck", "--run-dir", dir .. "/r2" })
      local listed = support.ls(mid .. "/ck")
      unmount(small, mid)
      assert.are.equal(1, none.code)
      assert.matches("a checkpoint of this run takes 314%.%d+ KiB %(fp32 master weights and both Adam moments of 26%.8 K " ..
        "parameters%), and the file system of [^\n]*/small/ck has 128%.00 KiB free: not even one fits; point checkpoint%.dir " ..
        "at a larger one or make room; nothing was trained", none.stderr)
      assert.is_nil(none.stdout:find("step ", 1, true))
      -- room for 3: keep = 3 needs 4 while saving, so the fourth save fails and the three before it stay
      assert.matches("warning: the file system of [^\n]*/mid/ck has room for 3 more checkpoints of 314%.%d+ KiB beside " ..
        "the 0 there; with checkpoint%.keep = 3, 4 are on disk at once while a new one is written", kept.stderr)
      assert.are.equal(1, kept.code)
      assert.matches("step%-00000004 could not be written: [^\n]*No space left on device; [^\n]*the checkpoint of step 3 is intact",
        kept.stderr)
      assert.are.same({ "latest", "step-00000001", "step-00000002", "step-00000003" }, listed)
    end)

    it("a run folder without room for the final weights is warned about before training; their save then fails, half-writing nothing", function()
      local dir = support.tmpdir()
      local small = dir .. "/small"
      if not small_fs(small, "64k") then pending("a small file system needs a tmpfs mount, which needs root") return end
      local res = run({ "train.steps=4", "--run-dir", small .. "/run" })
      local left = support.ls(small .. "/run")
      unmount(small)
      assert.matches("^warning: the run writes model%.bin %(104%.88 KiB: the fp32 weights%) into [^\n]*/small/run at its end, " ..
        "and that file system has [%d.]+ KiB free; make room before then, or give %-%-run%-dir on a larger one\n", res.stderr)
      assert.are.equal(1, res.code)
      assert.matches("model%.bin: write failed: No space left on device; the previous file %(if any%) is unchanged", res.stderr)
      assert.are.same({ "metrics.jsonl", "recipe.lua" }, left) -- the four steps' records; no partial model.bin
    end)

    it("a read-only folder is refused before any training", function()
      local dir = support.tmpdir()
      local ro = dir .. "/ro"
      assert.is_true(os.execute("mkdir -p " .. support.quote(ro)) == 0 or true)
      -- root ignores permissions: a read-only mount then; others: a folder without write permission
      local mounted = small_fs(ro, "64k", "ro,")
      if not mounted then
        assert.are.equal(0, support.sh("[ $(id -u) != 0 ] && chmod 555 " .. support.quote(ro)).code,
          "running as root without the right to mount: cannot make a read-only folder here")
      end
      local res = run({ "train.steps=5", "checkpoint.every=2", "checkpoint.dir=" .. ro .. "/ck", "--run-dir", dir .. "/run" })
      if mounted then unmount(ro) else support.sh("chmod 755 " .. support.quote(ro)) end
      assert.are.equal(1, res.code)
      assert.matches(("checkpoints cannot be written to %s/ck: cannot create folder %s/ck: [^\n]*; point checkpoint.dir at a writable folder; nothing was trained")
        :format(ro:gsub("%p", "%%%0"), ro:gsub("%p", "%%%0")), res.stderr)
      assert.is_nil(res.stdout:find("step ", 1, true))
    end)
  end)
end)
