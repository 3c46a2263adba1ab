-- lua/moonspeed/k8s.lua — `moonspeed k8s`: a recipe's Kubeflow Trainer manifests.
--
--   moonspeed k8s RECIPE|EXPERIMENT [section.key=value ...] [-o FILE] [--only N]
--
-- One multi-document YAML (written by libyaml's emitter, yaml.lua):
--   1. a ConfigMap holding the recipe and every file it extends, so the pods
--      run exactly what was planned;
--   2. a ClusterTrainingRuntime (or a TrainingRuntime in the job's namespace)
--      with Kubeflow's torch policy and an integer numProcPerNode: the policy
--      injects PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR and
--      PET_MASTER_PORT into the container `node` of the replicated job `node`;
--   3. the TrainJob: nodes, image, `moonspeed launch` on the mounted recipe (it
--      reads PET_* and starts one rank per GPU), every resource of the pod in
--      resourcesPerNode (it replaces the container's resources), the EFA and
--      NCCL environment of the instance type, and the node selector,
--      tolerations and volumes through podTemplateOverrides.
-- The facts come from cluster.lua (derived from the recipe's cluster section)
-- and the rules no schema checks (CLUSTER.md) from k8s_rules.lua, which every
-- emitted set passes before it is written.

local yaml = require "moonspeed.yaml"
local cluster = require "moonspeed.cluster"

local M = {}

M.API = "trainer.kubeflow.org/v1alpha1"
M.ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
local CONFIGMAP_LIMIT = 1024 * 1024   -- the API server's limit on a ConfigMap

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  return (os.getenv("PWD") or ".") .. "/" .. p
end

local function normalize(p)
  local parts = {}
  for part in p:gmatch("[^/]+") do
    if part == ".." and #parts > 0 then parts[#parts] = nil
    elseif part ~= "." then parts[#parts + 1] = part end
  end
  return "/" .. table.concat(parts, "/")
end

-- The recipe files as they are laid out under the mount, so that every
-- extend() in them resolves in the pod to the same file it did here: the
-- recipe and the bases found next to it keep their places relative to the
-- deepest folder holding them all; a base found in the recipes folder is put
-- where its extend() looks first, next to the file naming it. Returns
-- { { key, path, text } ... }, the recipe first.
function M.recipe_files(info)
  local files = info.files or {}
  if #files == 0 then error("k8s: the recipe's files are unknown (load it with recipe.load)", 0) end
  local common
  for i, f in ipairs(files) do
    f.abs = normalize(abspath(f.path))
    if i == 1 or f.near then
      local dir = f.abs:match("^(.*)/[^/]*$")
      if not common then common = dir end
      while (dir .. "/"):sub(1, #common + 1) ~= common .. "/" do common = common:match("^(.*)/[^/]*$") or "" end
    end
  end
  local out, rel_of, taken, total = {}, {}, {}, 0
  for i, f in ipairs(files) do
    local rel
    if i == 1 or f.near then
      rel = f.abs:sub(#common + 2)
    else
      local from_dir = (rel_of[f.from] or ""):match("^(.*)/[^/]*$")
      local name = f.path:sub(-#f.name) == f.name and f.name or (f.name .. ".lua")
      rel = normalize((from_dir and (from_dir .. "/") or "") .. name):sub(2)
      if name:match("^/") or name:match("%.%.") then
        error(("k8s: %s extends %q from the recipes folder; name it without '..' or an absolute path so the " ..
          "pod can mount it"):format(f.from, f.name), 0)
      end
    end
    rel_of[f.path] = rel_of[f.path] or rel
    if not taken[rel] then
      taken[rel] = true
      out[#out + 1] = { key = (rel:gsub("/", ".")), path = rel, text = f.text }
      total = total + #f.text
    end
  end
  if total > CONFIGMAP_LIMIT * 0.9 then
    error(("k8s: the recipe files take %d bytes; a ConfigMap holds at most 1 MiB"):format(total), 0)
  end
  return out
end

local function resources(d)
  local res = { cpu = d.cpu, memory = d.memory }
  if d.gpus > 0 then res["nvidia.com/gpu"] = d.gpus end
  if d.efa > 0 then res["vpc.amazonaws.com/efa"] = d.efa end
  if d.hugepages then res["hugepages-2Mi"] = d.hugepages end
  local limits = {}
  for k, v in pairs(res) do limits[k] = v end
  return { requests = res, limits = limits }   -- requests = limits: hugepages demand it, GPUs and EFA too
end

-- The command of the training container: launch on the mounted recipe with the overrides given here.
function M.command(files, info)
  local argv = { "moonspeed", "launch", cluster.RECIPE_DIR .. "/" .. files[1].path }
  for _, o in ipairs(info.overrides or {}) do argv[#argv + 1] = o end
  if info.variant then argv[#argv + 1] = "--only"; argv[#argv + 1] = tostring(info.variant) end
  return argv
end

-- The documents (Lua tables) of a resolved recipe; d is what cluster.derive gave.
function M.documents(r, info)
  local ok, d = pcall(cluster.derive, r, info.name)
  if not ok then
    if type(d) == "table" then
      local at = info.origin and info.origin[d.path] or info.file
      error(("%s: %s"):format(at, d.msg), 0)
    end
    error(d, 0)
  end
  if d.image == "" then
    error(("%s: cluster.image is empty: name the training image (k8s/Dockerfile), e.g. " ..
      "cluster.image=registry.example.com/moonspeed:1"):format(info.file), 0)
  end
  local files = M.recipe_files(info)
  local cm_name = d.name .. "-recipe"
  local data, items = {}, {}
  for _, f in ipairs(files) do
    data[f.key] = f.text
    items[#items + 1] = { key = f.key, path = f.path }
  end
  local labels = { ["app.kubernetes.io/part-of"] = "moonspeed", ["app.kubernetes.io/name"] = d.name }

  local configmap = {
    apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = cm_name, namespace = d.namespace, labels = labels },
    data = data,
  }

  local runtime_kind = d.scope == "cluster" and "ClusterTrainingRuntime" or "TrainingRuntime"
  local runtime = {
    apiVersion = M.API, kind = runtime_kind,
    metadata = { name = d.runtime, labels = { ["trainer.kubeflow.org/framework"] = "torch",
                                              ["app.kubernetes.io/part-of"] = "moonspeed" } },
    spec = {
      mlPolicy = { numNodes = d.nodes, torch = { numProcPerNode = d.nproc } },
      template = { spec = {
        network = { publishNotReadyAddresses = true },   -- peers resolve each other before they are ready
        replicatedJobs = { {
          name = cluster.JOB,
          template = {
            metadata = { labels = { [M.ANCESTOR_LABEL] = "trainer" } },
            spec = { template = { spec = {
              containers = { {
                name = cluster.CONTAINER,
                image = d.image,
                command = { "moonspeed", "launch" },
                securityContext = { capabilities = { add = { "IPC_LOCK" } } },   -- EFA pins memory
                volumeMounts = { { name = "dshm", mountPath = "/dev/shm" } },
              } },
              volumes = { { name = "dshm", emptyDir = { medium = "Memory", sizeLimit = d.shm_size } } },
            } } },
          },
        } },
      } },
    },
  }
  if d.scope == "namespace" then runtime.metadata.namespace = d.namespace end

  local mounts = { { name = "recipe", mountPath = cluster.RECIPE_DIR, readOnly = true } }
  local volumes = { { name = "recipe", configMap = { name = cm_name, items = items } } }
  if d.checkpoint then
    mounts[#mounts + 1] = { name = "checkpoints", mountPath = d.checkpoint.mount }
    volumes[#volumes + 1] = { name = "checkpoints", persistentVolumeClaim = { claimName = d.checkpoint.pvc } }
  end
  local pod = { volumes = volumes, containers = { { name = cluster.CONTAINER, volumeMounts = mounts } } }
  if next(d.node_selector) then pod.nodeSelector = d.node_selector end
  if #d.tolerations > 0 then pod.tolerations = d.tolerations end

  local command = M.command(files, info)
  if d.checkpoint then command[#command + 1] = "log.dir=" .. d.checkpoint.mount .. "/runs" end
  local job = {
    apiVersion = M.API, kind = "TrainJob",
    metadata = { name = d.name, namespace = d.namespace, labels = labels },
    spec = {
      runtimeRef = { apiGroup = "trainer.kubeflow.org", kind = runtime_kind, name = d.runtime },
      trainer = {
        image = d.image,
        command = command,
        numNodes = d.nodes,
        numProcPerNode = d.nproc,
        resourcesPerNode = resources(d),
        env = d.env,
      },
      podTemplateOverrides = { { targetJobs = { { name = cluster.JOB } }, spec = pod } },
    },
  }
  return { configmap, runtime, job }, d
end

-- The YAML text; the documents pass k8s_rules first.
function M.render(r, info)
  local docs, d = M.documents(r, info)
  local problems = require("moonspeed.k8s_rules").check(docs, { instance = d.instance })
  if #problems > 0 then
    error("k8s: the manifests break Kubeflow Trainer's rules (a moonspeed bug):\n  " ..
      table.concat(problems, "\n  "), 0)
  end
  local head = ("# Kubeflow Trainer %s manifests of %s, written by moonspeed k8s%s.\n" ..
    "# %d node%s x %d rank%s%s. Apply with: kubectl apply -f FILE\n"):format("v2.1.0", info.file,
    #(info.overrides or {}) > 0 and (" " .. table.concat(info.overrides, " ")) or "",
    d.nodes, d.nodes == 1 and "" or "s", d.nproc, d.nproc == 1 and "" or "s",
    d.instance and (" on " .. d.instance.name) or "")
  return head .. yaml.emit(docs), docs, d
end

-- An experiment's manifests: one ConfigMap (the experiment file and all it
-- reads) and one runtime shared by a TrainJob per variant, each running
-- `moonspeed launch EXPERIMENT --only N`. The TrainJobs are named after the
-- experiment (cluster.name, else the file's name) and the variant, cut to fit
-- a DNS label with their pods' host names, and distinct.
function M.render_experiment(variants, path)
  local sweep = require "moonspeed.sweep"
  local json = require "moonspeed.json"
  local rules = require "moonspeed.k8s_rules"
  local docs, names, cm, runtime, base = {}, {}, nil, nil, nil
  for _, v in ipairs(variants) do
    local r, info = v.r, v.info
    local exp = r.cluster.name ~= "" and r.cluster.name or cluster.job_name(r, info.experiment)
    local max = 63 - #("-" .. cluster.JOB .. "-0-" .. (r.cluster.nodes - 1))
    r.cluster.name = sweep.dns_name(exp, v.label, max)
    if names[r.cluster.name] then
      error(("k8s: variants %d and %d would both be the TrainJob %s; name the variants apart"):format(
        names[r.cluster.name], v.index, r.cluster.name), 0)
    end
    names[r.cluster.name] = v.index
    local vdocs, d = M.documents(r, info)
    local problems = rules.check(vdocs, { instance = d.instance })
    if #problems > 0 then
      error(("k8s: variant %d's manifests break Kubeflow Trainer's rules (a moonspeed bug):\n  %s"):format(v.index,
        table.concat(problems, "\n  ")), 0)
    end
    local job = vdocs[3]
    job.metadata.labels["moonspeed/experiment"] = exp
    job.metadata.labels["moonspeed/variant"] = tostring(v.index)
    -- the runtime's pod (image aside: each TrainJob names its own) must be one for all
    local shape = vdocs[2]
    local saved = shape.spec.mlPolicy
    shape.spec.mlPolicy = nil
    local key = json.encode(shape)
    shape.spec.mlPolicy = saved
    if not runtime then
      base, runtime = exp, vdocs[2]
      cm = vdocs[1]
      cm.metadata.name = exp .. "-recipe"
      cm.metadata.labels["app.kubernetes.io/name"] = exp
      runtime.key = key
      if cm.metadata.namespace ~= job.metadata.namespace then error("k8s: the ConfigMap and the TrainJob differ in namespace", 0) end
    elseif key ~= runtime.key or job.metadata.namespace ~= cm.metadata.namespace then
      error(("k8s: variant %d needs another runtime or namespace than variant %d (its cluster.runtime, runtime_scope, " ..
        "namespace, image or shm_size differ); one experiment shares one runtime and ConfigMap: vary those in " ..
        "separate experiments"):format(v.index, variants[1].index), 0)
    end
    job.spec.podTemplateOverrides[1].spec.volumes[1].configMap.name = cm.metadata.name
    docs[#docs + 1] = job
  end
  runtime.key = nil
  table.insert(docs, 1, runtime)
  table.insert(docs, 1, cm)
  local problems = rules.check(docs, {})
  if #problems > 0 then
    error("k8s: the manifests break Kubeflow Trainer's rules (a moonspeed bug):\n  " .. table.concat(problems, "\n  "), 0)
  end
  local head = ("# Kubeflow Trainer %s manifests of the experiment %s (%d variants: %d TrainJobs, one runtime " ..
    "and one ConfigMap), written by moonspeed k8s.\n# Apply with: kubectl apply -f FILE\n"):format("v2.1.0", path,
    #variants, #variants)
  return head .. yaml.emit(docs), docs, base
end

M.command_spec = {
  summary = "the Kubeflow Trainer manifests of a recipe (ConfigMap, runtime, TrainJob)",
  help = [[
usage: moonspeed k8s RECIPE|EXPERIMENT [section.key=value ...] [-o FILE] [--only N]

Writes one multi-document YAML for Kubeflow Trainer v2.1.0: a ConfigMap with the
recipe and every file it extends, a ClusterTrainingRuntime (cluster.runtime_scope =
"namespace": a TrainingRuntime) with the torch policy, and a TrainJob that runs
`moonspeed launch` on the mounted recipe in cluster.nodes pods. The recipe's cluster
section decides the rest (`moonspeed keys` lists it): the instance type gives the
GPUs, EFA devices, hugepages, CPU and memory of each pod and the EFA/NCCL
environment. Bad names, PET_* variables in cluster.env and anything else
Kubernetes would refuse are errors naming the key. Overrides are passed on to the
pods' `moonspeed launch`.

For an EXPERIMENT (a recipe returning sweep(...)) it writes one ConfigMap and one
runtime shared by a TrainJob per variant (<experiment>-<variant>, each running
`moonspeed launch EXPERIMENT --only N`); --only N keeps one variant.

options:
  -o, --output FILE   write the YAML here instead of standard output
  --only N            variant N of an experiment alone
]],
  spec = { flags = { ["--output"] = "string", ["--only"] = "int" }, short = { ["-o"] = "--output" },
           max_positional = 1, overrides = true },
}

-- run(opts, pos, overrides, load_recipe, usage)
function M.run(opts, pos, overrides, load_recipe, usage)
  if not pos[1] then usage("missing RECIPE (a recipe with a cluster section)") end
  local text
  local variants, is_exp = require("moonspeed.recipe").load_experiment(pos[1], overrides, opts.only)
  if is_exp then
    text = M.render_experiment(variants, pos[1])
  else
    local r, info = load_recipe(pos[1], overrides)
    text = M.render(r, info)
  end
  require("moonspeed.sys").output(opts.output, text)
  return 0
end

return M
