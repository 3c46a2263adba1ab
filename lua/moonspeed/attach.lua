-- lua/moonspeed/attach.lua — `moonspeed attach [RUN_DIR] [--rank N]`: a prompt into a running training.
--
-- Connects to RUN_DIR/control-<N>.sock (control.lua serves it between steps)
-- and sends one command per line: help, status, metrics, memory, profile [N],
-- lr X, checkpoint, stop. On a terminal it is a prompt with line editing and history
-- (libedit, as in `moonspeed repl`) and the answers are shown for people;
-- otherwise the commands come from standard input, one per line, and each
-- answer is printed as the JSON line the run sent (for scripts). Without
-- RUN_DIR the newest run under runs/ with a control socket is used.

local json = require "moonspeed.json"
local sock = require "moonspeed.sock"
local sys = require "moonspeed.sys"
local control = require "moonspeed.control"

local M = {}

-- The newest run directory under parent whose rank has a control socket.
local function newest_run(parent, rank)
  local names = sys.list_dir(parent)
  for i = #names, 1, -1 do
    local dir = parent .. "/" .. names[i]
    for _, f in ipairs(sys.list_dir(dir)) do
      if f == ("control-%d.sock"):format(rank) then return dir end
    end
  end
end

local function show(v, indent, out)
  indent, out = indent or "", out or {}
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local x = v[k]
    if type(x) == "table" and x ~= json.null and next(x) and #x == 0 then
      out[#out + 1] = ("%s%s:"):format(indent, k)
      show(x, indent .. "  ", out)
    elseif type(x) == "table" and #x > 0 then
      local items = {}
      for i, y in ipairs(x) do items[i] = tostring(y) end
      out[#out + 1] = ("%s%s: %s"):format(indent, k, table.concat(items, ", "))
    else
      local text = tostring(x)
      if type(x) == "number" then text = x == math.floor(x) and ("%d"):format(x) or ("%.6g"):format(x) end
      if type(x) == "number" and k:match("bytes$") or (indent ~= "" and type(x) == "number" and x > 1e6) then
        text = require("moonspeed.fmt").bytes(x)
      end
      out[#out + 1] = ("%s%s: %s"):format(indent, k, text)
    end
  end
  return out
end

-- An answer for people.
local function human(v)
  if v.ok == false then return "error: " .. tostring(v.error) end
  if v.event then return v.event end
  if v.profile then return table.concat(require("moonspeed.fmt").profile(v.profile), "\n") end
  local copy = {}
  for k, x in pairs(v) do if k ~= "ok" then copy[k] = x end end
  return table.concat(show(copy), "\n")
end

M.command = {
  summary = "a prompt into a running training: metrics, memory, profile, lr, checkpoint, stop",
  help = [[
usage: moonspeed attach [RUN_DIR] [--rank N] [--json]

Connects to a running `moonspeed run` through the socket RUN_DIR/control-N.sock
(default: rank 0 of the newest run under runs/) and sends commands, which the run
answers between two steps (never inside one):
  help                 the commands
  status               step, steps, rank, world, the lr of the last step
  metrics              the last step's metrics (as in metrics.jsonl)
  memory               bytes reserved and used, by purpose
  profile [N]          time every op of the next N steps (default 1) on the device's own clock:
                       per op ms a step, share and calls, and how long the device stood idle
  lr X                 the peak learning rate from the next step on (the schedule scales from it)
  checkpoint           ask for a checkpoint after this step
  stop                 stop cleanly after this step (weights and sample are written)
lr, checkpoint and stop go to rank 0, which hands them to every rank.

On a terminal: a prompt with line editing and history; Ctrl-D leaves. Otherwise
the commands are read from standard input, one per line, and every answer is
printed as one JSON line. Exit status 1 when a command was refused or the run
ended before answering.

options:
  --rank N   attach to rank N (its socket exists when the rank knows the run directory)
  --json     print the answers as JSON lines on a terminal too
]],
  spec = { flags = { ["--rank"] = "int", ["--json"] = "bool" }, max_positional = 1 },
}

function M.run(opts, pos, usage)
  local rank = opts.rank or 0
  if rank < 0 then usage("--rank must be >= 0") end
  local dir = pos[1] and pos[1]:gsub("/+$", "")
  if not dir then
    dir = newest_run("runs", rank)
    if not dir then
      error(("no run under runs/ has a control socket for rank %d; give the run directory " ..
        "(moonspeed attach RUN_DIR)"):format(rank), 0)
    end
  end
  local path = control.path(dir, rank)
  local conn, err = sock.connect(path)
  if not conn then
    error(("cannot attach to %s: %s; is the run still going (and is it rank %d's)?"):format(path, err, rank), 0)
  end
  local interactive = sys.isatty(0)
  local raw = opts.json or not interactive
  local reader = require("moonspeed.repl").reader(nil, io.stdout)
  if interactive then
    io.stdout:write(("attached to %s (rank %d). Commands: %s; Ctrl-D leaves.\n"):format(dir, rank,
      table.concat(control.COMMANDS, ", ")))
  end
  local status = 0
  while true do
    local line = reader.read(interactive and "attach> " or "")
    if line == nil then break end
    if not line:match("^%s*$") then
      reader.add(line)
      if not conn:send(line .. "\n", 5000) then
        io.stderr:write("moonspeed attach: the run has ended\n")
        status = 1
        break
      end
      local answer, why = conn:read_line(nil)
      if not answer then
        io.stderr:write(("moonspeed attach: the run ended before answering %q (%s)\n"):format(line, why))
        status = 1
        break
      end
      local v = json.decode(answer)
      if raw or not v then io.stdout:write(answer, "\n") else io.stdout:write(human(v), "\n") end
      io.stdout:flush()
      if not v or v.ok == false then status = 1 end
      if v and v.event then break end
    end
  end
  if interactive then io.stdout:write("\n") end
  reader.close()
  conn:close()
  return status
end

return M
