-- lua/moonspeed/launch.lua — `moonspeed launch`: the local ranks of a job.
--
--   moonspeed launch --nproc-per-node N [--nnodes M --node-rank R --master HOST:PORT] RECIPE [overrides]
--   moonspeed launch --nproc-per-node N ... -- PROGRAM [ARGS]
--
-- Each rank is `moonspeed run RECIPE overrides` (or PROGRAM) with MS_RANK,
-- MS_WORLD_SIZE, MS_LOCAL_RANK, MS_LOCAL_WORLD_SIZE, MS_MASTER_ADDR,
-- MS_MASTER_PORT and MS_JOB_TOKEN in its environment; the engine's rendezvous
-- reads them. The supervision (output prefixes, signals, stopping the others
-- when one fails, leaving nothing behind) is ms_launch in the engine.
--
-- The world: the flags; inside a Kubeflow Trainer pod, PET_NNODES,
-- PET_NODE_RANK, PET_MASTER_ADDR/PET_MASTER_PORT (and PET_NPROC_PER_NODE when
-- --nproc-per-node is not given); else one node, whose rank 0 listens on
-- 127.0.0.1 on a free port. The job token is MS_JOB_TOKEN when set, random for
-- a one-node job, and derived from the master address and the world shape
-- across nodes (every node must agree on it without talking first).

local ffi = require "ffi"

local M = {}

local SIGNAMES = { [1] = "SIGHUP", [2] = "SIGINT", [3] = "SIGQUIT", [6] = "SIGABRT", [9] = "SIGKILL",
                   [11] = "SIGSEGV", [15] = "SIGTERM" }

local function env_int(getenv, name)
  local v = getenv(name)
  if v == nil or v == "" then return nil end
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < 0 then
    error(("%s=%s is not a whole number"):format(name, v), 0)
  end
  return n
end

local function random_token()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16) or tostring(os.time()) .. tostring(os.clock())
  if f then f:close() end
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- FNV-1a of a string, as 16 hex digits (two 32-bit halves, so Lua numbers stay exact).
local function hash(s)
  local h1, h2 = 2166136261, 84696351
  for i = 1, #s do
    local b = s:byte(i)
    h1 = bit.tobit(bit.bxor(h1, b) * 16777619)
    h2 = bit.tobit(bit.bxor(h2, b + i) * 16777619)
  end
  return bit.tohex(h1) .. bit.tohex(h2)
end

-- HOST:PORT, [v6]:PORT -> host, port
local function split_master(s)
  local host, port = s:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return host, port
end

-- The job's shape from the flags and the environment; raises usage(msg) for bad flags.
function M.world(opts, usage, getenv)
  getenv = getenv or os.getenv
  local w = {}
  local pet = getenv("PET_NNODES") ~= nil and getenv("PET_NNODES") ~= ""
  w.nproc = opts["nproc-per-node"]
  if not w.nproc and pet then
    local v = getenv("PET_NPROC_PER_NODE")
    w.nproc = tonumber(v)
    if not w.nproc then
      usage(("PET_NPROC_PER_NODE=%s is not a number of processes; pass --nproc-per-node"):format(tostring(v)))
    end
  end
  if not w.nproc then usage("missing --nproc-per-node N (the ranks to start on this node)") end
  if w.nproc < 1 then usage("--nproc-per-node must be at least 1") end
  w.nnodes = opts.nnodes or (pet and env_int(getenv, "PET_NNODES")) or 1
  w.node_rank = opts["node-rank"] or (pet and env_int(getenv, "PET_NODE_RANK")) or 0
  if w.nnodes < 1 then usage("--nnodes must be at least 1") end
  if w.node_rank < 0 or w.node_rank >= w.nnodes then
    usage(("--node-rank %d is not in 0..%d"):format(w.node_rank, w.nnodes - 1))
  end
  if opts.master then
    w.host, w.port = split_master(opts.master)
    if not w.host then usage(("--master %s is not HOST:PORT"):format(opts.master)) end
  elseif pet and getenv("PET_MASTER_ADDR") then
    w.host = getenv("PET_MASTER_ADDR")
    w.port = env_int(getenv, "PET_MASTER_PORT") or 29500
  elseif w.nnodes > 1 then
    usage("a job of several nodes needs --master HOST:PORT (the host of node 0's first rank)")
  end
  w.world = w.nnodes * w.nproc
  w.first = w.node_rank * w.nproc
  w.source = pet and "PET_*" or "flags"
  local token = getenv("MS_JOB_TOKEN")
  if token and token ~= "" then
    w.token = token
  elseif w.nnodes == 1 then
    w.token = random_token()
  else
    w.token = "ms-" .. hash(("%s:%d/%dx%d"):format(w.host, w.port, w.nnodes, w.nproc))
  end
  return w
end

local function signame(sig) return SIGNAMES[sig] or ("signal " .. sig) end
M.signame = signame

-- Runs argv as the local ranks of w; returns the exit status for the CLI.
function M.run_ranks(w, argv, opts)
  opts = opts or {}
  local C = require("moonspeed.engine").C
  if not w.host then
    local port = ffi.new("int32_t[1]")
    if C.ms_free_port(port) ~= 0 then error(ffi.string(C.ms_last_error()), 0) end
    w.host, w.port = "127.0.0.1", port[0]
  end
  local env = {
    "MS_WORLD_SIZE=" .. w.world, "MS_LOCAL_WORLD_SIZE=" .. w.nproc, "MS_MASTER_ADDR=" .. w.host,
    "MS_MASTER_PORT=" .. w.port, "MS_JOB_TOKEN=" .. w.token,
  }
  for _, e in ipairs(opts.env or {}) do env[#env + 1] = e end
  local cargv = ffi.new("const char *[?]", #argv + 1)
  local keep = {}
  for i, a in ipairs(argv) do keep[i] = a; cargv[i - 1] = a end
  cargv[#argv] = nil
  local cenv = ffi.new("const char *[?]", #env + 1)
  for i, e in ipairs(env) do keep[#keep + 1] = e; cenv[i - 1] = e end
  cenv[#env] = nil
  local res = ffi.new("ms_launch_result")
  local flags = opts.flags or C.MS_LAUNCH_PREFIX
  local st = C.ms_launch(opts.path, cargv, cenv, w.nproc, w.first, flags, opts.grace_ms or 5000, res)
  if st ~= 0 then error(ffi.string(C.ms_last_error()), 0) end
  if res.interrupted ~= 0 then
    io.stderr:write(("moonspeed launch: interrupted by %s; stopped the ranks\n"):format(signame(res.interrupted)))
    return 128 + res.interrupted
  end
  if res.failed_rank >= 0 then
    local others = res.stopped == 0 and "" or
      ("; stopped the %s"):format(res.stopped == 1 and "other rank" or (res.stopped .. " other ranks"))
    error(("rank %d %s%s"):format(res.failed_rank, ffi.string(res.what), others), 0)
  end
  return 0
end

M.command = {
  summary = "start the local ranks of a distributed job",
  help = [[
usage: moonspeed launch --nproc-per-node N [--nnodes M --node-rank R --master HOST:PORT]
                        RECIPE [section.key=value ...] [--run-dir DIR] [--only N]
       moonspeed launch --nproc-per-node N ... -- PROGRAM [ARGS ...]

Starts N ranks on this node, each running `moonspeed run RECIPE overrides` (or
PROGRAM), with the world in their environment: MS_RANK, MS_WORLD_SIZE,
MS_LOCAL_RANK, MS_LOCAL_WORLD_SIZE, MS_MASTER_ADDR, MS_MASTER_PORT, MS_JOB_TOKEN.
Ranks of node R are R*N .. R*N+N-1; rank 0 listens at the master address.

Every output line is prefixed with [rank K]. SIGINT and SIGTERM are passed on to
the ranks. When a rank exits non-zero or dies of a signal, the others are stopped
(SIGTERM, then SIGKILL after --grace seconds) and launch exits non-zero naming the
rank and how it ended. Nothing it started is left running.

On one node the master is 127.0.0.1 on a free port. Inside a Kubeflow Trainer pod
the world comes from PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT
(and PET_NPROC_PER_NODE when --nproc-per-node is not given). Ranks of another job
cannot join: the job token is MS_JOB_TOKEN when set, random on one node, and
derived from the master address and the world's shape across nodes.

options:
  --nproc-per-node N   ranks on this node
  --nnodes M           nodes in the job (1)
  --node-rank R        this node's place, 0..M-1 (0)
  --master HOST:PORT   where rank 0 listens (needed with several nodes)
  --grace SECONDS      how long stopped ranks get before SIGKILL (5)
  --run-dir DIR        passed on to every rank's `moonspeed run` (rank 0 writes
                       there); on one node the default is a new folder under
                       log.dir, named once here so every rank knows where
                       checkpoints go
  --stop-at STEP       passed on: stop after STEP with a checkpoint, to resume later
  --only N             passed on: variant N of an experiment (sweep) alone; without
                       it every rank runs all the variants, one after the other
]],
  spec = { raw = true },
  run = function(args, usage, parse)
    local before, program = {}, nil
    for i, a in ipairs(args) do
      if a == "--" then
        program = {}
        for j = i + 1, #args do program[#program + 1] = args[j] end
        break
      end
      before[#before + 1] = a
    end
    local opts, pos, overrides = parse(before, {
      flags = { ["--nproc-per-node"] = "int", ["--nnodes"] = "int", ["--node-rank"] = "int",
                ["--master"] = "string", ["--grace"] = "number", ["--run-dir"] = "string",
                ["--stop-at"] = "int", ["--only"] = "int" },
      max_positional = 1, overrides = true })
    local w = M.world(opts, usage)
    local argv, path
    if program then
      if #program == 0 then usage("nothing after --: give the program each rank runs") end
      if pos[1] or #overrides > 0 or opts["run-dir"] or opts["stop-at"] or opts.only then
        usage("give either RECIPE [overrides] [--run-dir DIR] [--stop-at STEP] or -- PROGRAM, not both")
      end
      argv, path = program, program[1]
    else
      if not pos[1] then usage("missing RECIPE (each rank runs `moonspeed run RECIPE`)") end
      argv = { "moonspeed", "run", pos[1] }
      for _, o in ipairs(overrides) do argv[#argv + 1] = o end
      local run_dir = opts["run-dir"]
      if not run_dir and w.nnodes == 1 then
        local vs, is_exp = require("moonspeed.recipe").load_experiment(pos[1], overrides, opts.only)
        local info = vs[1].info
        -- an experiment's variants go in <this>/<variant> (moonspeed run --run-dir)
        run_dir = ("%s/%s-%s"):format(vs[1].r.log.dir, is_exp and info.experiment or info.name, os.date("%Y%m%d-%H%M%S"))
      end
      if run_dir then argv[#argv + 1] = "--run-dir"; argv[#argv + 1] = run_dir end
      if opts["stop-at"] then argv[#argv + 1] = "--stop-at"; argv[#argv + 1] = tostring(opts["stop-at"]) end
      if opts.only then argv[#argv + 1] = "--only"; argv[#argv + 1] = tostring(opts.only) end
    end
    local grace = opts.grace or 5
    if grace < 0 then usage("--grace must be >= 0") end
    return M.run_ranks(w, argv, { path = path, grace_ms = math.max(1, math.floor(grace * 1000 + 0.5)) })
  end,
}

return M
