-- lua/moonspeed/metrics.lua — the metrics file of a run and the progress line.
--
-- metrics.jsonl holds one JSON object per optimizer step, flushed as written:
--   step          optimizer steps done (1 after the first step)
--   loss          mean training cross-entropy of the step, nats/token
--   val_loss      held-out loss, on the steps where it was evaluated
--   lr            learning rate of the step
--   grad_norm     global gradient norm before clipping
--   tokens        tokens in the step
--   tokens_per_s  tokens / wall time of the step
--   gflops        model GFLOP/s (6N + 6LTd FLOPs per token)
--   mfu           gflops / log.peak_gflops
--   memory_bytes  bytes the engine reserved (all arenas)
--   host_peak_bytes  the process's peak resident memory so far (VmHWM), measured: to
--                 set beside the plan's host bytes
--   comm          per collective kind of the step on rank 0 (all_gather, reduce_scatter,
--                 all_reduce, broadcast, barrier): { calls, bytes, seconds, busbw (bytes/s) }
--   comm_bytes    their bytes in all; comm_seconds their time; busbw their bus bandwidth,
--                 bytes/s (nccl-tests convention)
--   seconds       wall time of the step; elapsed: since the first step began
--
-- The progress line: on a terminal one live line rewritten in place
-- (step/total, loss, lr, tokens/s, ETA), kept as a permanent line on the steps
-- with an evaluation (then with val_loss); otherwise a plain line every
-- log.every steps, on the first and the last step, and on every evaluation.

local json = require "moonspeed.json"
local fmt = require "moonspeed.fmt"

local M = {}

M.fields = { "step", "loss", "val_loss", "lr", "grad_norm", "tokens", "tokens_per_s",
             "gflops", "mfu", "memory_bytes", "host_peak_bytes", "comm", "comm_bytes", "comm_seconds", "busbw", "seconds", "elapsed",
             "skipped", "nonfinite" }

local Writer = {}
Writer.__index = Writer

-- Opens (creates) a metrics file for writing. resumed_at: a run resumed at
-- that step goes on in the same file, which keeps the records up to it (the
-- steps after it are trained again).
function M.writer(path, resumed_at)
  if resumed_at then
    local kept, old = {}, io.open(path, "rb")
    for line in old and old:lines() or function() end do
      local step = tonumber(line:match('^{"step":(%d+)'))
      if step and step <= resumed_at then kept[#kept + 1] = line .. "\n" end
    end
    if old then old:close() end
    local f = io.open(path, "wb")
    if f then f:write(table.concat(kept)) f:close() end
  end
  local f, err = io.open(path, resumed_at and "ab" or "wb")
  if not f then error("cannot write metrics: " .. tostring(err), 2) end
  return setmetatable({ f = f, path = path }, Writer)
end

-- Numbers keep 9 significant digits: exact for the engine's float32 values,
-- and plenty for timings.
function Writer:write(rec)
  local out = {}
  for k, v in pairs(rec) do
    if type(v) == "number" and v == v and v ~= math.floor(v) then v = tonumber(("%.9g"):format(v)) end
    out[k] = v
  end
  self.f:write(json.encode(out, M.fields), "\n")
  self.f:flush()
end

function Writer:close()
  if self.f then self.f:close(); self.f = nil end
end

-- Reads a metrics file into a list of records; bad lines are errors with line numbers.
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local recs, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if line:match("%S") then
      local v, jerr = json.decode(line)
      if not v then
        f:close()
        return nil, ("%s:%d: %s"):format(path, n, jerr)
      end
      recs[#recs + 1] = v
    end
  end
  f:close()
  return recs
end

---------------------------------------------------------------------------

local Progress = {}
Progress.__index = Progress

-- opts: total (steps), tty (bool), every (plain-line period), out (file)
function M.progress(opts)
  return setmetatable({
    total = opts.total, tty = opts.tty, every = opts.every or 10,
    out = opts.out or io.stdout, times = 0, timed = 0, live = false,
  }, Progress)
end

-- Seconds left, from the mean step time (the first step, which warms caches, excluded).
function Progress:eta(step)
  if self.timed == 0 then return nil end
  return self.times / self.timed * (self.total - step)
end

function Progress:line(rec)
  local eta = self:eta(rec.step)
  local w = #tostring(self.total)
  local comm = (rec.busbw or 0) > 0
    and ("  comm %sB %s/s"):format(fmt.si(rec.comm_bytes), fmt.bytes(rec.busbw)) or ""
  return ("step %" .. w .. "d/%d  loss %.4f  %slr %.2e  %s tok/s%s  ETA %s"):format(
    rec.step, self.total, rec.loss, rec.val_loss and ("val_loss %.4f  "):format(rec.val_loss) or "",
    rec.lr, fmt.si(rec.tokens_per_s), comm, eta and fmt.duration(eta) or "?")
end

-- After each step. A step with an evaluation leaves a line that stays.
function Progress:step(rec)
  if rec.step > 1 then
    self.times = self.times + rec.seconds
    self.timed = self.timed + 1
  end
  if self.tty then
    self.out:write("\r", self:line(rec), "\27[K", rec.val_loss and "\n" or "")
    self.live = not rec.val_loss
  elseif rec.val_loss or rec.step == 1 or rec.step % self.every == 0 or rec.step == self.total then
    self.out:write(self:line(rec), "\n")
  end
  self.out:flush()
end

function Progress:finish()
  if self.live then self.out:write("\n"); self.live = false end
  self.out:flush()
end

return M
