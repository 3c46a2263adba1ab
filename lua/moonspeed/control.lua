-- lua/moonspeed/control.lua — the control behind `moonspeed attach`: a UNIX socket in the run directory.
--
-- Each rank that knows the run directory listens at RUN_DIR/control-<rank>.sock
-- (mode 0600, the same user only; see sock.lua). The trainer calls the control
-- between steps, never inside one; it then accepts clients and answers every
-- complete line without waiting for anything. Commands (one line each; every
-- answer is one line of JSON with "ok" true or false):
--   help                   the commands
--   status                 step, steps, rank, world, run directory, the lr of the last step
--   metrics                the last step's record (what metrics.jsonl got)
--   memory                 bytes reserved and used by purpose (e:memory())
--   lr X | set lr X        the peak learning rate from the next step on (the schedule scales from it)
--   checkpoint             asks for a checkpoint after this step (t:request("checkpoint"))
--   stop                   stops cleanly after this step: a checkpoint, then weights and sample as usual
--   profile [N]            times every op of the next N steps (default 1) on the device's own clock;
--                          answered when the last of them is done: { from, to, seconds, ops }
-- profile is this rank's own and any rank answers it.
-- lr, checkpoint and stop change the run, so with several ranks they go to
-- rank 0, which hands them to every rank (e:broadcast, collective, once
-- between every two steps), so that all ranks apply them between the same two
-- steps; other ranks answer only the reading commands.

local json = require "moonspeed.json"
local sock = require "moonspeed.sock"

local M = {}

M.COMMANDS = { "help", "status", "metrics", "memory", "profile [N]", "lr X", "checkpoint", "stop" }

-- The socket path of a rank's control.
function M.path(dir, rank) return ("%s/control-%d.sock"):format(dir, rank or 0) end

local Control = {}
Control.__index = Control
Control.__call = function(self, t) return self:between_steps(t) end

-- opts: dir (the run directory, or nil: no socket), rank, world, say(text) for notes.
function M.new(opts)
  local c = setmetatable({ rank = opts.rank or 0, world = opts.world or 1, conns = {}, pending = {} }, Control)
  if opts.dir then
    -- another rank given the run directory may get here before rank 0 has made it
    local made, merr = require("moonspeed.sys").mkdir_p(opts.dir)
    local server, err = nil, merr
    if made then server, err = sock.listen(M.path(opts.dir, c.rank)) end
    if server then
      c.server = server
    elseif opts.say then
      opts.say("attach is not available: " .. err)
    end
  end
  return c
end

local function reply(conn, t)
  conn:send(json.encode(t, { "ok", "error", "step" }) .. "\n", 1000)
end

local function memory_table(m)
  local out = { reserved = {}, used = {} }
  for k, v in pairs(m.reserved) do out.reserved[k] = v end
  for k, v in pairs(m.used) do out.used[k] = v end
  return out
end

-- Answers one command line; changes are queued in self.pending with the client to answer.
function Control:command(t, conn, line)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  local cmd = (words[1] or ""):lower()
  if cmd == "set" then table.remove(words, 1) cmd = (words[1] or ""):lower() end
  if cmd == "" then return end
  if cmd == "help" then
    return reply(conn, { ok = true, commands = M.COMMANDS })
  elseif cmd == "status" then
    return reply(conn, { ok = true, step = t.step, steps = t.r.train.steps, rank = self.rank, world = self.world,
      run_dir = t.dir, recipe = t.info and t.info.name, lr = t.last and t.last.lr })
  elseif cmd == "metrics" then
    return reply(conn, { ok = true, step = t.step, metrics = t.last or json.null })
  elseif cmd == "memory" then
    return reply(conn, { ok = true, step = t.step, memory = memory_table(t.e:memory()) })
  elseif cmd == "profile" then
    local n = tonumber(words[2] or "1")
    if not n or n < 1 or n > 1e6 or n % 1 ~= 0 then
      return reply(conn, { ok = false, error = ("profile takes the number of steps to time, a whole number from 1, "
        .. "e.g. profile 2; got %q"):format(words[2]) })
    end
    local ok, why = t:profile(n, function(res) reply(conn, { ok = true, step = res.to, profile = res }) end)
    if not ok then return reply(conn, { ok = false, error = why .. "; ask again after it" }) end
    return
  elseif cmd == "lr" or cmd == "checkpoint" or cmd == "stop" then
    if self.rank ~= 0 then
      return reply(conn, { ok = false, error = ("rank %d only answers help, status, metrics, memory and profile; "
        .. "send %s to rank 0, which hands it to every rank"):format(self.rank, cmd) })
    end
    if cmd == "lr" then
      local lr = tonumber(words[2])
      if not lr or not (lr > 0 and lr < 10) then
        return reply(conn, { ok = false, error = ("lr needs a number > 0 and < 10, e.g. lr 3e-4; got %s")
          :format(words[2] and ("%q"):format(words[2]) or "nothing") })
      end
      self.pending.lr = { value = lr, conn = conn }
    else
      self.pending[cmd] = { conn = conn }
    end
    return
  end
  local suggestion
  for _, name in ipairs({ "help", "status", "metrics", "memory", "profile", "lr", "checkpoint", "stop" }) do
    if name:sub(1, 3) == cmd:sub(1, 3) then suggestion = name end
  end
  reply(conn, { ok = false, error = ("unknown command %q%s; commands: %s"):format(cmd,
    suggestion and ("; did you mean %s?"):format(suggestion) or "", table.concat(M.COMMANDS, ", ")) })
end

-- The changes as bytes for the other ranks: "lr=<x>;checkpoint;stop".
local function encode(p)
  local parts = {}
  if p.lr then parts[#parts + 1] = "lr=" .. json.number(p.lr.value) end
  if p.checkpoint then parts[#parts + 1] = "checkpoint" end
  if p.stop then parts[#parts + 1] = "stop" end
  local s = table.concat(parts, ";")
  return s .. (" "):rep(64 - #s)
end

local function decode(s)
  local p = {}
  local lr = s:match("lr=([^;%s]+)")
  if lr then p.lr = { value = tonumber(lr) } end
  if s:find("checkpoint", 1, true) then p.checkpoint = {} end
  if s:find("stop", 1, true) then p.stop = {} end
  return p
end

-- Applies the agreed changes to the trainer and answers the clients that asked.
function Control:apply(t, p)
  if p.lr then
    local ok, err = pcall(t.e.set_lr, t.e, p.lr.value)
    if p.lr.conn then
      reply(p.lr.conn, ok and { ok = true, step = t.step, lr = p.lr.value, from_step = t.step + 1 }
        or { ok = false, error = tostring(err) })
    end
  end
  if p.checkpoint then
    t:request("checkpoint")
    if p.checkpoint.conn then reply(p.checkpoint.conn, { ok = true, step = t.step, requested = "checkpoint" }) end
  end
  if p.stop then
    t:request("stop")
    if p.stop.conn then reply(p.stop.conn, { ok = true, step = t.step, requested = "stop" }) end
  end
end

function Control:between_steps(t)
  if self.server then
    -- one poll(2) without waiting; accept and read only what is there
    local waiting, readable = self.server:ready(self.conns)
    for _, conn in ipairs(readable) do
      for _, line in ipairs(conn:poll_lines()) do self:command(t, conn, line) end
    end
    if waiting then
      for _, conn in ipairs(self.server:accept()) do
        self.conns[#self.conns + 1] = conn
        for _, line in ipairs(conn:poll_lines()) do self:command(t, conn, line) end
      end
    end
    local alive = {}
    for _, conn in ipairs(self.conns) do
      if not conn.closed then alive[#alive + 1] = conn else conn:close() end
    end
    self.conns = alive
  end
  local p = self.pending
  self.pending = {}
  if self.world > 1 then
    local agreed = decode(t.e:broadcast(encode(p)))
    for k, v in pairs(agreed) do if p[k] then v.conn = p[k].conn end end
    p = agreed
  end
  self:apply(t, p)
end

-- Closes the socket (removing it) and the clients: they read the end of the run.
function Control:close()
  for _, conn in ipairs(self.conns) do
    conn:send('{"ok":true,"event":"the run ended"}\n', 100)
    conn:close()
  end
  self.conns = {}
  if self.server then self.server:close() end
end

return M
