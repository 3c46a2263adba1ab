-- lua/moonspeed/train.lua — the training loop of `moonspeed run`.
--
-- One Trainer owns the engine of a run, its run directory and its metrics.
-- Between two steps (never inside one) it calls every control it was given —
-- control(t) — so that an attached operator, a signal handler or a checkpoint
-- policy can act on a consistent state: read t.step, t.last, t:memory(), and
-- ask for t:request("checkpoint") or t:request("stop"). Controls run in the
-- order given, so one placed last (the checkpoint policy) sees what the
-- others asked for in t.requests; the trainer stops when "stop" was asked.
--
-- A profile window (train.profile, or t:profile(n, done) from a control)
-- opens between two steps and closes right after its last step: the device
-- times every op in between on its own clock, evaluations left out.

local engine_mod = require "moonspeed.engine"
local metrics = require "moonspeed.metrics"
local sys = require "moonspeed.sys"
local fmt = require "moonspeed.fmt"
local json = require "moonspeed.json"

local M = {}

local Trainer = {}
Trainer.__index = Trainer
M.Trainer = Trainer

local function quiet() end

-- r, info: the resolved recipe and its origin; dir: the run directory (rank 0's);
-- e: an engine made from r; opts.say(text) prints on the lead rank;
-- opts.controls: functions called between steps; opts.resumed_at: the step a
-- resumed run starts from (its metrics go on in the same metrics.jsonl).
function M.new(r, info, e, dir, opts)
  local lead = e:rank() == 0
  local t = setmetatable({
    r = r, info = info, e = e, dir = dir, lead = lead,
    say = lead and (opts.say or quiet) or quiet,
    controls = opts.controls or {},
    requests = {},
    skips = 0, skipped = 0,   -- steps skipped in a row, and in all (train.nan = "skip")
    step = e:get_step(), first_step = e:get_step(),
    last = nil, last_val = nil,
    sums = { tokens = 0, seconds = 0, flops = 0, offload_update = 0, offload_wait = 0, recomputed = 0 },
  }, Trainer)
  t.writer = lead and metrics.writer(dir .. "/metrics.jsonl", opts.resumed_at) or { write = quiet, close = quiet }
  t.progress = lead and metrics.progress({ total = r.train.steps, tty = sys.isatty(1), every = r.log.every })
    or { step = quiet, finish = quiet }
  t.memory_bytes = e:memory().reserved.total
  local p = e:plan() -- the host memory it plans: on a GPU its host column, on the CPU all of it
  t.host_planned = p.host_bytes.total + (p.device == "cuda" and 0 or p.device_bytes.total)
  return t
end

function Trainer:request(what) self.requests[what] = true end

-- Times every op of the next `steps` steps; done(result) then gets
-- e:profile_stop()'s { seconds, ops } with from and to, the steps it covered
-- (fewer when the run ends first), this rank and the device (fmt.profile shows
-- it). nil and why while another window is open.
function Trainer:profile(steps, done)
  if self.window then
    return nil, ("a profile of steps %d-%d is running"):format(self.window.from, self.window.to)
  end
  self.e:profile_start()
  self.window = { from = self.step + 1, to = self.step + steps, done = done, seconds = 0, ops = {}, by = {} }
  return true
end

local PROFILE_ORDER = { "from", "to", "rank", "device", "seconds", "ops" } -- profile.json's keys

-- Stops the device's timing and adds what it timed to the window's sums.
local function pause_window(self)
  local w, part = self.window, self.e:profile_stop()
  w.seconds = w.seconds + part.seconds
  for _, op in ipairs(part.ops) do
    local o = w.by[op.name]
    if not o then
      o = { name = op.name, calls = 0, seconds = 0 }
      w.by[op.name], w.ops[#w.ops + 1] = o, o
    end
    o.calls, o.seconds = o.calls + op.calls, o.seconds + op.seconds
  end
end

-- f() with the window paused (an evaluation is not a training step's work).
local function unprofiled(self, f)
  if not self.window then return f() end
  pause_window(self)
  local v = f()
  self.e:profile_start()
  return v
end

-- Closes the window after last_step; returns the function that hands its result on.
local function close_window(self, last_step)
  local w = self.window
  pause_window(self)
  self.window = nil
  table.sort(w.ops, function(a, b) return a.seconds > b.seconds end)
  local res = { from = w.from, to = last_step, rank = self.e:rank(), device = self.r.device, seconds = w.seconds,
                ops = w.ops }
  return function() w.done(res) end
end

-- train.profile's report: a table on the lead rank's output and profile.json
-- in the run directory.
local function report_profile(self, res)
  if res.to < res.from then return end -- the run ended before the window's first step
  for _, line in ipairs(fmt.profile(res)) do self.say(line) end
  if self.lead then
    engine_mod.write_atomic(self.dir .. "/profile.json", json.encode(res, PROFILE_ORDER) .. "\n")
  end
end

-- One optimizer step, its evaluation when due, and its metrics record.
function Trainer:one_step()
  local r, e = self.r, self.e
  local ok, st = pcall(e.step, e)
  if not ok then self.progress:finish() error(st, 0) end
  -- a window closes before the evaluation; its report follows the step's line
  local w = self.window
  local closed = w and (st.step >= w.to or st.step >= r.train.steps) and close_window(self, st.step)
  if st.skipped then
    self.skips, self.skipped = self.skips + 1, self.skipped + 1
    self.say(("step %d skipped: the loss or gradients are not finite (first in %s); %d skipped so far")
      :format(st.step, st.nonfinite, self.skipped))
    if self.skips >= r.train.nan_max_skips then
      self.progress:finish()
      error(("%d steps in a row were skipped (train.nan_max_skips): the loss or gradients stay NaN or Inf, first in %s; lower train.lr or set train.clip")
        :format(self.skips, st.nonfinite), 0)
    end
  else
    self.skips = 0
  end
  local rec = {
    step = st.step, loss = st.loss, lr = st.lr, grad_norm = st.grad_norm, tokens = st.tokens,
    tokens_per_s = st.tokens_per_s, gflops = st.gflops, mfu = st.mfu, memory_bytes = self.memory_bytes,
    host_peak_bytes = sys.peak_rss(),
    comm = next(st.comm) and st.comm or nil, comm_bytes = st.comm_bytes, comm_seconds = st.comm_seconds,
    busbw = st.busbw, seconds = st.seconds, offload = st.offload, skipped = st.skipped, nonfinite = st.nonfinite,
  }
  if (r.train.eval_every > 0 and st.step % r.train.eval_every == 0) or st.step == r.train.steps then
    rec.val_loss = unprofiled(self, function() return e:eval() end)
    self.last_val = rec.val_loss
  end
  rec.elapsed = sys.now() - self.t0
  self.writer:write(rec)
  self.progress:step(rec)
  local s = self.sums
  s.tokens, s.seconds, s.flops = s.tokens + st.tokens, s.seconds + st.seconds, s.flops + st.flops
  if st.offload then
    s.offload_update, s.offload_wait = s.offload_update + st.offload.update_s, s.offload_wait + st.offload.wait_s
    s.recomputed = s.recomputed + (st.offload.recomputed and 1 or 0)
  end
  self.step, self.last = st.step, rec
  if closed then closed() end
end

-- Runs the controls; returns true to go on.
function Trainer:between_steps()
  local n = self.r.train.profile
  if n > 0 and self.step == self.first_step + 1 then -- the first step warms up
    self:profile(n, function(res) report_profile(self, res) end)
  end
  for _, control in ipairs(self.controls) do control(self) end
  local stop = self.requests.stop
  self.requests = {}
  return not stop
end

-- Trains from the engine's current step to train.steps; returns true when
-- every step ran, false when a control stopped the run early.
function Trainer:run()
  self.t0 = sys.now()
  local finished = true
  while self.step < self.r.train.steps do
    self:one_step()
    if not self:between_steps() then finished = self.step >= self.r.train.steps break end
  end
  self.progress:finish()
  if self.window then close_window(self, self.step)() end
  self.writer:close()
  self.elapsed = sys.now() - self.t0
  return finished
end

function Trainer:summary()
  local s, last = self.sums, self.last
  if not last then return ("done: no step to run (the run was at step %d of %d)"):format(self.step, self.r.train.steps) end
  local ran = self.step - self.first_step
  local steps = self.first_step == 0 and ("%d steps"):format(ran)
    or ("%d steps (to step %d, resumed at %d)"):format(ran, self.step, self.first_step)
  local peak = sys.peak_rss()
  local offload = ""
  if last.offload then -- what the host's updates of offloaded units cost, a step on average
    offload = ("; offload: the host's AdamW %.1f ms a step, waited for %.1f ms a step (%.1f%%)%s"):format(
      1e3 * s.offload_update / ran, 1e3 * s.offload_wait / ran, 100 * s.offload_wait / s.seconds,
      s.recomputed > 0 and (", the bet redone in %d of %d steps"):format(s.recomputed, ran) or "")
  end
  return ("done: %s in %s, %s tok/s, %.2f GFLOP/s (mfu %.1f%%); loss %.4f, val_loss %s%s%s"):format(
    steps, fmt.duration(self.elapsed), fmt.si(s.tokens / s.seconds), s.flops / s.seconds / 1e9,
    100 * s.flops / s.seconds / 1e9 / engine_mod.peak_gflops(self.r), last.loss,
    self.last_val and ("%.4f"):format(self.last_val) or "-",
    peak and ("; host memory peak %s, planned %s"):format(fmt.bytes(peak), fmt.bytes(self.host_planned)) or "", offload)
end

return M
