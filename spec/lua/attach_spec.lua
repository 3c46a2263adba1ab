-- spec/lua/attach_spec.lua — `moonspeed attach` tried as a new user would: a run
-- in the background, commands through its control socket (from a script and
-- from a terminal), the learning rate changed mid-run and seen in
-- metrics.jsonl, a checkpoint asked for and written, a clean stop; and on
-- two ranks, where rank 0 hands the change to every rank.

local support = require "support"
local json = require "moonspeed.json"
local sys = require "moonspeed.sys"

local TINY = "spec/fixtures/recipes/tiny.lua"

-- Starts `args` (a moonspeed command) in the background; returns a handle
-- whose files (out, pid, rc) live in a folder of their own.
local function start(args)
  local book = support.tmpdir()
  local q = {}
  for i, a in ipairs(args) do q[i] = support.quote(a) end
  os.execute(("( %s %s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s ) >/dev/null 2>&1 &"):format(
    support.quote(support.exe), table.concat(q, " "), support.quote(book .. "/out"), support.quote(book .. "/pid"),
    support.quote(book .. "/rc")))
  return { book = book }
end

local function sleep(s) os.execute("sleep " .. s) end

local function wait_for(pred, seconds, what)
  for _ = 1, seconds * 10 do
    if pred() then return end
    sleep(0.1)
  end
  error("waited " .. seconds .. " s for " .. what)
end

local function has_socket(dir, rank)
  for _, f in ipairs(sys.list_dir(dir)) do
    if f == ("control-%d.sock"):format(rank or 0) then return true end
  end
  return false
end

-- Waits for the background command to end; returns its exit status and output.
local function finish(h, seconds)
  wait_for(function() return support.exists(h.book .. "/rc") end, seconds or 60, "the run to end")
  return tonumber(support.read(h.book .. "/rc")), support.read(h.book .. "/out")
end

local function kill(h)
  local pid = support.read(h.book .. "/pid")
  if pid and not support.exists(h.book .. "/rc") then os.execute("kill -TERM " .. tonumber(pid) .. " 2>/dev/null") end
end

local function answers(stdout)
  local out = {}
  for line in stdout:gmatch("[^\n]+") do out[#out + 1] = assert(json.decode(line), line) end
  return out
end

local function records(dir)
  local out = {}
  for line in support.read(dir .. "/metrics.jsonl"):gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
  return out
end

describe("moonspeed attach", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())
  local running = {}
  teardown(function()
    for _, h in ipairs(running) do kill(h) end
    support.cleanup()
  end)

  it("changes the learning rate mid-run, sees it in metrics.jsonl, asks for a checkpoint, stops cleanly", function()
    local dir = support.tmpdir() .. "/run"
    local h = start({ "run", TINY, "train.steps=1000000", "train.schedule=constant", "log.every=1000000",
                      "--run-dir", dir })
    running[#running + 1] = h
    wait_for(function() return has_socket(dir) end, 30, "the control socket")
    assert.are.equal("600", support.sh("stat -c %a " .. support.quote(dir .. "/control-0.sock")).stdout:match("%d+"))
    local res = support.moonspeed({ "attach", dir }, { stdin = "status\nmetrics\nmemory\nlr 5e-4\nmetrics\ncheckpoint\nstop\n" })
    assert.are.equal(0, res.code, res.stderr)
    local a = answers(res.stdout)
    assert.are.equal(7, #a)
    for _, x in ipairs(a) do assert.is_true(x.ok, json.encode(x)) end
    local status, m1, mem, lr, m2, ckpt, stop = unpack(a)
    assert.are.same({ 0, 1, 1000000, "tiny" }, { status.rank, status.world, status.steps, status.recipe })
    assert.is_true(status.step >= 1)
    assert.are.equal(m1.step, m1.metrics.step)
    assert.is_true(math.abs(m1.metrics.lr - 3e-3) < 1e-9)
    assert.are.equal(mem.memory.reserved.total, m1.metrics.memory_bytes)
    assert.is_true(mem.memory.used.total <= mem.memory.reserved.total)
    assert.are.equal(5e-4, lr.lr)
    assert.are.equal(lr.step + 1, lr.from_step)
    assert.is_true(math.abs(m2.metrics.lr - 5e-4) < 1e-10)
    assert.are.same({ "checkpoint", true }, { ckpt.requested, ckpt.step >= lr.step })
    assert.are.equal("stop", stop.requested)
    local rc, out = finish(h)
    assert.are.equal(0, rc, out)
    assert.matches(("stopped after step %d of 1000000, as asked"):format(stop.step), out)
    -- every step up to the change ran at 3e-3, every step after it at 5e-4; the last is the stop's
    local recs = records(dir)
    assert.are.equal(stop.step, #recs)
    for _, r in ipairs(recs) do
      local want = r.step <= lr.step and 3e-3 or 5e-4
      if r.step > 2 then assert.is_true(math.abs(r.lr - want) < 1e-9, ("step %d: lr %g, want %g"):format(r.step, r.lr, want)) end
    end
    assert.is_true(support.exists(dir .. "/model.bin"))
    assert.is_true(support.exists(dir .. "/sample.txt"))
    -- the checkpoint asked for, after the step it was asked at, and the stop's
    local ck = require("moonspeed.checkpoint")
    local steps = {}
    for _, c in ipairs(ck.list(dir .. "/checkpoints")) do
      assert.is_true((ck.verify(c.path)))
      steps[c.step] = true
    end
    assert.is_true(steps[stop.step] and steps[ckpt.step])
    assert.is_false(has_socket(dir))   -- removed at the end of the run
  end)

  it("profiles the next steps of a running job: every op by name, answered when they are done", function()
    local dir = support.tmpdir() .. "/run"
    local h = start({ "run", TINY, "train.steps=1000000", "log.every=1000000", "--run-dir", dir })
    running[#running + 1] = h
    wait_for(function() return has_socket(dir) end, 30, "the control socket")
    local res = support.moonspeed({ "attach", dir }, { stdin = "profile 3\nprofile two\nprofile\nstop\n" })
    assert.are.equal(1, res.code, res.stderr) -- "profile two" is refused
    local three, bad, one, stop = unpack(answers(res.stdout))
    assert.is_true(three.ok, json.encode(three))
    local p = three.profile
    assert.are.same({ p.from + 2, 0, "cpu" }, { p.to, p.rank, p.device })
    assert.are.equal(p.to, three.step)
    local busy, calls = 0, {}
    for _, op in ipairs(p.ops) do busy, calls[op.name] = busy + op.seconds, op.calls end
    assert.is_true(busy > 0 and busy <= p.seconds)
    -- 2 layers, 2 micro-batches a step: 4 attention forwards a step, over 3 steps
    assert.are.same({ 12, 12, 6 }, { calls.attention_fwd, calls.attention_bwd, calls.lmhead_xent })
    assert.are.same({ false, 'profile takes the number of steps to time, a whole number from 1, e.g. profile 2; got "two"' },
      { bad.ok, bad.error })
    assert.is_true(one.ok and #one.profile.ops > 0, json.encode(one)) -- "profile": one step
    assert.are.same({ one.step, one.step }, { one.profile.from, one.profile.to })
    assert.is_true(one.profile.from > p.to)
    assert.is_true(stop.ok)
    local rc, out = finish(h)
    assert.are.equal(0, rc, out)
  end)

  it("works as a prompt on a terminal, says what is wrong, and fails when there is no run", function()
    local dir = support.tmpdir() .. "/run"
    local h = start({ "run", TINY, "train.steps=1000000", "train.schedule=constant", "log.every=1000000",
                      "--run-dir", dir })
    running[#running + 1] = h
    wait_for(function() return has_socket(dir) end, 30, "the control socket")
    local cmd = ("script -qfec %s /dev/null"):format(support.quote(support.exe .. " attach " .. dir))
    local home = support.tmpdir()
    local res = support.sh(cmd, { stdin = "status\nmetrcs\nlr abc\nlr 1e-3\nstop\n", env = { HOME = home, TERM = "xterm" } })
    assert.matches("attached to " .. dir:gsub("%p", "%%%0") .. " %(rank 0%)", res.stdout)
    assert.matches("attach> ", res.stdout)
    assert.matches("recipe: tiny", res.stdout)
    assert.matches('error: unknown command "metrcs"; did you mean metrics%?', res.stdout)
    assert.matches('error: lr needs a number > 0 and < 10, e%.g%. lr 3e%-4; got "abc"', res.stdout)
    assert.matches("\nfrom_step: %d+\r?\nlr: 0%.001\r?\n", res.stdout)
    assert.matches("requested: stop", res.stdout)
    local rc = finish(h)
    assert.are.equal(0, rc)
    local none = support.moonspeed({ "attach", dir }, { stdin = "status\n" })
    assert.are.equal(1, none.code)
    assert.matches("cannot attach to " .. dir:gsub("%p", "%%%0") .. "/control%-0%.sock: No such file or directory; " ..
      "is the run still going", none.stderr)
  end)

  it("finds the newest run under runs/ when no run directory is given", function()
    local cwd = support.tmpdir()
    local root = support.root
    os.execute(("cd %s && { %s run %s train.steps=1000000 log.every=1000000 data.train=%s data.val=%s " ..
      ">out 2>&1 & echo $! >pid; }"):format(support.quote(cwd), support.quote(support.exe),
      support.quote(root .. "/" .. TINY), support.quote(root .. "/data/kjv/train.bin"),
      support.quote(root .. "/data/kjv/val.bin")))
    local h = { book = cwd }
    running[#running + 1] = h
    wait_for(function()
      local runs = sys.list_dir(cwd .. "/runs")
      return runs[1] ~= nil and has_socket(cwd .. "/runs/" .. runs[1])
    end, 30, "the run's control socket")
    local res = support.sh(support.quote(support.exe) .. " attach", { cwd = cwd, stdin = "status\nstop\n" })
    assert.are.equal(0, res.code, res.stderr)
    local a = answers(res.stdout)
    assert.are.equal("runs/" .. sys.list_dir(cwd .. "/runs")[1], a[1].run_dir)
    assert.are.equal("stop", a[2].requested)
    wait_for(function() return support.exists(cwd .. "/runs/" .. sys.list_dir(cwd .. "/runs")[1] .. "/model.bin") end,
      30, "the stopped run to write its weights")
  end)

  it("on two ranks, reads either rank and hands lr and stop from rank 0 to both", function()
    local dir = support.tmpdir() .. "/run"
    local h = start({ "launch", "--nproc-per-node", "2", TINY, "train.steps=1000000", "train.schedule=constant",
                      "log.every=1000000", "--run-dir", dir })
    running[#running + 1] = h
    wait_for(function() return has_socket(dir, 0) and has_socket(dir, 1) end, 60, "both control sockets")
    local r1 = support.moonspeed({ "attach", dir, "--rank", "1" }, { stdin = "status\nstop\n" })
    assert.are.equal(1, r1.code)
    local a1 = answers(r1.stdout)
    assert.are.same({ true, 1, 2 }, { a1[1].ok, a1[1].rank, a1[1].world })
    assert.are.same({ false, "rank 1 only answers help, status, metrics, memory and profile; send stop to rank 0, " ..
      "which hands it to every rank" }, { a1[2].ok, a1[2].error })
    local r0 = support.moonspeed({ "attach", dir }, { stdin = "lr 7e-4\n" })
    assert.are.equal(0, r0.code, r0.stderr)
    local changed = answers(r0.stdout)[1].from_step
    -- rank 1 applied it between the same two steps: its next steps run at 7e-4 too
    wait_for(function()
      local s = answers(support.moonspeed({ "attach", dir, "--rank", "1" }, { stdin = "status\n" }).stdout)[1]
      return s.step >= changed + 1
    end, 30, "rank 1 to take a step")
    local s1 = answers(support.moonspeed({ "attach", dir, "--rank", "1" }, { stdin = "status\n" }).stdout)[1]
    assert.is_true(math.abs(s1.lr - 7e-4) < 1e-10, tostring(s1.lr))
    local stop = answers(support.moonspeed({ "attach", dir }, { stdin = "stop\n" }).stdout)[1]
    assert.is_true(stop.ok)
    local rc, out = finish(h)
    assert.are.equal(0, rc, out)
    assert.matches(("%%[rank 0%%] stopped after step %d of 1000000, as asked"):format(stop.step), out)
    local recs = records(dir)
    assert.are.equal(stop.step, #recs)
    assert.is_true(math.abs(recs[#recs].lr - 7e-4) < 1e-10)
  end)
end)

describe("ms_engine_set_lr", function()
  it("refuses a learning rate out of range, naming it", function()
    local res = support.luajit([[
      local recipe = require "moonspeed.recipe"
      local engine = require "moonspeed.engine"
      local r = recipe.load("spec/fixtures/recipes/tiny.lua")
      local e = engine.new(r)
      local ok, err = pcall(e.set_lr, e, 0)
      local C = engine.C
      local st = C.ms_engine_set_lr(e.h, 12)
      print(ok, err)
      print(tonumber(st), require("ffi").string(C.ms_last_error()))
      e:set_lr(1e-3)
      print(e:step().lr)
      e:free()
    ]], { cwd = support.root })
    assert.are.equal(0, res.code, res.stderr)
    local lines = {}
    for l in res.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches("^false\t.*e:set_lr%(lr%): lr must be a number > 0 and < 10, got 0$", lines[1])
    assert.are.equal("1\tlearning rate 12 is out of range: it must be > 0 and < 10", lines[2])
    -- the tiny recipe warms up over 2 steps: the first step runs at half the new peak
    assert.is_true(math.abs(tonumber(lines[3]) - 5e-4) < 1e-9, lines[3])
  end)
end)
