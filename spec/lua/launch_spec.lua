-- spec/lua/launch_spec.lua — `moonspeed launch`: the world it hands out, output
-- prefixes, a rank that dies, signals, and nothing left behind; and `moonspeed
-- bench comm` on two ranks.

local support = require "support"

-- A string no other process carries; the programs the ranks run include it,
-- so `pgrep -f` finds anything of ours still alive (the bracket keeps pgrep's
-- own shell from matching).
local function marker()
  local f = io.open("/dev/urandom", "rb")
  local r = f:read(6)
  f:close()
  return "ms-launch-spec-" .. r:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
end

local function leftovers(mark)
  local pattern = mark:sub(1, -2) .. "[" .. mark:sub(-1) .. "]"
  local res = support.sh("pgrep -f " .. support.quote(pattern) .. " || true")
  return res.stdout
end

local function lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

describe("moonspeed launch", function()
  assert.is_nil(support.missing_build())
  teardown(function() support.cleanup() end)

  it("gives every rank its place in the world and prefixes its lines", function()
    local mark = marker()
    local res = support.moonspeed({ "launch", "--nproc-per-node", "3", "--", "/bin/sh", "-c",
      "echo \"$MS_RANK/$MS_WORLD_SIZE local $MS_LOCAL_RANK/$MS_LOCAL_WORLD_SIZE at $MS_MASTER_ADDR:$MS_MASTER_PORT " ..
      "token ${#MS_JOB_TOKEN}\"; echo oops >&2 # " .. mark })
    assert.are.equal(0, res.code)
    local out = lines(res.stdout)
    table.sort(out)
    assert.are.equal(3, #out)
    local port
    for r = 0, 2 do
      local p = out[r + 1]:match(("^%%[rank %d%%] %d/3 local %d/3 at 127%%.0%%.0%%.1:(%%d+) token 32$"):format(r, r, r))
      assert.is_truthy(p, out[r + 1])
      port = port or p
      assert.are.equal(port, p)
    end
    local err = lines(res.stderr)
    table.sort(err)
    assert.are.same({ "[rank 0] oops", "[rank 1] oops", "[rank 2] oops" }, err)
  end)

  it("stops the others when a rank is killed, names it, and leaves nothing behind", function()
    local mark = marker()
    local t0 = os.time()
    local res = support.moonspeed({ "launch", "--nproc-per-node", "3", "--grace", "2", "--", "/bin/sh", "-c",
      "if [ \"$MS_RANK\" = 1 ]; then sleep 0.5; kill -9 $$; fi; sleep 60 & wait # " .. mark })
    assert.is_true(os.time() - t0 < 30)
    assert.are.equal(1, res.code)
    assert.matches("moonspeed: rank 1 was killed by signal 9 %(SIGKILL%); stopped the 2 other ranks", res.stderr)
    assert.are.equal("", leftovers(mark))
  end)

  it("reports a rank's exit status", function()
    local mark = marker()
    local res = support.moonspeed({ "launch", "--nproc-per-node", "2", "--", "/bin/sh", "-c",
      "if [ \"$MS_RANK\" = 0 ]; then exit 3; fi; sleep 60 & wait # " .. mark })
    assert.are.equal(1, res.code)
    assert.matches("moonspeed: rank 0 exited with status 3; stopped the other rank", res.stderr)
    assert.are.equal("", leftovers(mark))
  end)

  it("kills ranks that ignore SIGTERM after the grace period", function()
    local mark = marker()
    local t0 = os.time()
    local res = support.moonspeed({ "launch", "--nproc-per-node", "2", "--grace", "1", "--", "/bin/sh", "-c",
      "trap '' TERM; if [ \"$MS_RANK\" = 1 ]; then exit 5; fi; while :; do sleep 0.1; done # " .. mark })
    assert.is_true(os.time() - t0 < 10)
    assert.matches("rank 1 exited with status 5", res.stderr)
    assert.are.equal("", leftovers(mark))
  end)

  it("forwards SIGTERM to the ranks and stops", function()
    local mark = marker()
    local cmd = ("{ %s launch --nproc-per-node 2 -- /bin/sh -c %s & pid=$!; sleep 1; kill -TERM $pid; wait $pid; echo rc=$?; }")
      :format(support.quote(support.exe),
              support.quote("trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.1; done # " .. mark))
    local res = support.sh(cmd)
    assert.matches("rc=143", res.stdout)
    assert.matches("%[rank 0%] got TERM", res.stdout)
    assert.matches("%[rank 1%] got TERM", res.stdout)
    assert.matches("interrupted by SIGTERM", res.stderr)
    assert.are.equal("", leftovers(mark))
  end)

  it("stops a training job when one rank is killed mid-step, naming it", function()
    assert.is_nil(support.missing_data())
    local mark = marker()
    local dir = support.tmpdir() .. "/" .. mark
    local t0 = os.time()
    local cmd = ("{ %s launch --nproc-per-node 2 spec/fixtures/recipes/tiny.lua train.steps=1000000 log.dir=%s & " ..
      "pid=$!; for i in $(seq 100); do sleep 0.1; ls %s/*/metrics.jsonl >/dev/null 2>&1 && break; done; sleep 0.5; " ..
      "for p in $(pgrep -f %s); do tr '\\0' '\\n' </proc/$p/environ 2>/dev/null | grep -qx MS_RANK=1 && " ..
      "kill -KILL $p; done; wait $pid; echo rc=$?; }")
      :format(support.quote(support.exe), support.quote(dir), support.quote(dir),
              support.quote(mark:sub(1, -2) .. "[" .. mark:sub(-1) .. "]"))
    local res = support.sh(cmd)
    assert.is_true(os.time() - t0 < 60)
    assert.matches("rc=1\n", res.stdout)
    assert.matches("%[rank 0%] step +%d+", res.stdout)
    assert.matches("moonspeed: rank 1 was killed by signal 9 %(SIGKILL%)", res.stderr)
    assert.are.equal("", leftovers(mark))
  end)

  it("trains under ZeRO stage 3 on two ranks into one run directory, with one rank's losses", function()
    assert.is_nil(support.missing_data())
    local dir = support.tmpdir()
    local function losses(run)
      local out = {}
      for l in support.read(run .. "/metrics.jsonl"):gmatch("[^\n]+") do
        out[#out + 1] = assert(tonumber(l:match('"loss":([%d.e+-]+)')))
      end
      return out
    end
    local common = { "spec/fixtures/recipes/tiny.lua", "train.steps=6", "train.batch=8", "train.micro_batch=2" }
    local one = support.moonspeed({ "run", common[1], common[2], common[3], common[4], "--run-dir", dir .. "/one" })
    assert.are.equal(0, one.code, one.stderr)
    local two = support.moonspeed({ "launch", "--nproc-per-node", "2", common[1], common[2], common[3], common[4],
      "zero.stage=3", "--run-dir", dir .. "/two" })
    assert.are.equal(0, two.code, two.stderr)
    assert.matches("%[rank 0%] run [^\n]*2 ranks, ZeRO stage 3", two.stdout)
    assert.is_nil(two.stdout:find("[rank 1] run", 1, true))  -- rank 1 trains silently
    local a, b = losses(dir .. "/one"), losses(dir .. "/two")
    assert.are.equal(6, #b)
    for i = 1, 6 do assert.is_true(math.abs(a[i] - b[i]) <= 1e-5 * a[i], ("step %d: %g vs %g"):format(i, a[i], b[i])) end
    assert.is_true(support.exists(dir .. "/two/model.bin"))
  end)

  it("takes the world from PET_* inside a Kubeflow pod", function()
    local mark = marker()
    local res = support.moonspeed({ "launch", "--", "/bin/sh", "-c",
      "echo \"$MS_RANK/$MS_WORLD_SIZE $MS_LOCAL_RANK/$MS_LOCAL_WORLD_SIZE $MS_MASTER_ADDR:$MS_MASTER_PORT\" # " .. mark },
      { env = { PET_NNODES = "2", PET_NPROC_PER_NODE = "2", PET_NODE_RANK = "1", PET_MASTER_ADDR = "127.0.0.1",
                PET_MASTER_PORT = "29999" } })
    assert.are.equal(0, res.code, res.stderr)
    local out = lines(res.stdout)
    table.sort(out)
    assert.are.same({ "[rank 2] 2/4 0/2 127.0.0.1:29999", "[rank 3] 3/4 1/2 127.0.0.1:29999" }, out)
  end)

  it("says what is wrong with its arguments", function()
    local res = support.moonspeed({ "launch", "recipes/default.lua" })
    assert.are.equal(2, res.code)
    assert.matches("missing %-%-nproc%-per%-node N", res.stderr)
    res = support.moonspeed({ "launch", "--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "1", "x.lua" })
    assert.are.equal(2, res.code)
    assert.matches("needs %-%-master HOST:PORT", res.stderr)
    res = support.moonspeed({ "launch", "--nproc-per-node", "2", "--master", "nohost", "x.lua" })
    assert.matches("%-%-master nohost is not HOST:PORT", res.stderr)
    res = support.moonspeed({ "launch", "--nproc-per-node", "2", "x.lua", "--", "/bin/true" })
    assert.matches("not both", res.stderr)
  end)

  describe("world", function()
    local launch = require "moonspeed.launch"
    local function usage(msg) error("usage: " .. msg, 0) end
    local function env(t) return function(k) return t[k] end end

    it("comes from the flags across nodes, with a token every node derives alike", function()
      local w = launch.world({ ["nproc-per-node"] = 4, nnodes = 2, ["node-rank"] = 1, master = "10.0.0.5:29500" },
        usage, env({}))
      assert.are.equal(8, w.world)
      assert.are.equal(4, w.first)
      assert.are.equal("10.0.0.5", w.host)
      assert.are.equal(29500, w.port)
      local w0 = launch.world({ ["nproc-per-node"] = 4, nnodes = 2, ["node-rank"] = 0, master = "10.0.0.5:29500" },
        usage, env({}))
      assert.are.equal(w0.token, w.token)
      local other = launch.world({ ["nproc-per-node"] = 4, nnodes = 2, ["node-rank"] = 0, master = "10.0.0.6:29500" },
        usage, env({}))
      assert.are_not.equal(w0.token, other.token)
      assert.are.equal("given", launch.world({ ["nproc-per-node"] = 1 }, usage, env({ MS_JOB_TOKEN = "given" })).token)
    end)

    it("comes from Kubeflow's PET_* inside a pod", function()
      local pet = env({ PET_NNODES = "3", PET_NPROC_PER_NODE = "2", PET_NODE_RANK = "2",
                        PET_MASTER_ADDR = "job-node-0-0.job", PET_MASTER_PORT = "29500" })
      local w = launch.world({}, usage, pet)
      assert.are.same({ 6, 4, 2, "job-node-0-0.job", 29500 }, { w.world, w.first, w.nproc, w.host, w.port })
      w = launch.world({ ["nproc-per-node"] = 4 }, usage, pet)
      assert.are.same({ 12, 8 }, { w.world, w.first })
      local auto = env({ PET_NNODES = "1", PET_NPROC_PER_NODE = "auto", PET_NODE_RANK = "0",
                         PET_MASTER_ADDR = "h", PET_MASTER_PORT = "1" })
      assert.has_error(function() launch.world({}, usage, auto) end,
        "usage: PET_NPROC_PER_NODE=auto is not a number of processes; pass --nproc-per-node")
    end)
  end)
end)

describe("moonspeed bench comm", function()
  it("prints the bus bandwidth of every collective on two ranks", function()
    local res = support.moonspeed({ "bench", "comm", "--world", "2", "--provider", "tcp;ofi_rxm",
                                    "--min-bytes", "4096", "--max-bytes", "65536" })
    assert.are.equal(0, res.code, res.stderr)
    local out = lines(res.stdout)
    assert.matches("^comm bench: 2 ranks over tcp;ofi_rxm, fp32", out[1])
    assert.matches("^collective +size +time +algbw GB/s +busbw GB/s$", out[2])
    local kinds = {}
    for i = 3, #out do
      local kind, size, alg, bus = out[i]:match("^(%S+) +(%d+ %a+) +[%d.]+ %a+ +([%d.]+) +([%d.]+)$")
      assert.is_truthy(kind, out[i])
      kinds[kind] = (kinds[kind] or 0) + 1
      local a, b = tonumber(alg), tonumber(bus)
      assert.is_true(a > 0)
      local factor = ({ all_reduce = 1, all_gather = 0.5, reduce_scatter = 0.5, broadcast = 1 })[kind]
      assert.is_true(math.abs(b - a * factor) <= 0.0015 + 1e-3 * a, out[i])
    end
    assert.are.same({ all_reduce = 3, all_gather = 3, reduce_scatter = 3, broadcast = 3 }, kinds)
  end)
end)
