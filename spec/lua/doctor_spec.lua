-- spec/lua/doctor_spec.lua — `moonspeed doctor` on this machine (no GPU) and on
-- nodes described by crafted environments: a folder standing in for /
-- (MOONSPEED_DOCTOR_ROOT: /proc/driver/nvidia, /dev/infiniband, /proc/meminfo)
-- and the variables a Kubeflow pod or an operator would set.

local ffi = require "ffi"
local support = require "support"
local json = require "moonspeed.json"

local function doctor(args, env)
  local a = { "doctor", "--json" }
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  local res = support.moonspeed(a, { env = env })
  local v = json.decode(res.stdout)
  assert.is_table(v, res.stdout .. res.stderr)
  local by = {}
  for _, c in ipairs(v.checks) do by[c.check] = c end
  return v, by, res
end

-- A node with one L40S, one EFA device and the EFA driver's hugepages.
local function g6e_root()
  local root = support.tmpdir()
  os.execute(("mkdir -p %s/proc/driver/nvidia/gpus/0000:00:1e.0 %s/dev/infiniband %s/dev/shm %s/opt/amazon/ofi-nccl/lib")
    :format(support.quote(root), support.quote(root), support.quote(root), support.quote(root)))
  support.write(root .. "/proc/driver/nvidia/gpus/0000:00:1e.0/information",
    "Model: \t\t NVIDIA L40S\nIRQ:   \t\t 10\nBus Location: \t 0000:00:1e.0\n")
  support.write(root .. "/proc/driver/nvidia/version",
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.127.05  Tue Oct  8 03:22:07 UTC 2024\n")
  support.write(root .. "/dev/infiniband/uverbs0", "")
  support.write(root .. "/proc/meminfo", "MemTotal: 263000000 kB\nHugePages_Total:    5128\n" ..
    "HugePages_Free:     5128\nHugepagesize:       2048 kB\n")
  return root
end

local PET = { PET_NNODES = "4", PET_NPROC_PER_NODE = "1", PET_NODE_RANK = "1",
              PET_MASTER_ADDR = "llama-3-8b-node-0-0.llama-3-8b", PET_MASTER_PORT = "29500" }

local function with(t, more)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  for k, v in pairs(more or {}) do c[k] = v end
  return c
end

describe("moonspeed doctor", function()
  assert.is_nil(support.missing_build())
  teardown(function() support.cleanup() end)

  it("fails a recipe of several GPU ranks on a node without NCCL, and names MS_NCCL_LIBRARY's file", function()
    local _, by, res = doctor({ "recipes/llama-3-8b-g6e.lua" }, { MS_NCCL_LIBRARY = "/nonexistent/libnccl.so.2" })
    assert.are.equal(1, res.code, res.stderr)
    assert.are.same({ check = "nccl", status = "info", detail = "/nonexistent/libnccl.so.2 (MS_NCCL_LIBRARY) cannot be loaded" },
      by.nccl)
    assert.are.equal("fail", by["recipe nccl"].status)
    assert.are.equal("the recipe's 4 GPU ranks talk through NCCL, and this node has no libnccl.so.2; install NCCL 2.14 "
      .. "or newer, or point MS_NCCL_LIBRARY at it", by["recipe nccl"].detail)
    -- one rank needs none
    _, by = doctor({ "recipes/llama-3-8b-h200.lua" }, { MS_NCCL_LIBRARY = "/nonexistent/libnccl.so.2" })
    assert.is_nil(by["recipe nccl"])
  end)

  it("describes this machine: no GPU, libfabric's providers, memlock and /dev/shm; exit 0", function()
    local v, by, res = doctor()
    assert.are.equal(0, res.code, res.stderr)
    assert.are.equal(0, v.fatal)
    assert.are.equal("info", by.gpus.status)
    assert.matches("^none found", by.gpus.detail)
    assert.are.equal("ok", by.libfabric.status)
    assert.matches("providers: .*shm", by.libfabric.detail)
    assert.matches("providers: .*tcp", by.libfabric.detail)
    local ulimit = support.sh("ulimit -l").stdout:match("%S+")
    if ulimit == "unlimited" then
      assert.are.equal("unlimited", by.memlock.detail)
    else
      local mib = tonumber(ulimit) / 1024
      assert.are.equal(("%.2f MiB"):format(mib), by.memlock.detail)
    end
    local shm = tonumber(support.sh("{ df -k --output=size /dev/shm | tail -1; }").stdout) * 1024
    assert.is_true(math.abs(tonumber(by["/dev/shm"].detail:match("[%d.]+")) - shm / 2 ^ 30) < 0.01, by["/dev/shm"].detail)
    assert.are.equal("info", by["PET_*"].status)
    local text = support.moonspeed({ "doctor" })
    assert.are.equal(0, text.code)
    assert.matches("\nno fatal problems, %d+ warnings?\n$", text.stdout)
  end)

  it("refuses a GPU recipe here, naming what is missing", function()
    local v, by, res = doctor({ "recipes/llama-3-8b.lua" })
    assert.are.equal(1, res.code)
    assert.are.equal(2, v.fatal)
    assert.are.equal("the recipe runs 1 rank on GPUs per node; this node has 0 GPUs", by["recipe gpus"].detail)
    assert.matches("the recipe's g6e%.8xlarge talks over EFA, but this node has no EFA device", by["recipe efa"].detail)
  end)

  it("reads a g6e node's GPU, driver, EFA device and hugepages, and flags RDMA and NCCL_PROTO", function()
    local root = g6e_root()
    local v, by, res = doctor({}, with(PET, { MOONSPEED_DOCTOR_ROOT = root, FI_EFA_USE_DEVICE_RDMA = "1",
      NCCL_PROTO = "simple", PET_NNODES = "2" }))
    assert.are.equal(1, res.code)
    assert.are.same({ "ok", "1: NVIDIA L40S" }, { by.gpus.status, by.gpus.detail })
    assert.are.equal("NVIDIA 550.127.05", by.driver.detail)
    assert.are.equal("warn", by.efa.status)   -- a device, but Debian's libfabric has no efa provider
    assert.matches("^1 EFA device but libfabric offers no efa provider", by.efa.detail)
    assert.are.same({ "ok", "5128 of 5128 free, 2.00 MiB each" }, { by.hugepages.status, by.hugepages.detail })
    assert.are.same({ "fail", "FI_EFA_USE_DEVICE_RDMA=1, but NVIDIA L40S has no GPUDirect RDMA (no RDMA read): " ..
      "libfabric aborts; unset it" }, { by.FI_EFA_USE_DEVICE_RDMA.status, by.FI_EFA_USE_DEVICE_RDMA.detail })
    assert.are.equal("warn", by.NCCL_PROTO.status)
    assert.matches("^NCCL_PROTO=simple forces", by.NCCL_PROTO.detail)
    assert.are.same({ "ok", "node 1 of 2, 1 rank here, master llama-3-8b-node-0-0.llama-3-8b:29500" },
      { by["PET_*"].status, by["PET_*"].detail })
    -- the memlock limit matters once there is an EFA device
    local lock = support.sh("ulimit -l").stdout:match("%S+")
    local low = lock ~= "unlimited" and tonumber(lock) < 1024 * 1024
    assert.are.equal(low and "fail" or "ok", by.memlock.status)
    if low then assert.matches("EFA pins its buffers; give the container IPC_LOCK", by.memlock.detail) end
    assert.are.equal(low and 2 or 1, v.fatal)
  end)

  it("says what is inconsistent in the PET_* variables", function()
    local _, by, res = doctor({}, with(PET, { PET_NNODES = "2", PET_NODE_RANK = "2", PET_NPROC_PER_NODE = "auto",
      PET_MASTER_PORT = "" }))
    assert.are.equal(1, res.code)
    assert.are.equal("fail", by["PET_*"].status)
    assert.are.equal("missing PET_MASTER_PORT; PET_NPROC_PER_NODE=auto: moonspeed launch needs a number of " ..
      "processes; give the runtime an integer numProcPerNode (moonspeed k8s does); PET_NODE_RANK=2 is not below " ..
      "PET_NNODES=2", by["PET_*"].detail)
    local _, by2 = doctor({}, with(PET, { MOONSPEED_DOCTOR_ROOT = g6e_root(), PET_NPROC_PER_NODE = "2" }))
    assert.are.equal("PET_NPROC_PER_NODE=2, but this node has 1 GPU", by2["PET_*"].detail)
  end)

  it("checks a recipe's cluster against the node and the PET_* world", function()
    local root = g6e_root()
    local v, by, res = doctor({ "recipes/llama-3-8b.lua" }, with(PET, { MOONSPEED_DOCTOR_ROOT = root, PET_NNODES = "2" }))
    assert.are.equal(1, res.code)
    assert.are.equal("llama-3-8b: 4 nodes x 1 rank on g6e.8xlarge", by.recipe.detail)
    assert.is_nil(by["recipe gpus"])
    assert.is_nil(by["recipe efa"])
    assert.are.equal("PET_NNODES=2, but the recipe's cluster.nodes is 4", by["PET_*"].detail)
    local _, ok_by = doctor({ "recipes/llama-3-8b.lua" }, with(PET, { MOONSPEED_DOCTOR_ROOT = root }))
    assert.are.equal("ok", ok_by["PET_*"].status)
    assert.is_true(v.fatal >= 1)
  end)

  it("flags an FI_PROVIDER libfabric lacks and NCCL_NET without its plugin", function()
    local root = g6e_root()
    local _, by = doctor({}, { MOONSPEED_DOCTOR_ROOT = root, FI_PROVIDER = "verbs", NCCL_NET = "AWS Libfabric",
      LD_LIBRARY_PATH = "/opt/amazon/ofi-nccl/lib" })
    assert.are.same({ "fail", "FI_PROVIDER=verbs, but libfabric offers no such provider here" },
      { by.FI_PROVIDER.status, by.FI_PROVIDER.detail })
    assert.are.equal("fail", by["nccl net plugin"].status)
    assert.matches("^NCCL_NET=AWS Libfabric, but no libnccl%-net%.so on LD_LIBRARY_PATH", by["nccl net plugin"].detail)
    support.write(root .. "/opt/amazon/ofi-nccl/lib/libnccl-net.so", "")
    local _, by2 = doctor({}, { MOONSPEED_DOCTOR_ROOT = root, NCCL_NET = "AWS Libfabric",
      LD_LIBRARY_PATH = "/opt/amazon/ofi-nccl/lib" })
    assert.are.same({ "ok", "/opt/amazon/ofi-nccl/lib/libnccl-net.so" },
      { by2["nccl net plugin"].status, by2["nccl net plugin"].detail })
  end)

  it("declares statvfs and rlimit as the C library lays them out", function()
    require "moonspeed.sys"
    local dir = support.tmpdir()
    support.write(dir .. "/s.c", [[
#include <stdio.h>
#include <stddef.h>
#include <sys/statvfs.h>
#include <sys/resource.h>
int main(void) {
  printf("%zu %zu %zu %zu\n", sizeof(struct statvfs), offsetof(struct statvfs, f_frsize),
         offsetof(struct statvfs, f_blocks), sizeof(struct rlimit));
  return 0;
}
]])
    local res = support.sh(("cc %s -o %s && %s"):format(support.quote(dir .. "/s.c"), support.quote(dir .. "/s"),
      support.quote(dir .. "/s")))
    assert.are.equal(0, res.code, res.stderr)
    local c = {}
    for n in res.stdout:gmatch("%d+") do c[#c + 1] = tonumber(n) end
    assert.are.same(c, { ffi.sizeof("struct ms_lua_statvfs"), ffi.offsetof("struct ms_lua_statvfs", "frsize"),
      ffi.offsetof("struct ms_lua_statvfs", "blocks"), ffi.sizeof("struct ms_lua_rlimit") })
  end)
end)
