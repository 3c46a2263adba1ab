-- lua/moonspeed/instances.lua — the cloud instances a recipe's cluster can name.
--
-- One row per EC2 instance type, from AWS's published specifications:
--   gpu            the GPU model
--   gpus           GPUs per instance
--   gpu_memory_gib memory of one GPU, GiB (as marketed: L40S 48, A100 40/80, H100 80, H200 141)
--   sm             CUDA compute capability, as "8.9"
--   vcpus, ram_gib the host
--   efa            EFA interfaces (0: no EFA); each is one vpc.amazonaws.com/efa device
--   network_gbps   the instance's network bandwidth
--   pcie_gbs       host <-> GPU bandwidth per GPU, GB/s each way, as a PCIe link
--                  delivers it (Gen4 x16 25, Gen5 x16 50): what offload moves over
--   gpudirect_rdma EFA can read and write GPU memory directly. Without it NCCL
--                  stages EFA traffic through host memory, the aws-ofi-nccl plugin
--                  forces NCCL_PROTO=simple, and FI_EFA_USE_DEVICE_RDMA=1 makes
--                  libfabric abort (the g6e family has no RDMA read).
--
-- The planner reads GPU memory and bandwidth from here; the k8s emitter the
-- resources (GPUs, EFA devices, hugepages, CPU, memory) and the EFA/NCCL
-- environment. This is the one place these facts live: an unknown type is an
-- error that lists the known ones (add a row here for a new type).

local M = {}

local function row(t) return t end

M.types = {
  ["g6e.8xlarge"]  = row { gpu = "L40S", gpus = 1, gpu_memory_gib = 48, sm = "8.9", pcie_gbs = 25, vcpus = 32, ram_gib = 256,
                           efa = 1, network_gbps = 25, gpudirect_rdma = false },
  ["g6e.12xlarge"] = row { gpu = "L40S", gpus = 4, gpu_memory_gib = 48, sm = "8.9", pcie_gbs = 25, vcpus = 48, ram_gib = 384,
                           efa = 1, network_gbps = 100, gpudirect_rdma = false },
  ["g6e.16xlarge"] = row { gpu = "L40S", gpus = 1, gpu_memory_gib = 48, sm = "8.9", pcie_gbs = 25, vcpus = 64, ram_gib = 512,
                           efa = 1, network_gbps = 35, gpudirect_rdma = false },
  ["g6e.24xlarge"] = row { gpu = "L40S", gpus = 4, gpu_memory_gib = 48, sm = "8.9", pcie_gbs = 25, vcpus = 96, ram_gib = 768,
                           efa = 2, network_gbps = 200, gpudirect_rdma = false },
  ["g6e.48xlarge"] = row { gpu = "L40S", gpus = 8, gpu_memory_gib = 48, sm = "8.9", pcie_gbs = 25, vcpus = 192, ram_gib = 1536,
                           efa = 4, network_gbps = 400, gpudirect_rdma = false },
  ["p4d.24xlarge"] = row { gpu = "A100", gpus = 8, gpu_memory_gib = 40, sm = "8.0", pcie_gbs = 25, vcpus = 96, ram_gib = 1152,
                           efa = 4, network_gbps = 400, gpudirect_rdma = true },
  ["p4de.24xlarge"] = row { gpu = "A100", gpus = 8, gpu_memory_gib = 80, sm = "8.0", pcie_gbs = 25, vcpus = 96, ram_gib = 1152,
                            efa = 4, network_gbps = 400, gpudirect_rdma = true },
  ["p5.48xlarge"]  = row { gpu = "H100", gpus = 8, gpu_memory_gib = 80, sm = "9.0", pcie_gbs = 50, vcpus = 192, ram_gib = 2048,
                           efa = 32, network_gbps = 3200, gpudirect_rdma = true },
  ["p5e.48xlarge"] = row { gpu = "H200", gpus = 8, gpu_memory_gib = 141, sm = "9.0", pcie_gbs = 50, vcpus = 192, ram_gib = 2048,
                           efa = 32, network_gbps = 3200, gpudirect_rdma = true },
}

-- Dense peak TFLOP/s of the GPUs named above, from NVIDIA's data sheets:
-- bf16 on tensor cores, and plain fp32 (the fp32 mode's matmuls use no TF32).
-- For MFU when log.peak_gflops is 0.
M.gpu_peaks = {
  H200 = { bf16 = 989, fp32 = 67 },
  H100 = { bf16 = 989, fp32 = 67 },
  A100 = { bf16 = 312, fp32 = 19.5 },
  L40S = { bf16 = 362, fp32 = 91.6 },
}

-- The peak GFLOP/s of a GPU by its name ("NVIDIA H200"), or nil when unknown.
function M.gpu_peak_gflops(name, precision)
  for gpu, peak in pairs(M.gpu_peaks) do
    if name:find(gpu, 1, true) then return peak[precision] * 1000 end
  end
  return nil
end

-- 2 MiB hugepages the EFA driver pre-allocates on an instance with EFA (5128),
-- of which a pod requests this much.
M.EFA_HUGEPAGES = "5120Mi"

-- The known names, sorted.
function M.names()
  local out = {}
  for name in pairs(M.types) do out[#out + 1] = name end
  table.sort(out)
  return out
end

-- The row of an instance type (with its name), or nil and a sentence naming the known ones.
function M.get(name)
  local t = M.types[name]
  if t then
    local c = { name = name }
    for k, v in pairs(t) do c[k] = v end
    return c
  end
  return nil, ("unknown instance type %q; the catalogue (lua/moonspeed/instances.lua) has %s")
    :format(tostring(name), table.concat(M.names(), ", "))
end

-- "1x L40S 48 GiB (sm_89), 32 vCPU, 256 GiB, 1 EFA, 25 Gbps, no GPUDirect RDMA"
function M.describe(t)
  return ("%dx %s %d GiB (sm_%s), %d vCPU, %d GiB, %d EFA, %d Gbps, %s"):format(
    t.gpus, t.gpu, t.gpu_memory_gib, t.sm:gsub("%.", ""), t.vcpus, t.ram_gib, t.efa, t.network_gbps,
    t.gpudirect_rdma and "GPUDirect RDMA" or "no GPUDirect RDMA")
end

return M
