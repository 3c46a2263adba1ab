-- lua/moonspeed/cluster.lua — the rules of a recipe's cluster section, and what follows from it.
--
-- problems(r) lists what is wrong with the section as written (the recipe
-- loader reports the first at file:line); derive(r, name) turns a resolved
-- recipe into the facts the k8s emitter, the planner and doctor share:
-- processes per node, the instance row, the per-pod resources, the EFA/NCCL
-- environment. Kubernetes' own rules that no schema checks (the controller's
-- CEL rules, CLUSTER.md) are enforced here so a bad manifest is never written.

local instances = require "moonspeed.instances"

local M = {}

-- The variables Kubeflow's torch policy injects (trainer.env must not set them),
-- and the ones `moonspeed launch` hands each rank.
M.RESERVED_ENV = { "PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT" }
M.LAUNCH_ENV = { "MS_RANK", "MS_WORLD_SIZE", "MS_LOCAL_RANK", "MS_LOCAL_WORLD_SIZE", "MS_MASTER_ADDR",
                 "MS_MASTER_PORT" }

-- The replicated job and container of the runtime, and where the recipe is mounted.
M.JOB = "node"
M.CONTAINER = "node"
M.RECIPE_DIR = "/etc/moonspeed/recipe"

local QUANTITY = "^%d+%.?%d*[KMGTPE]?i?$"

local function is_quantity(s)
  if not s:match(QUANTITY) then return false end
  local suffix = s:match("%d([KMGTPE]?i?)$")
  return suffix == "" or suffix:match("^[KMGTPE]i$") ~= nil or suffix:match("^[KMGTPE]$") ~= nil
end
M.is_quantity = is_quantity

-- Bytes of a memory quantity ("16Gi", "5120Mi", "1G", "512"), or nil.
function M.bytes(q)
  if not is_quantity(q) then return nil end
  local num, suffix = q:match("^([%d%.]+)(%a*)$")
  local pow = { K = 1, M = 2, G = 3, T = 4, P = 5, E = 6 }
  local base = suffix:sub(2, 2) == "i" and 1024 or 1000
  local p = pow[suffix:sub(1, 1)] or 0
  return tonumber(num) * base ^ p
end

-- A DNS label (RFC 1035) of at most 63 characters, as the TrainJob's CEL rules demand.
function M.is_dns_label(s)
  return #s >= 1 and #s <= 63 and s:match("^[a-z][-a-z0-9]*$") ~= nil and s:sub(-1) ~= "-"
end

-- A Kubernetes label key ([prefix/]name) and value.
local function label_key_problem(k)
  local prefix, name = k:match("^(.+)/(.+)$")
  name = name or k
  if prefix and (#prefix > 253 or not prefix:match("^[a-z0-9][-a-z0-9.]*[a-z0-9]$")) then
    return "its prefix must be a DNS subdomain (lowercase letters, digits, '-', '.')"
  end
  if #name > 63 or not name:match("^[A-Za-z0-9]$") and not name:match("^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$") then
    return "its name must be 1-63 letters, digits, '-', '_', '.', starting and ending with a letter or digit"
  end
end

local function label_value_ok(v)
  return v == "" or (#v <= 63 and (v:match("^[A-Za-z0-9]$") or v:match("^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")) ~= nil)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function contains(list, x)
  for _, y in ipairs(list) do if y == x then return true end end
  return false
end

-- The closest instance name, for "did you mean".
local function closest_instance(name)
  local distance = require("moonspeed.layer").distance
  local best, best_d
  for _, n in ipairs(instances.names()) do
    local d = n:sub(1, #name) == name and 0 or distance(name, n)   -- "g6e.8xl" is the start of one
    if not best_d or d < best_d then best, best_d = n, d end
  end
  if best_d and best_d <= 3 then return best end
end

-- Everything wrong with r.cluster: a list of { path, message } (empty when fine).
function M.problems(r)
  local c, out = r.cluster, {}
  local function bad(path, msg) out[#out + 1] = { path = "cluster." .. path, msg = msg } end
  if c.name ~= "" and not M.is_dns_label(c.name) then
    bad("name", ("cluster.name %q must be a DNS label: lowercase letters, digits and '-', starting with a letter, " ..
      "not ending with '-', at most 63 characters (the TrainJob's name)"):format(c.name))
  end
  local inst
  if c.instance ~= "" then
    inst = instances.types[c.instance]
    if not inst then
      local s = closest_instance(c.instance)
      bad("instance", ("cluster.instance %q is not in the instance catalogue%s; known: %s"):format(c.instance,
        s and ("; did you mean %q?"):format(s) or "", table.concat(instances.names(), ", ")))
    elseif c.gpus_per_node > inst.gpus then
      bad("gpus_per_node", ("cluster.gpus_per_node (%d) is more than the %d GPU%s of a %s"):format(
        c.gpus_per_node, inst.gpus, inst.gpus == 1 and "" or "s", c.instance))
    end
  end
  for _, k in ipairs({ "namespace", "runtime" }) do
    if not M.is_dns_label(c[k]) then
      bad(k, ("cluster.%s %q must be a DNS label: lowercase letters, digits and '-', starting with a letter, " ..
        "at most 63 characters"):format(k, c[k]))
    end
  end
  if c.hugepages ~= "auto" and c.hugepages ~= "0" and not is_quantity(c.hugepages) then
    bad("hugepages", ('cluster.hugepages must be "auto", "0" or a quantity like "5120Mi", got %q'):format(c.hugepages))
  elseif is_quantity(c.hugepages) and c.hugepages ~= "0" and M.bytes(c.hugepages) % (2 * 1024 * 1024) ~= 0 then
    bad("hugepages", ("cluster.hugepages %q is not a whole number of 2 MiB pages"):format(c.hugepages))
  end
  if not is_quantity(c.shm_size) then
    bad("shm_size", ('cluster.shm_size must be a quantity like "16Gi", got %q'):format(c.shm_size))
  end
  for _, k in ipairs({ "cpu", "memory" }) do
    if c[k] ~= "auto" and not is_quantity(c[k]) then
      bad(k, ('cluster.%s must be "auto" or a quantity like "%s", got %q'):format(k, k == "cpu" and "28" or "200Gi", c[k]))
    end
  end
  if c.checkpoint_pvc ~= "" and not c.checkpoint_pvc:match("^[a-z0-9][-a-z0-9.]*$") then
    bad("checkpoint_pvc", ("cluster.checkpoint_pvc %q must be a PersistentVolumeClaim name (lowercase letters, " ..
      "digits, '-', '.')"):format(c.checkpoint_pvc))
  end
  if c.checkpoint_mount:sub(1, 1) ~= "/" or c.checkpoint_mount == "/" or c.checkpoint_mount:match("^/dev/shm")
    or c.checkpoint_mount:sub(1, #M.RECIPE_DIR) == M.RECIPE_DIR then
    bad("checkpoint_mount", ("cluster.checkpoint_mount %q must be an absolute folder other than /, /dev/shm and %s")
      :format(c.checkpoint_mount, M.RECIPE_DIR))
  end
  for _, k in ipairs(sorted_keys(c.node_selector)) do
    local p = label_key_problem(k)
    if p then bad("node_selector", ("cluster.node_selector key %q is not a label key: %s"):format(k, p)) end
    if not label_value_ok(c.node_selector[k]) then
      bad("node_selector", ("cluster.node_selector[%q] = %q is not a label value (at most 63 letters, digits, " ..
        "'-', '_', '.')"):format(k, c.node_selector[k]))
    end
  end
  for i, t in ipairs(c.tolerations) do
    if t.operator and t.operator ~= "Exists" and t.operator ~= "Equal" then
      bad("tolerations", ('cluster.tolerations[%d].operator must be "Exists" or "Equal", got %q'):format(i, t.operator))
    end
    if t.effect and not contains({ "", "NoSchedule", "PreferNoSchedule", "NoExecute" }, t.effect) then
      bad("tolerations", ('cluster.tolerations[%d].effect must be "NoSchedule", "PreferNoSchedule" or "NoExecute", got %q')
        :format(i, t.effect))
    end
    if t.operator == "Exists" and t.value then
      bad("tolerations", ('cluster.tolerations[%d]: operator "Exists" takes no value'):format(i))
    end
  end
  for _, k in ipairs(sorted_keys(c.env)) do
    if not k:match("^[A-Za-z_][A-Za-z0-9_]*$") then
      bad("env", ("cluster.env name %q is not an environment variable name (letters, digits, '_')"):format(k))
    elseif k:match("^PET_") then
      bad("env", ("cluster.env must not set %s: the PET_* variables are Kubeflow's torch policy's (%s) and " ..
        "moonspeed launch reads them"):format(k, table.concat(M.RESERVED_ENV, ", ")))
    elseif contains(M.LAUNCH_ENV, k) then
      bad("env", ("cluster.env must not set %s: moonspeed launch gives every rank its own"):format(k))
    elseif k == "FI_EFA_USE_DEVICE_RDMA" and c.env[k] ~= "0" and inst and not inst.gpudirect_rdma then
      bad("env", ("cluster.env sets FI_EFA_USE_DEVICE_RDMA=%s, but a %s has no GPUDirect RDMA (no RDMA read): " ..
        "libfabric would abort; leave it unset"):format(c.env[k], c.instance))
    end
  end
  return out
end

-- The TrainJob's name: cluster.name, else the recipe's name made a DNS label.
function M.job_name(r, recipe_name)
  if r.cluster.name ~= "" then return r.cluster.name end
  local n = (recipe_name or r.model.name):lower():gsub("[^a-z0-9-]", "-"):gsub("%-+", "-"):gsub("^[^a-z]+", "")
    :gsub("%-+$", "")
  return n
end

local function fail(path, msg) error({ path = path, msg = msg }, 0) end

-- GPUs and ranks of one pod: cluster.gpus_per_node, else every GPU of the
-- instance, else one CPU rank.
function M.ranks_per_node(c)
  if c.gpus_per_node > 0 then return c.gpus_per_node, c.gpus_per_node end
  local inst = c.instance ~= "" and instances.get(c.instance) or nil
  if inst then return inst.gpus, inst.gpus end
  return 0, 1
end

-- The ranks of the whole job: cluster.nodes x ranks per node.
function M.world(c)
  local _, nproc = M.ranks_per_node(c)
  return c.nodes * nproc
end

-- The facts of a resolved recipe's cluster, or raises { path, msg }:
--   name, namespace, nodes, nproc, instance (a row or nil), gpus, efa,
--   hugepages (a quantity or nil), cpu, memory, shm_size, env (a sorted list of
--   { name, value }), node_selector, tolerations, checkpoint (nil or { pvc, mount }).
function M.derive(r, recipe_name)
  local p = M.problems(r)
  if p[1] then fail(p[1].path, p[1].msg) end
  local c = r.cluster
  local d = { namespace = c.namespace, nodes = c.nodes, runtime = c.runtime, scope = c.runtime_scope,
              image = c.image, shm_size = c.shm_size }
  d.name = M.job_name(r, recipe_name)
  if not M.is_dns_label(d.name) then
    fail("cluster.name", ("the TrainJob's name %q (from the recipe's name) is not a DNS label; set cluster.name")
      :format(d.name))
  end
  local host = ("%s-%s-0-%d"):format(d.name, M.JOB, d.nodes - 1)
  if #host > 63 then
    fail("cluster.name", ("cluster.name %q is too long: the last pod's host name %s has %d characters, " ..
      "a DNS label allows 63; use a name of at most %d characters"):format(d.name, host, #host,
      63 - (#host - #d.name)))
  end
  d.instance = c.instance ~= "" and instances.get(c.instance) or nil
  local inst = d.instance
  d.gpus, d.nproc = M.ranks_per_node(c)
  d.efa = inst and inst.efa or 0
  if c.hugepages == "auto" then
    d.hugepages = d.efa > 0 and instances.EFA_HUGEPAGES or nil
  elseif c.hugepages ~= "0" then
    d.hugepages = c.hugepages
  end
  for _, k in ipairs({ "cpu", "memory" }) do
    if c[k] ~= "auto" then
      d[k] = c[k]
    elseif not inst then
      fail("cluster." .. k, ('cluster.%s = "auto" needs cluster.instance to size it; name the instance type or ' ..
        'set cluster.%s to a quantity'):format(k, k))
    elseif k == "cpu" then
      d.cpu = tostring(math.floor(inst.vcpus * 0.9))
    else
      d.memory = ("%dGi"):format(math.floor(inst.ram_gib * 0.85))
    end
  end
  local mem = M.bytes(d.memory)
  if mem and M.bytes(c.shm_size) > mem then
    fail("cluster.shm_size", ("cluster.shm_size (%s) is more than the pod's memory (%s): /dev/shm is memory"):format(
      c.shm_size, d.memory))
  end
  if mem and d.hugepages and inst and M.bytes(d.hugepages) + mem > inst.ram_gib * 2 ^ 30 then
    fail("cluster.memory", ("cluster.memory (%s) and hugepages (%s) exceed a %s's %d GiB"):format(d.memory,
      d.hugepages, inst.name, inst.ram_gib))
  end
  d.node_selector = {}
  for k, v in pairs(c.node_selector) do d.node_selector[k] = v end
  if inst and not d.node_selector["node.kubernetes.io/instance-type"] then
    d.node_selector["node.kubernetes.io/instance-type"] = inst.name
  end
  d.tolerations = c.tolerations
  if c.checkpoint_pvc ~= "" then d.checkpoint = { pvc = c.checkpoint_pvc, mount = c.checkpoint_mount } end
  d.env = M.environment(r, d)
  return d
end

-- The training container's environment: EFA and NCCL settings by instance
-- type, the rendezvous deadline, then cluster.env (which wins). Sorted by name.
function M.environment(r, d)
  local env = {
    -- pods start minutes apart (image pulls): wait for the others this long
    MS_RENDEZVOUS_TIMEOUT = "900",
    NCCL_SOCKET_IFNAME = "eth0",   -- NCCL still bootstraps over TCP
  }
  local inst = d.instance
  if inst and inst.efa > 0 then
    env.FI_PROVIDER = "efa"
    env.NCCL_NET = "AWS Libfabric"   -- fail instead of silently falling back to sockets
    if inst.gpudirect_rdma then env.FI_EFA_USE_DEVICE_RDMA = "1" end
    if not d.hugepages then env.FI_EFA_USE_HUGE_PAGE = "0" end
  end
  for k, v in pairs(r.cluster.env) do env[k] = v end
  local list = {}
  for _, k in ipairs(sorted_keys(env)) do list[#list + 1] = { name = k, value = env[k] } end
  return list
end

return M
