-- lua/moonspeed/bench.lua — `moonspeed bench comm`: bus bandwidth of the collectives.
--
-- The command starts --world local ranks (ms_launch, as `moonspeed launch`
-- does), each running `moonspeed bench comm --worker`; the workers meet
-- through the rendezvous, time every collective with ms_comm_bench, and rank 0
-- prints the table. Under a launcher of your own (several nodes, a Kubeflow
-- pod) run the workers directly: `moonspeed launch ... -- moonspeed bench comm --worker`.

local ffi = require "ffi"

local M = {}

local KINDS = { [0] = "all_gather", [1] = "reduce_scatter", [2] = "all_reduce", [3] = "broadcast" }

local function size(n)
  local units = { "B", "KiB", "MiB", "GiB" }
  local u = 1
  while n >= 1024 and n % 1024 == 0 and u < #units do n, u = n / 1024, u + 1 end
  return ("%d %s"):format(n, units[u])
end

local function duration(s)
  if s < 1e-3 then return ("%.1f us"):format(s * 1e6) end
  if s < 1 then return ("%.2f ms"):format(s * 1e3) end
  return ("%.2f s"):format(s)
end

-- The table rank 0 prints.
function M.format(info, rows)
  local fmt = require "moonspeed.fmt"
  local out = { { "collective", "size", "time", "algbw GB/s", "busbw GB/s" } }
  for _, r in ipairs(rows) do
    out[#out + 1] = { KINDS[r.kind] or tostring(r.kind), size(r.bytes), duration(r.seconds),
                      ("%.3f"):format(r.algbw), ("%.3f"):format(r.busbw) }
  end
  return ("comm bench: %d ranks over %s, fp32; time per call of the slowest rank; busbw as nccl-tests\n%s\n")
    :format(info.world, info.provider, fmt.columns(out, { [2] = true, [3] = true, [4] = true, [5] = true }))
end

local function worker(opts)
  local C = require("moonspeed.engine").C
  local cap = 64
  local rows = ffi.new("ms_comm_bench_row[?]", cap)
  local info = ffi.new("ms_comm_bench_info")
  local n = ffi.new("int32_t[1]")
  local st = C.ms_comm_bench(opts.provider, opts["min-bytes"] or 4096, opts["max-bytes"] or 16 * 1024 * 1024,
    math.floor((opts.timeout or 60) * 1000), info, rows, cap, n)
  if st ~= 0 then error("bench comm: " .. ffi.string(C.ms_last_error()), 0) end
  if info.rank == 0 then
    local list = {}
    for i = 0, n[0] - 1 do
      local r = rows[i]
      list[#list + 1] = { kind = r.kind, bytes = tonumber(r.bytes), seconds = r.seconds, algbw = r.algbw,
                          busbw = r.busbw, iters = r.iters }
    end
    io.stdout:write(M.format({ world = info.world, provider = ffi.string(info.provider) }, list))
    io.stdout:flush()
  end
  return 0
end

M.command = {
  summary = "measure the collectives: bus bandwidth per size (bench comm)",
  help = [[
usage: moonspeed bench comm [--provider P] [--world N] [--min-bytes B] [--max-bytes B] [--timeout S]

Starts N local ranks (default 2) that time all-reduce, all-gather, reduce-scatter
and broadcast of fp32 data at sizes B, 4B, 16B, ... (default 4 KiB to 16 MiB) over
the libfabric provider P (default: FI_PROVIDER, else efa when present, else shm on
one host), and prints the time per call of the slowest rank and the bandwidths as
nccl-tests defines them: algbw = size / time; busbw = algbw x 2(n-1)/n for
all-reduce, x (n-1)/n for all-gather and reduce-scatter, x 1 for broadcast. The
size is all ranks' data for all-gather and reduce-scatter, one rank's otherwise.

Across nodes, start the workers with a launcher instead:
  moonspeed launch --nproc-per-node N --nnodes M ... -- moonspeed bench comm --worker

options:
  --provider P     libfabric provider: shm, "tcp;ofi_rxm", efa, ...
  --world N        local ranks to start (2)
  --min-bytes B    the smallest size (4096)
  --max-bytes B    the largest size (16777216)
  --timeout S      deadline of every collective in seconds (60)
  --worker         be one rank of a world that is already in the environment
]],
  spec = { raw = true },
  run = function(args, usage, parse)
    local opts, pos = parse(args, {
      flags = { ["--provider"] = "string", ["--world"] = "int", ["--min-bytes"] = "int", ["--max-bytes"] = "int",
                ["--timeout"] = "number", ["--worker"] = "bool" },
      max_positional = 1 })
    if pos[1] ~= "comm" then
      usage(pos[1] and ("unknown benchmark %q; the benchmark here is comm"):format(pos[1])
        or "missing what to measure: moonspeed bench comm")
    end
    if opts.worker then return worker(opts) end
    local world = opts.world or 2
    if world < 2 then usage("--world must be at least 2 (one rank has nothing to measure)") end
    local launch = require "moonspeed.launch"
    local argv = { "moonspeed", "bench", "comm", "--worker" }
    for _, k in ipairs({ "provider", "min-bytes", "max-bytes", "timeout" }) do
      if opts[k] then argv[#argv + 1] = "--" .. k; argv[#argv + 1] = tostring(opts[k]) end
    end
    local w = { nproc = world, nnodes = 1, node_rank = 0, world = world, first = 0 }
    local env = os.getenv("MS_JOB_TOKEN")
    w.token = (env and env ~= "") and env or ("bench-" .. tostring(require("moonspeed.sys").getpid()) .. "-" .. os.time())
    local C = require("moonspeed.engine").C
    return launch.run_ranks(w, argv, { flags = C.MS_LAUNCH_FIRST_STDOUT_ONLY })
  end,
}

return M
