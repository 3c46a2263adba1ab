-- lua/moonspeed/doctor.lua — `moonspeed doctor [RECIPE] [--json]`: what this node offers,
-- and whether a recipe can run here.
--
-- Each check gives a status: ok, info (nothing to judge), warn (works, but
-- slower or fragile) or fail (the job would not run or would abort); any fail
-- makes the exit status 1. The probes:
--   GPUs        the CUDA driver API (libcuda.so.1: name, memory, compute
--               capability, driver version), else nvidia-smi, else /proc/driver/nvidia
--   NCCL        ncclGetVersion from libnccl.so.2 (or MS_NCCL_LIBRARY); the net plugin libnccl-net*.so on
--               LD_LIBRARY_PATH; a recipe of several GPU ranks needs NCCL 2.14 or newer
--   libfabric   fi_version and the providers fi_getinfo lists (the library
--               the fabric communicator loads: MS_FABRIC_LIBRARY or libfabric.so.1)
--   EFA         /dev/infiniband/uverbs* and the efa provider
--   memory      hugepages (/proc/meminfo), the memlock limit, the size of /dev/shm
--   environment FI_EFA_USE_DEVICE_RDMA without RDMA read, a forced NCCL_PROTO,
--               FI_PROVIDER not offered, NCCL_NET without its plugin
--   PET_*       complete, whole numbers, consistent with each other, the GPUs and the recipe
-- MOONSPEED_DOCTOR_ROOT, when set, is a folder that stands in for / when files
-- are read (/proc, /dev, /sys), and the driver libraries are not probed: the
-- specs describe a node with it.

local ffi = require "ffi"
local sys = require "moonspeed.sys"
local fmt = require "moonspeed.fmt"

local M = {}

local STATUS_ORDER = { ok = 1, info = 2, warn = 3, fail = 4 }

-- GPU models whose NICs cannot read their memory over EFA (no GPUDirect RDMA on their instances).
local NO_RDMA_GPUS = { "L40S", "L4", "A10G", "T4" }

local Report = {}
Report.__index = Report

local function new_report(getenv)
  return setmetatable({ checks = {}, getenv = getenv or os.getenv, root = "" }, Report)
end

function Report:add(check, status, detail)
  self.checks[#self.checks + 1] = { check = check, status = status, detail = detail }
end

function Report:count(status)
  local n = 0
  for _, c in ipairs(self.checks) do if c.status == status then n = n + 1 end end
  return n
end

function Report:path(p) return self.root .. p end

function Report:read(p) return sys.read_file(self:path(p)) end

---------------------------------------------------------------------------
-- Probes
---------------------------------------------------------------------------

local function try_load(names)
  for _, n in ipairs(names) do
    local ok, lib = pcall(ffi.load, n)
    if ok then return lib, n end
  end
end

-- GPUs through the CUDA driver API: list of { name, memory, sm }, driver version text; or nil, why.
local function cuda_gpus()
  pcall(ffi.cdef, [[
    int cuInit(unsigned int flags);
    int cuDriverGetVersion(int *version);
    int cuDeviceGetCount(int *count);
    int cuDeviceGet(int *device, int ordinal);
    int cuDeviceGetName(char *name, int len, int device);
    int cuDeviceTotalMem_v2(size_t *bytes, int device);
    int cuDeviceGetAttribute(int *value, int attribute, int device);
  ]])
  local cu = try_load({ "libcuda.so.1" })
  if not cu then return nil, "libcuda.so.1 is not installed (no NVIDIA driver)" end
  local v = ffi.new("int[1]")
  local cuda = cu.cuDriverGetVersion(v) == 0 and ("%d.%d"):format(math.floor(v[0] / 1000), (v[0] % 1000) / 10) or nil
  local rc = cu.cuInit(0)
  if rc ~= 0 then return nil, ("the CUDA driver does not start (cuInit error %d)"):format(rc), cuda end
  local n = ffi.new("int[1]")
  cu.cuDeviceGetCount(n)
  local gpus = {}
  for i = 0, n[0] - 1 do
    local dev, name, mem = ffi.new("int[1]"), ffi.new("char[256]"), ffi.new("size_t[1]")
    local major, minor = ffi.new("int[1]"), ffi.new("int[1]")
    cu.cuDeviceGet(dev, i)
    cu.cuDeviceGetName(name, 256, dev[0])
    cu.cuDeviceTotalMem_v2(mem, dev[0])
    cu.cuDeviceGetAttribute(major, 75, dev[0])   -- CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    cu.cuDeviceGetAttribute(minor, 76, dev[0])   -- ..._MINOR
    gpus[#gpus + 1] = { name = ffi.string(name), memory = tonumber(mem[0]), sm = ("%d.%d"):format(major[0], minor[0]) }
  end
  return gpus, nil, cuda
end

local function smi_gpus()
  local p = io.popen("nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version " ..
    "--format=csv,noheader,nounits 2>/dev/null")
  if not p then return nil end
  local gpus, driver = {}, nil
  for line in p:lines() do
    local name, mib, sm, drv = line:match("^%s*(.-)%s*,%s*(%d+)%s*,%s*([%d.]+)%s*,%s*([%d.]+)")
    if name then
      gpus[#gpus + 1] = { name = name, memory = tonumber(mib) * 2 ^ 20, sm = sm }
      driver = drv
    end
  end
  p:close()
  if #gpus == 0 then return nil end
  return gpus, driver
end

-- /proc/driver/nvidia: the models and the driver version (no memory, no compute capability).
local function proc_gpus(rep)
  local gpus = {}
  local dir = "/proc/driver/nvidia/gpus"
  for _, bus in ipairs(sys.list_dir(rep:path(dir))) do
    local info = rep:read(dir .. "/" .. bus .. "/information") or ""
    gpus[#gpus + 1] = { name = info:match("Model:%s*([^\n]+)") or "unknown", bus = bus }
  end
  local version = rep:read("/proc/driver/nvidia/version") or ""
  local driver = version:match("Kernel Module%s+([%d.]+)")
  return gpus, driver
end

local function probe_gpus(rep)
  local gpus, driver, cuda, why
  if rep.root == "" then
    gpus, why, cuda = cuda_gpus()
    local sgpus, sdriver = smi_gpus()
    driver = sdriver
    if not gpus or #gpus == 0 then gpus = sgpus end
  end
  local pgpus, pdriver = proc_gpus(rep)
  if (not gpus or #gpus == 0) and #pgpus > 0 then gpus = pgpus end
  driver = driver or pdriver
  gpus = gpus or {}
  rep.gpus = gpus
  if #gpus == 0 then
    rep:add("gpus", "info", "none found (" .. (why or "no NVIDIA driver") .. "); training runs on the CPU")
  else
    local parts = {}
    for i, g in ipairs(gpus) do
      parts[i] = g.name .. (g.memory and (" " .. fmt.bytes(g.memory)) or "") .. (g.sm and (" sm_" .. g.sm:gsub("%.", "")) or "")
    end
    rep:add("gpus", "ok", ("%d: %s"):format(#gpus, table.concat(parts, ", ")))
  end
  if driver then rep:add("driver", "ok", "NVIDIA " .. driver) end
  if cuda then rep:add("cuda", "ok", "the driver supports CUDA " .. cuda) end
end

local function ld_dirs(rep)
  local dirs = {}
  for d in (rep.getenv("LD_LIBRARY_PATH") or ""):gmatch("[^:]+") do dirs[#dirs + 1] = d end
  return dirs
end

local function probe_nccl(rep)
  if rep.root == "" then
    pcall(ffi.cdef, "int ncclGetVersion(int *version);")
    local named = rep.getenv("MS_NCCL_LIBRARY") -- the engine's choice too (comm/nccl.c)
    local nccl = try_load(named and named ~= "" and { named } or { "libnccl.so.2", "libnccl.so" })
    if nccl then
      local v = ffi.new("int[1]")
      if nccl.ncclGetVersion(v) == 0 then
        local x = v[0]
        rep.nccl = ("%d.%d.%d"):format(math.floor(x / 10000), math.floor(x / 100) % 100, x % 100)
        rep.nccl_code = x
        rep:add("nccl", "ok", rep.nccl)
      end
    else
      rep.nccl = false
      rep:add("nccl", "info", named and named ~= "" and (named .. " (MS_NCCL_LIBRARY) cannot be loaded")
        or "libnccl.so.2 is not installed")
    end
  end
  local plugin = rep.getenv("NCCL_NET_PLUGIN")
  local names = { "libnccl-net.so" }
  if plugin and plugin ~= "" then table.insert(names, 1, ("libnccl-net-%s.so"):format(plugin)) end
  local found
  for _, d in ipairs(ld_dirs(rep)) do
    for _, n in ipairs(names) do
      if not found and sys.exists(rep:path(d .. "/" .. n)) then found = d .. "/" .. n end
    end
  end
  rep.nccl_plugin = found
  local net = rep.getenv("NCCL_NET")
  if found then
    rep:add("nccl net plugin", "ok", found)
  elseif net and net ~= "" and net ~= "Socket" and net ~= "IB" then
    rep:add("nccl net plugin", "fail", ("NCCL_NET=%s, but no %s on LD_LIBRARY_PATH: NCCL will fail to start; " ..
      "add the aws-ofi-nccl folder (/opt/amazon/ofi-nccl/lib) to LD_LIBRARY_PATH"):format(net, table.concat(names, " or ")))
  end
end

-- libfabric: version and providers, through the library the fabric communicator loads.
local function probe_fabric(rep)
  pcall(ffi.cdef, [[
    struct ms_doc_fabric_attr { void *fabric; char *name; char *prov_name; uint32_t prov_version; uint32_t api_version; };
    struct ms_doc_fi_info {
      struct ms_doc_fi_info *next; uint64_t caps; uint64_t mode; uint32_t addr_format;
      size_t src_addrlen; size_t dest_addrlen; void *src_addr; void *dest_addr; void *handle;
      void *tx_attr; void *rx_attr; void *ep_attr; void *domain_attr;
      struct ms_doc_fabric_attr *fabric_attr; void *nic;
    };
    uint32_t fi_version(void);
    int fi_getinfo(uint32_t version, const char *node, const char *service, uint64_t flags,
                   const struct ms_doc_fi_info *hints, struct ms_doc_fi_info **info);
    void fi_freeinfo(struct ms_doc_fi_info *info);
  ]])
  local name = rep.getenv("MS_FABRIC_LIBRARY")
  local lib = try_load({ (name and name ~= "") and name or "libfabric.so.1" })
  rep.providers = {}
  if not lib then
    rep:add("libfabric", "warn", "libfabric.so.1 cannot be loaded: ranks cannot talk across processes; install " ..
      "libfabric1 (Debian, Ubuntu) or the EFA installer (AWS)")
    return
  end
  local v = lib.fi_version()
  local version = ("%d.%d"):format(bit.rshift(v, 16), bit.band(v, 0xffff))
  local info = ffi.new("struct ms_doc_fi_info *[1]")
  local seen = {}
  local rc = lib.fi_getinfo(bit.bor(bit.lshift(1, 16), 17), nil, nil, 0, nil, info)
  if rc == 0 then
    local i = info[0]
    while i ~= nil do
      if i.fabric_attr ~= nil and i.fabric_attr.prov_name ~= nil then
        local p = ffi.string(i.fabric_attr.prov_name)
        if not seen[p] then seen[p] = true; rep.providers[#rep.providers + 1] = p end
      end
      i = i.next
    end
    lib.fi_freeinfo(info[0])
  end
  rep.provider_set = seen
  rep:add("libfabric", "ok", ("%s; providers: %s"):format(version,
    #rep.providers > 0 and table.concat(rep.providers, ", ") or "none"))
end

local function probe_efa(rep)
  local devices = {}
  for _, n in ipairs(sys.list_dir(rep:path("/dev/infiniband"))) do
    if n:match("^uverbs%d+$") then devices[#devices + 1] = n end
  end
  rep.efa_devices = #devices
  local provider = rep.provider_set and rep.provider_set.efa
  if #devices == 0 and not provider then
    rep:add("efa", "info", "no EFA devices (/dev/infiniband/uverbs*) and no efa provider")
  elseif #devices > 0 and provider then
    rep:add("efa", "ok", ("%d device%s (%s), libfabric's efa provider works"):format(#devices,
      #devices == 1 and "" or "s", table.concat(devices, ", ")))
  elseif #devices > 0 then
    rep:add("efa", "warn", ("%d EFA device%s but libfabric offers no efa provider: load the EFA installer's " ..
      "libfabric (/opt/amazon/efa/lib on LD_LIBRARY_PATH)"):format(#devices, #devices == 1 and "" or "s"))
  else
    rep:add("efa", "warn", "libfabric offers efa but /dev/infiniband has no uverbs device: request " ..
      "vpc.amazonaws.com/efa in the pod")
  end
end

local function probe_memory(rep, d)
  local meminfo = rep:read("/proc/meminfo") or ""
  local total = tonumber(meminfo:match("HugePages_Total:%s*(%d+)")) or 0
  local free = tonumber(meminfo:match("HugePages_Free:%s*(%d+)")) or 0
  local size = (tonumber(meminfo:match("Hugepagesize:%s*(%d+)")) or 2048) * 1024
  local want = d and d.hugepages and require("moonspeed.cluster").bytes(d.hugepages)
  if want and free * size < want then
    rep:add("hugepages", "warn", ("%d of %d free (%s); the recipe's pods request %s: EFA falls back to regular " ..
      "pages, or set cluster.hugepages = \"0\""):format(free, total, fmt.bytes(free * size), d.hugepages))
  else
    rep:add("hugepages", total > 0 and "ok" or "info", ("%d of %d free, %s each"):format(free, total, fmt.bytes(size)))
  end
  local lock = sys.memlock()
  local lock_text = lock == math.huge and "unlimited" or (lock and fmt.bytes(lock) or "unknown")
  if (rep.efa_devices or 0) > 0 and lock and lock < 2 ^ 30 then
    rep:add("memlock", "fail", ("the memlock limit is %s: EFA pins its buffers; give the container IPC_LOCK or " ..
      "raise the limit (ulimit -l unlimited)"):format(lock_text))
  else
    rep:add("memlock", "ok", lock_text)
  end
  local shm = sys.fs_size(rep:path("/dev/shm"))
  local want_shm = d and require("moonspeed.cluster").bytes(d.shm_size)
  if not shm then
    rep:add("/dev/shm", "warn", "cannot be measured; NCCL and the shm provider need it")
  elseif want_shm and shm < want_shm * 0.99 then
    rep:add("/dev/shm", "warn", ("%s, less than the recipe's cluster.shm_size %s"):format(fmt.bytes(shm), d.shm_size))
  elseif shm < 256 * 2 ^ 20 then
    rep:add("/dev/shm", "warn", ("%s: too small for NCCL and the shm provider between local ranks (a container's " ..
      "default is 64 MiB); mount a memory emptyDir there"):format(fmt.bytes(shm)))
  else
    rep:add("/dev/shm", "ok", fmt.bytes(shm))
  end
end

-- Whether this node's GPUs (or the recipe's instance) can do GPUDirect RDMA: true, false or nil (unknown).
local function rdma_capable(rep, d)
  if d and d.instance then return d.instance.gpudirect_rdma, d.instance.name end
  for _, g in ipairs(rep.gpus or {}) do
    for _, m in ipairs(NO_RDMA_GPUS) do
      if g.name:find(m, 1, true) then return false, g.name end
    end
  end
  return nil
end

local function check_environment(rep, d)
  local getenv = rep.getenv
  local rdma = getenv("FI_EFA_USE_DEVICE_RDMA")
  local capable, what = rdma_capable(rep, d)
  if rdma == "1" and capable == false then
    rep:add("FI_EFA_USE_DEVICE_RDMA", "fail", ("FI_EFA_USE_DEVICE_RDMA=1, but %s has no GPUDirect RDMA (no RDMA " ..
      "read): libfabric aborts; unset it"):format(what))
  elseif rdma then
    rep:add("FI_EFA_USE_DEVICE_RDMA", "info", rdma)
  end
  local proto = getenv("NCCL_PROTO")
  if proto and proto ~= "" then
    rep:add("NCCL_PROTO", "warn", ("NCCL_PROTO=%s forces NCCL's protocol for every size; unset it (the aws-ofi-nccl " ..
      "plugin forces simple itself where it must)"):format(proto))
  end
  local prov = getenv("FI_PROVIDER")
  if prov and prov ~= "" and rep.provider_set then
    local first = prov:match("^[^;,]+")
    if not rep.provider_set[prov] and not rep.provider_set[first] then
      rep:add("FI_PROVIDER", "fail", ("FI_PROVIDER=%s, but libfabric offers no such provider here%s"):format(prov,
        #rep.providers > 0 and (" (it has: " .. table.concat(rep.providers, ", ") .. ")") or ""))
    else
      rep:add("FI_PROVIDER", "ok", prov)
    end
  end
end

-- The PET_* world (Kubeflow's torch policy) against itself, the GPUs and the recipe.
local function check_pet(rep, d)
  local getenv = rep.getenv
  local names = { "PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT" }
  local set, missing = {}, {}
  for _, n in ipairs(names) do
    local v = getenv(n)
    if v and v ~= "" then set[n] = v else missing[#missing + 1] = n end
  end
  if not next(set) then
    rep:add("PET_*", "info", "not in a Kubeflow Trainer pod (no PET_* variables)")
    return
  end
  local problems = {}
  if #missing > 0 then problems[#problems + 1] = "missing " .. table.concat(missing, ", ") end
  local function whole(n, lo)
    local v = set[n]
    if not v then return nil end
    local x = tonumber(v)
    if not x or x ~= math.floor(x) or x < lo then
      problems[#problems + 1] = ("%s=%s is not a whole number >= %d"):format(n, v, lo)
      return nil
    end
    return x
  end
  local nnodes, rank, port = whole("PET_NNODES", 1), whole("PET_NODE_RANK", 0), whole("PET_MASTER_PORT", 1)
  local nproc
  if set.PET_NPROC_PER_NODE == "auto" or set.PET_NPROC_PER_NODE == "gpu" or set.PET_NPROC_PER_NODE == "cpu" then
    problems[#problems + 1] = ("PET_NPROC_PER_NODE=%s: moonspeed launch needs a number of processes; give the runtime " ..
      "an integer numProcPerNode (moonspeed k8s does)"):format(set.PET_NPROC_PER_NODE)
  else
    nproc = whole("PET_NPROC_PER_NODE", 1)
  end
  if nnodes and rank and rank >= nnodes then
    problems[#problems + 1] = ("PET_NODE_RANK=%d is not below PET_NNODES=%d"):format(rank, nnodes)
  end
  if port and port > 65535 then problems[#problems + 1] = ("PET_MASTER_PORT=%d is not a port"):format(port) end
  local gpus = #(rep.gpus or {})
  if nproc and gpus > 0 and nproc > gpus then
    problems[#problems + 1] = ("PET_NPROC_PER_NODE=%d, but this node has %d GPU%s"):format(nproc, gpus, gpus == 1 and "" or "s")
  end
  if d then
    if nnodes and nnodes ~= d.nodes then
      problems[#problems + 1] = ("PET_NNODES=%d, but the recipe's cluster.nodes is %d"):format(nnodes, d.nodes)
    end
    if nproc and nproc ~= d.nproc then
      problems[#problems + 1] = ("PET_NPROC_PER_NODE=%d, but the recipe runs %d per node"):format(nproc, d.nproc)
    end
  end
  if #problems > 0 then
    rep:add("PET_*", "fail", table.concat(problems, "; "))
  else
    rep:add("PET_*", "ok", ("node %d of %d, %d rank%s here, master %s:%d"):format(rank, nnodes, nproc,
      nproc == 1 and "" or "s", set.PET_MASTER_ADDR, port))
  end
end

-- The recipe's cluster against this node.
local function check_recipe(rep, r, d)
  if not d then return end
  local inst = d.instance
  rep:add("recipe", "info", ("%s: %d node%s x %d rank%s%s"):format(r.model.name, d.nodes, d.nodes == 1 and "" or "s",
    d.nproc, d.nproc == 1 and "" or "s", inst and (" on " .. inst.name) or ""))
  local gpus = rep.gpus or {}
  if d.gpus > 0 and #gpus < d.gpus then
    rep:add("recipe gpus", "fail", ("the recipe runs %d rank%s on GPUs per node; this node has %d GPU%s"):format(
      d.gpus, d.gpus == 1 and "" or "s", #gpus, #gpus == 1 and "" or "s"))
  elseif inst and gpus[1] and not gpus[1].name:find(inst.gpu, 1, true) then
    rep:add("recipe gpus", "warn", ("the recipe plans for %s (%s), this node has %s"):format(inst.gpu, inst.name, gpus[1].name))
  end
  -- GPU ranks talk through NCCL (engine/comm/nccl.c needs 2.14 or newer); unknown on a crafted node
  if r.device == "cuda" and d.nodes * d.nproc > 1 then
    if rep.nccl == false then
      rep:add("recipe nccl", "fail", ("the recipe's %d GPU ranks talk through NCCL, and this node has no libnccl.so.2; "
        .. "install NCCL 2.14 or newer, or point MS_NCCL_LIBRARY at it"):format(d.nodes * d.nproc))
    elseif rep.nccl_code and rep.nccl_code < 21400 then
      rep:add("recipe nccl", "fail", ("NCCL %s is too old for moonspeed's GPU ranks; they need 2.14 or newer"):format(rep.nccl))
    end
  end
  if inst and inst.efa > 0 and (rep.efa_devices or 0) == 0 then
    rep:add("recipe efa", "fail", ("the recipe's %s talks over EFA, but this node has no EFA device; without it " ..
      "NCCL_NET=\"AWS Libfabric\" fails"):format(inst.name))
  end
end

-- Runs every check. r: a resolved recipe or nil; opts.getenv, opts.root stand in for the environment and /.
function M.run_checks(r, opts)
  opts = opts or {}
  local rep = new_report(opts.getenv)
  rep.root = opts.root or (rep.getenv("MOONSPEED_DOCTOR_ROOT") or "")
  local d
  if r then
    local ok, res = pcall(require("moonspeed.cluster").derive, r, opts.recipe_name)
    if ok then d = res else rep:add("recipe", "fail", type(res) == "table" and res.msg or tostring(res)) end
  end
  probe_gpus(rep)
  probe_nccl(rep)
  probe_fabric(rep)
  probe_efa(rep)
  probe_memory(rep, d)
  check_environment(rep, d)
  check_pet(rep, d)
  check_recipe(rep, r, d)
  return rep
end

function M.format(rep)
  local rows = {}
  for _, c in ipairs(rep.checks) do
    rows[#rows + 1] = { ({ ok = "ok", info = "--", warn = "WARN", fail = "FAIL" })[c.status], c.check, c.detail }
  end
  local out = { require("moonspeed.fmt").columns(rows, {}, "") }
  local fails, warns = rep:count("fail"), rep:count("warn")
  out[#out + 1] = fails > 0 and ("%d fatal problem%s, %d warning%s"):format(fails, fails == 1 and "" or "s", warns,
    warns == 1 and "" or "s") or ("no fatal problems, %d warning%s"):format(warns, warns == 1 and "" or "s")
  return table.concat(out, "\n") .. "\n"
end

function M.json(rep)
  local json = require "moonspeed.json"
  local checks = {}
  for i, c in ipairs(rep.checks) do checks[i] = c end
  return json.encode({ checks = checks, fatal = rep:count("fail"), warnings = rep:count("warn") },
    { "fatal", "warnings", "checks", "check", "status", "detail" }) .. "\n"
end

M.command = {
  summary = "what this node offers (GPUs, NCCL, libfabric, EFA, memory) and whether a recipe can run here",
  help = [[
usage: moonspeed doctor [RECIPE] [section.key=value ...] [--json]

Checks this node: GPUs (model, memory, compute capability), the NVIDIA driver and
CUDA version, NCCL and its net plugin, libfabric and its providers, EFA devices,
hugepages, the memlock limit, the size of /dev/shm; environment pitfalls
(FI_EFA_USE_DEVICE_RDMA=1 without RDMA read, a forced NCCL_PROTO, an FI_PROVIDER
libfabric lacks, NCCL_NET without its plugin); and, in a Kubeflow Trainer pod,
whether the PET_* variables are complete and consistent. With RECIPE, also whether
its cluster section fits this node (GPUs, EFA, hugepages, /dev/shm, PET_*).

Each line is ok, -- (information), WARN or FAIL. Exit status 1 when anything is FAIL.

options:
  --json   one JSON object: { fatal, warnings, checks = [{ check, status, detail }] }
]],
  spec = { flags = { ["--json"] = "bool" }, max_positional = 1, overrides = true },
}

function M.run(opts, pos, overrides, load_recipe)
  local r, info
  if pos[1] then r, info = load_recipe(pos[1], overrides) end
  local rep = M.run_checks(r, { recipe_name = info and info.name })
  io.stdout:write(opts.json and M.json(rep) or M.format(rep))
  return rep:count("fail") > 0 and 1 or 0
end

return M
