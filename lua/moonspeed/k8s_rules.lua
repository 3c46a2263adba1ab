-- lua/moonspeed/k8s_rules.lua — the rules of Kubeflow Trainer that its CRD schemas do not check.
--
-- The trainer's controller enforces CEL rules and a webhook at admission; a
-- manifest that breaks one is refused by a live cluster only. These are the
-- rules CLUSTER.md lists, plus the shape moonspeed relies on, checked on the
-- documents (Lua tables, as emitted or as read back from YAML):
--   * TrainJob name: ^[a-z]([-a-z0-9]*[a-z0-9])?$, <= 63 characters; the pod
--     host <name>-node-0-<i> of every node stays a DNS label;
--   * trainer.env sets none of the PET_* the torch policy injects;
--   * podTemplateOverrides (never podSpecOverrides) target replicated jobs and
--     containers that exist in the runtime, and set no env on container `node`;
--   * the runtime: not both torch and mpi; torch.numProcPerNode > 0 (an integer:
--     "auto" with GPUs injects the string "auto"); the TrainJob's numProcPerNode an integer too;
--   * replicated job and container named `node`, the ancestor label, /dev/shm a
--     memory emptyDir, IPC_LOCK, publishNotReadyAddresses;
--   * resourcesPerNode: requests = limits for hugepages; GPUs and EFA devices as
--     the instance has them; never FI_EFA_USE_DEVICE_RDMA=1 without GPUDirect RDMA.
-- check(docs, opts) returns a list of sentences (empty when every rule holds).

local M = {}

local RESERVED = { PET_NNODES = true, PET_NPROC_PER_NODE = true, PET_NODE_RANK = true, PET_MASTER_ADDR = true,
                   PET_MASTER_PORT = true }

local function dns_label(s)
  return type(s) == "string" and #s <= 63 and s:match("^[a-z][-a-z0-9]*$") ~= nil and s:sub(-1) ~= "-"
end
M.dns_label = dns_label

local function is_int(x) return type(x) == "number" and x == math.floor(x) end

local function get(t, ...)
  for _, k in ipairs({ ... }) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  return t
end

-- Runs the rules on a set of documents; opts.instance: the catalogue row, when known.
function M.check(docs, opts)
  opts = opts or {}
  local out = {}
  local function bad(fmt, ...) out[#out + 1] = fmt:format(...) end
  local runtimes, jobs = {}, {}
  for _, d in ipairs(docs) do
    if d.kind == "ClusterTrainingRuntime" or d.kind == "TrainingRuntime" then runtimes[#runtimes + 1] = d end
    if d.kind == "TrainJob" then jobs[#jobs + 1] = d end
  end
  local by_name = {}
  for _, rt in ipairs(runtimes) do
    local name = get(rt, "metadata", "name")
    by_name[rt.kind .. "/" .. tostring(name)] = rt
    local policy = get(rt, "spec", "mlPolicy") or {}
    if policy.torch and policy.mpi then bad("%s %s: mlPolicy sets both torch and mpi; only one policy may be configured", rt.kind, name) end
    local npp = get(policy, "torch", "numProcPerNode")
    if not is_int(npp) or npp <= 0 then
      bad("%s %s: mlPolicy.torch.numProcPerNode must be an integer > 0, got %s", rt.kind, name, tostring(npp))
    end
    local rjobs = get(rt, "spec", "template", "spec", "replicatedJobs") or {}
    local node
    for _, j in ipairs(rjobs) do if j.name == "node" then node = j end end
    if not node then
      bad("%s %s: no replicated job named node (the torch policy's trainer job)", rt.kind, name)
    else
      if get(node, "template", "metadata", "labels", "trainer.kubeflow.org/trainjob-ancestor-step") ~= "trainer" then
        bad("%s %s: the node job template lacks the label trainer.kubeflow.org/trainjob-ancestor-step: trainer", rt.kind, name)
      end
      local pod = get(node, "template", "spec", "template", "spec") or {}
      local container
      for _, c in ipairs(pod.containers or {}) do if c.name == "node" then container = c end end
      if not container then
        bad("%s %s: the node job has no container named node (the one PET_* are injected into)", rt.kind, name)
      else
        local caps = get(container, "securityContext", "capabilities", "add") or {}
        local ipc = false
        for _, c in ipairs(caps) do if c == "IPC_LOCK" then ipc = true end end
        if not ipc then bad("%s %s: container node lacks the IPC_LOCK capability (EFA pins memory)", rt.kind, name) end
        local shm_mount
        for _, m in ipairs(container.volumeMounts or {}) do if m.mountPath == "/dev/shm" then shm_mount = m.name end end
        local shm_ok = false
        for _, v in ipairs(pod.volumes or {}) do
          if v.name == shm_mount and get(v, "emptyDir", "medium") == "Memory" then shm_ok = true end
        end
        if not shm_ok then bad("%s %s: /dev/shm is not a memory-backed emptyDir", rt.kind, name) end
      end
    end
    if get(rt, "spec", "template", "spec", "network", "publishNotReadyAddresses") ~= true then
      bad("%s %s: network.publishNotReadyAddresses must be true (peers look each other up before they are ready)",
        rt.kind, name)
    end
  end
  for _, job in ipairs(jobs) do
    local name = get(job, "metadata", "name")
    local spec = job.spec or {}
    if not dns_label(name) then
      bad("TrainJob %s: metadata.name must match ^[a-z]([-a-z0-9]*[a-z0-9])?$ and have at most 63 characters", tostring(name))
    end
    local nodes = get(spec, "trainer", "numNodes") or get(spec, "runtimeRef") and 1
    if dns_label(name) and is_int(nodes) then
      local host = ("%s-node-0-%d"):format(name, nodes - 1)
      if not dns_label(host) then bad("TrainJob %s: the pod host %s is not a DNS label (over 63 characters)", name, host) end
    end
    if spec.podSpecOverrides then bad("TrainJob %s: podSpecOverrides is the old field; use podTemplateOverrides", name) end
    local npp = get(spec, "trainer", "numProcPerNode")
    if npp ~= nil and (not is_int(npp) or npp <= 0) then
      bad("TrainJob %s: trainer.numProcPerNode must be an integer > 0, got %s", name, tostring(npp))
    end
    for _, e in ipairs(get(spec, "trainer", "env") or {}) do
      if RESERVED[e.name] then bad("TrainJob %s: trainer.env must not set %s (the torch policy injects it)", name, e.name) end
      if e.name == "FI_EFA_USE_DEVICE_RDMA" and e.value == "1" and opts.instance and not opts.instance.gpudirect_rdma then
        bad("TrainJob %s: FI_EFA_USE_DEVICE_RDMA=1 on %s, which has no RDMA read: libfabric aborts", name,
          opts.instance.name)
      end
      if e.name == "NCCL_PROTO" then bad("TrainJob %s: trainer.env forces NCCL_PROTO; let NCCL and the plugin choose", name) end
    end
    local ref = spec.runtimeRef or {}
    local rt = by_name[tostring(ref.kind) .. "/" .. tostring(ref.name)]
    if not rt then
      bad("TrainJob %s: runtimeRef %s %s is not among the documents", name, tostring(ref.kind), tostring(ref.name))
    else
      local rjobs = {}
      for _, j in ipairs(get(rt, "spec", "template", "spec", "replicatedJobs") or {}) do
        local cs = {}
        for _, c in ipairs(get(j, "template", "spec", "template", "spec", "containers") or {}) do cs[c.name] = true end
        for _, c in ipairs(get(j, "template", "spec", "template", "spec", "initContainers") or {}) do cs[c.name] = true end
        rjobs[j.name] = cs
      end
      for i, o in ipairs(spec.podTemplateOverrides or {}) do
        for _, t in ipairs(o.targetJobs or {}) do
          if not rjobs[t.name] then
            bad("TrainJob %s: podTemplateOverrides[%d] targets job %s, which the runtime lacks", name, i - 1, tostring(t.name))
          else
            for _, c in ipairs(get(o, "spec", "containers") or {}) do
              if not rjobs[t.name][c.name] then
                bad("TrainJob %s: podTemplateOverrides[%d] names container %s, which job %s lacks", name, i - 1,
                  tostring(c.name), t.name)
              end
              if c.name == "node" and c.env then
                bad("TrainJob %s: podTemplateOverrides[%d] sets env on container node; use trainer.env", name, i - 1)
              end
            end
          end
        end
      end
    end
    local res = get(spec, "trainer", "resourcesPerNode") or {}
    local req, lim = res.requests or {}, res.limits or {}
    for k, v in pairs(lim) do
      if k:match("^hugepages%-") and req[k] ~= v then
        bad("TrainJob %s: resourcesPerNode %s: requests (%s) must equal limits (%s)", name, k, tostring(req[k]), tostring(v))
      end
    end
    local inst = opts.instance
    if inst then
      if not is_int(lim["nvidia.com/gpu"]) or lim["nvidia.com/gpu"] < 1 or lim["nvidia.com/gpu"] > inst.gpus then
        bad("TrainJob %s: resourcesPerNode nvidia.com/gpu must be 1..%d on %s, got %s", name, inst.gpus, inst.name,
          tostring(lim["nvidia.com/gpu"]))
      end
      if inst.efa > 0 and lim["vpc.amazonaws.com/efa"] ~= inst.efa then
        bad("TrainJob %s: resourcesPerNode vpc.amazonaws.com/efa must be %d on %s, got %s", name, inst.efa, inst.name,
          tostring(lim["vpc.amazonaws.com/efa"]))
      end
      for _, k in ipairs({ "cpu", "memory" }) do
        if not lim[k] or not req[k] then bad("TrainJob %s: resourcesPerNode lacks %s requests and limits", name, k) end
      end
    end
  end
  return out
end

return M
