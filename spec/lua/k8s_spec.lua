-- spec/lua/k8s_spec.lua — `moonspeed k8s`: libyaml's emitter through the FFI,
-- the manifests against Kubeflow Trainer v2.1.0's CRDs (converted to JSON
-- Schema and checked by ajv, spec/k8s/validate.js) and against the rules the
-- schemas do not check (k8s_rules.lua), the refusals, and k8s/manifests being
-- up to date.
--
-- The CRDs are read from ../shared/k8s-schemas (beside the repository) or
-- from the folder MOONSPEED_K8S_SCHEMAS names (a copy of k8s-schemas); without
-- them the schema checks are pending with a message saying so.

local ffi = require "ffi"
local support = require "support"
local json = require "moonspeed.json"
local yaml = require "moonspeed.yaml"

local ks = require "k8s_support"
local crd_dir, node_ready, read_back, validate = ks.crd_dir, ks.node_ready, ks.read_back, ks.validate

local function k8s(args, opts)
  local a = { "k8s" }
  for _, x in ipairs(args) do a[#a + 1] = x end
  return support.moonspeed(a, opts)
end

local function env_of(doc)
  local env = {}
  for _, e in ipairs(doc.spec.trainer.env) do env[e.name] = e.value end
  return env
end

-- The shipped recipes with a cluster section (an image to run).
local function shipped()
  local list = {}
  local p = io.popen("ls recipes/*.lua recipes/*/*.lua 2>/dev/null")
  for path in p:lines() do
    local vs, experiment = require("moonspeed.recipe").load_experiment(path)
    if not experiment and vs[1].r.cluster.image ~= "" then list[#list + 1] = path end
  end
  p:close()
  table.sort(list)
  return list
end

describe("yaml (libyaml's emitter through the FFI)", function()
  it("declares libyaml's structs with the C compiler's sizes", function()
    local dir = support.tmpdir()
    support.write(dir .. "/sizes.c", [[
#include <stdio.h>
#include <stddef.h>
#include <yaml.h>
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu\n", sizeof(yaml_event_t), offsetof(yaml_event_t, start_mark),
         offsetof(yaml_event_t, data.scalar.style), sizeof(yaml_emitter_t), offsetof(yaml_emitter_t, problem),
         sizeof(yaml_mark_t));
  return 0;
}
]])
    local res = support.sh(("cc %s -o %s && %s"):format(support.quote(dir .. "/sizes.c"),
      support.quote(dir .. "/sizes"), support.quote(dir .. "/sizes")))
    assert.are.equal(0, res.code, res.stderr)
    local c = {}
    for n in res.stdout:gmatch("%d+") do c[#c + 1] = tonumber(n) end
    local scalar = ffi.typeof(ffi.new("yaml_event_t").data.scalar)
    assert.are.same(c, { ffi.sizeof("yaml_event_t"), ffi.offsetof("yaml_event_t", "start_mark"),
      ffi.offsetof("yaml_event_t", "data") + ffi.offsetof(scalar, "style"), ffi.sizeof("yaml_emitter_t"),
      ffi.offsetof("yaml_emitter_t", "problem"), ffi.sizeof("yaml_mark_t") })
    assert.are.same({ yaml.SIZEOF.yaml_event_t, yaml.SIZEOF.yaml_emitter_t }, { c[1], c[4] })
  end)

  it("emits YAML that reads back as the same data", function()
    local ok, why = node_ready()
    assert.is_true(ok, why)
    local docs = {
      { apiVersion = "v1", kind = "Tricky", strings = { "true", "no", "on", "y", "1", "01", "1.5", "1e3", "0x1f", "",
        "~", "null", "a: b", "- x", "# c", "[x]", "{x}", "'q'", "\"dq\"", "α β", "  lead", "trail  ", "2024-01-02",
        "12:30", "AWS Libfabric", "@at", "%pct", "`tick`", "*star", "&amp", "!bang", "|pipe", ">gt" },
        numbers = { 0, 1, -7, 29500, 2.5, 1e-5, 123456789012 },
        flags = { true, false },
        text = "line one\nline two: with colon\n  indented\n\ntrailing space \n",
        empty_map = {}, empty_list = yaml.list(),
        nested = { { name = "a", value = "1" }, { name = "b", items = { { key = "k", path = "p/q" } } } } },
      { kind = "Second", n = 1 },
    }
    local dir = support.tmpdir()
    local file = support.write(dir .. "/t.yaml", yaml.emit(docs))
    local back = read_back(file)
    assert.are.same(docs, back)
    assert.matches("^%-%-%-\n", support.read(file))
  end)

  it("says which document holds a value YAML cannot", function()
    assert.has_error(function() yaml.emit({ { a = 1 }, { b = { c = function() end } } }) end,
      "document 2: b.c is function, which a manifest cannot hold")
    assert.has_error(function() yaml.emit({ { x = 0 / 0 } }) end, "document 1: nan is not a number a manifest can hold")
  end)
end)

describe("moonspeed k8s", function()
  assert.is_nil(support.missing_build())
  teardown(function() support.cleanup() end)

  it("writes a ConfigMap, a ClusterTrainingRuntime and a TrainJob for llama-3-8b on g6e", function()
    local dir = support.tmpdir()
    local res = k8s({ "recipes/llama-3-8b.lua", "-o", dir .. "/m.yaml" })
    assert.are.equal(0, res.code, res.stderr)
    local ok, why = node_ready()
    assert.is_true(ok, why)
    local docs = read_back(dir .. "/m.yaml")
    assert.are.same({ "ConfigMap", "ClusterTrainingRuntime", "TrainJob" }, { docs[1].kind, docs[2].kind, docs[3].kind })
    local cm, rt, job = docs[1], docs[2], docs[3]
    assert.are.equal(support.read("recipes/llama-3-8b.lua"), cm.data["llama-3-8b.lua"])
    assert.are.same({ numNodes = 4, torch = { numProcPerNode = 1 } }, rt.spec.mlPolicy)
    local rj = rt.spec.template.spec.replicatedJobs[1]
    assert.are.equal("node", rj.name)
    assert.are.equal("trainer", rj.template.metadata.labels["trainer.kubeflow.org/trainjob-ancestor-step"])
    local pod = rj.template.spec.template.spec
    assert.are.equal("node", pod.containers[1].name)
    assert.are.same({ "IPC_LOCK" }, pod.containers[1].securityContext.capabilities.add)
    assert.are.same({ { name = "dshm", emptyDir = { medium = "Memory", sizeLimit = "64Gi" } } }, pod.volumes)
    assert.is_true(rt.spec.template.spec.network.publishNotReadyAddresses)
    local t = job.spec.trainer
    assert.are.equal("llama-3-8b", job.metadata.name)
    assert.are.same({ "moonspeed", "launch", "/etc/moonspeed/recipe/llama-3-8b.lua" }, t.command)
    assert.are.same({ 4, 1, "moonspeed:latest" }, { t.numNodes, t.numProcPerNode, t.image })
    local want = { cpu = "28", memory = "217Gi", ["hugepages-2Mi"] = "5120Mi", ["nvidia.com/gpu"] = 1,
                   ["vpc.amazonaws.com/efa"] = 1 }
    assert.are.same({ requests = want, limits = want }, t.resourcesPerNode)
    local env = env_of(job)
    assert.are.same({ FI_PROVIDER = "efa", NCCL_NET = "AWS Libfabric", NCCL_SOCKET_IFNAME = "eth0",
                      MS_RENDEZVOUS_TIMEOUT = "900" }, env)
    local o = job.spec.podTemplateOverrides[1]
    assert.are.same({ { name = "node" } }, o.targetJobs)
    assert.are.same({ ["node.kubernetes.io/instance-type"] = "g6e.8xlarge" }, o.spec.nodeSelector)
    assert.are.same({ { key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" } }, o.spec.tolerations)
    assert.are.same({ name = "recipe", configMap = { name = "llama-3-8b-recipe",
      items = { { key = "llama-3-8b.lua", path = "llama-3-8b.lua" } } } }, o.spec.volumes[1])
    assert.is_nil(o.spec.containers[1].env)
  end)

  it("chooses the EFA, NCCL and resource settings by instance type", function()
    local k = require "moonspeed.k8s"
    local recipe = require "moonspeed.recipe"
    local function job(overrides)
      local r, info = recipe.load("recipes/llama-3-8b.lua", overrides)
      local docs = k.documents(r, info)
      return docs[3]
    end
    local p5 = job({ "cluster.instance=p5.48xlarge", "cluster.gpus_per_node=0", "cluster.nodes=2" })
    assert.are.equal("1", env_of(p5).FI_EFA_USE_DEVICE_RDMA)
    assert.are.same({ 8, 32, "172", "1740Gi" }, { p5.spec.trainer.numProcPerNode,
      p5.spec.trainer.resourcesPerNode.limits["vpc.amazonaws.com/efa"], p5.spec.trainer.resourcesPerNode.limits.cpu,
      p5.spec.trainer.resourcesPerNode.limits.memory })
    local g6e = job({ "cluster.instance=g6e.48xlarge", "cluster.gpus_per_node=8" })
    assert.is_nil(env_of(g6e).FI_EFA_USE_DEVICE_RDMA)
    assert.are.equal(4, g6e.spec.trainer.resourcesPerNode.limits["vpc.amazonaws.com/efa"])
    local nohuge = job({ "cluster.hugepages=0" })
    assert.are.equal("0", env_of(nohuge).FI_EFA_USE_HUGE_PAGE)
    assert.is_nil(nohuge.spec.trainer.resourcesPerNode.limits["hugepages-2Mi"])
    local cpu = job({ "cluster.instance=", "cluster.gpus_per_node=0", "cluster.cpu=4", "cluster.memory=16Gi",
                      "cluster.shm_size=1Gi" })
    assert.are.same({ limits = { cpu = "4", memory = "16Gi" }, requests = { cpu = "4", memory = "16Gi" } },
      cpu.spec.trainer.resourcesPerNode)
    assert.are.equal(1, cpu.spec.trainer.numProcPerNode)
    assert.is_nil(env_of(cpu).FI_PROVIDER)
    local user = job({ "cluster.env.NCCL_DEBUG=INFO", "cluster.env.FI_PROVIDER=tcp" })
    assert.are.same({ "INFO", "tcp" }, { env_of(user).NCCL_DEBUG, env_of(user).FI_PROVIDER })
  end)

  it("puts the recipe and every file it extends in the ConfigMap, laid out so the pod loads the same recipe", function()
    local recipe = require "moonspeed.recipe"
    local k = require "moonspeed.k8s"
    local dir = support.tmpdir()
    os.execute("mkdir -p " .. support.quote(dir .. "/exp"))
    support.write(dir .. "/base.lua", 'return extend("llama-3-8b.lua", { train = { steps = 7 } })\n')
    support.write(dir .. "/exp/x.lua", 'return extend("../base.lua", { cluster = { nodes = 2, name = "x-run" } })\n')
    local r, info = recipe.load(dir .. "/exp/x.lua", { "train.lr=1e-4" })
    local docs = k.documents(r, info)
    local cm, job = docs[1], docs[3]
    local items = job.spec.podTemplateOverrides[1].spec.volumes[1].configMap.items
    -- llama-3-8b.lua was found in the recipes folder: it goes next to base.lua, where the pod looks first
    assert.are.same({ { key = "exp.x.lua", path = "exp/x.lua" }, { key = "base.lua", path = "base.lua" },
                      { key = "llama-3-8b.lua", path = "llama-3-8b.lua" } }, items)
    assert.are.same({ "moonspeed", "launch", "/etc/moonspeed/recipe/exp/x.lua", "train.lr=1e-4" },
      job.spec.trainer.command)
    assert.are.equal(support.read("recipes/llama-3-8b.lua"), cm.data["llama-3-8b.lua"])
    -- lay the ConfigMap out as the pod sees it and load the recipe from there
    local mnt = support.tmpdir()
    os.execute("mkdir -p " .. support.quote(mnt .. "/exp"))
    for _, it in ipairs(items) do support.write(mnt .. "/" .. it.path, cm.data[it.key]) end
    local r2 = recipe.load(mnt .. "/exp/x.lua", { "train.lr=1e-4" })
    assert.are.same(r, r2)
  end)

  it("refuses invalid clusters with an error naming the key, and writes nothing", function()
    local dir = support.tmpdir()
    local out = dir .. "/m.yaml"
    local long = ("a"):rep(55)
    local cases = {
      { { "cluster.name=Bad_Name" }, 'override cluster.name=Bad_Name: cluster.name "Bad_Name" must be a DNS label' },
      { { "cluster.env.PET_NODE_RANK=1" },
        "override cluster.env.PET_NODE_RANK=1: cluster.env must not set PET_NODE_RANK: the PET_* variables are Kubeflow's torch policy's" },
      { { "cluster.env.MS_RANK=1" }, "cluster.env must not set MS_RANK: moonspeed launch gives every rank its own" },
      { { "cluster.gpus_per_node=1.5" },
        "override cluster.gpus_per_node=1.5: cluster.gpus_per_node must be an integer in [0, 64], got 1.5" },
      { { "cluster.gpus_per_node=2" }, "cluster.gpus_per_node (2) is more than the 1 GPU of a g6e.8xlarge" },
      { { "cluster.name=" .. long },
        ("cluster.name %q is too long: the last pod's host name %s-node-0-3 has 64 characters, a DNS label allows 63; use a name of at most 54 characters")
          :format(long, long) },
      { { "cluster.env.FI_EFA_USE_DEVICE_RDMA=1" },
        "cluster.env sets FI_EFA_USE_DEVICE_RDMA=1, but a g6e.8xlarge has no GPUDirect RDMA (no RDMA read): libfabric would abort; leave it unset" },
      { { "cluster.instance=g6e.8xl" }, 'cluster.instance "g6e.8xl" is not in the instance catalogue; did you mean "g6e.8xlarge"?' },
      { { "cluster.image=" }, "recipes/llama-3-8b.lua: cluster.image is empty: name the training image" },
      { { "cluster.shm_size=lots" }, 'cluster.shm_size must be a quantity like "16Gi", got "lots"' },
      { { "cluster.shm_size=300Gi" }, "cluster.shm_size (300Gi) is more than the pod's memory (217Gi): /dev/shm is memory" },
      { { "cluster.runtime=Moon" }, 'cluster.runtime "Moon" must be a DNS label' },
      { { "cluster.env=x" }, "override cluster.env=x: cluster.env is a table: set it in the recipe file" },
      { { "cluster.instance=", "cluster.gpus_per_node=0" },
        'cluster.cpu = "auto" needs cluster.instance to size it; name the instance type or set cluster.cpu to a quantity' },
    }
    for _, c in ipairs(cases) do
      local args = { "recipes/llama-3-8b.lua", "-o", out }
      for _, o in ipairs(c[1]) do args[#args + 1] = o end
      local res = k8s(args)
      assert.are.equal(1, res.code, table.concat(c[1], " ") .. ": " .. res.stderr)
      assert.is_truthy(res.stderr:find(c[2], 1, true), ("%s:\n  want %s\n  got  %s"):format(table.concat(c[1], " "), c[2], res.stderr))
      assert.is_false(support.exists(out))
    end
    local res = k8s({})
    assert.are.equal(2, res.code)
    assert.matches("missing RECIPE", res.stderr)
  end)

  it("keeps the rules the CRD schemas do not check, and each rule catches its breach", function()
    local k = require "moonspeed.k8s"
    local rules = require "moonspeed.k8s_rules"
    local recipe = require "moonspeed.recipe"
    local instances = require "moonspeed.instances"
    local function fresh()
      local r, info = recipe.load("recipes/llama-3-8b.lua")
      return (k.documents(r, info))
    end
    local g6e = instances.get("g6e.8xlarge")
    assert.are.same({}, rules.check(fresh(), { instance = g6e }))
    local breaches = {
      { function(d) d[3].metadata.name = "Llama" end, "TrainJob Llama: metadata.name must match" },
      { function(d) d[3].metadata.name = ("b"):rep(60) end, "-node-0-3 is not a DNS label" },
      { function(d) table.insert(d[3].spec.trainer.env, { name = "PET_MASTER_PORT", value = "1" }) end,
        "trainer.env must not set PET_MASTER_PORT" },
      { function(d) table.insert(d[3].spec.trainer.env, { name = "FI_EFA_USE_DEVICE_RDMA", value = "1" }) end,
        "FI_EFA_USE_DEVICE_RDMA=1 on g6e.8xlarge, which has no RDMA read" },
      { function(d) table.insert(d[3].spec.trainer.env, { name = "NCCL_PROTO", value = "simple" }) end,
        "trainer.env forces NCCL_PROTO" },
      { function(d) d[3].spec.podTemplateOverrides[1].targetJobs[1].name = "worker" end,
        "targets job worker, which the runtime lacks" },
      { function(d) d[3].spec.podTemplateOverrides[1].spec.containers[1].name = "trainer" end,
        "names container trainer, which job node lacks" },
      { function(d) d[3].spec.podTemplateOverrides[1].spec.containers[1].env = { { name = "A", value = "b" } } end,
        "sets env on container node; use trainer.env" },
      { function(d) d[3].spec.podSpecOverrides = d[3].spec.podTemplateOverrides end,
        "podSpecOverrides is the old field" },
      { function(d) d[2].spec.mlPolicy.mpi = {} end, "sets both torch and mpi" },
      { function(d) d[2].spec.mlPolicy.torch.numProcPerNode = "auto" end,
        "mlPolicy.torch.numProcPerNode must be an integer > 0, got auto" },
      { function(d) d[3].spec.trainer.numProcPerNode = 1.5 end, "trainer.numProcPerNode must be an integer > 0, got 1.5" },
      { function(d) d[2].spec.template.spec.replicatedJobs[1].name = "trainer" end, "no replicated job named node" },
      { function(d) d[2].spec.template.spec.replicatedJobs[1].template.metadata.labels = {} end,
        "lacks the label trainer.kubeflow.org/trainjob-ancestor-step: trainer" },
      { function(d) d[2].spec.template.spec.replicatedJobs[1].template.spec.template.spec.containers[1].securityContext = nil end,
        "lacks the IPC_LOCK capability" },
      { function(d) d[2].spec.template.spec.replicatedJobs[1].template.spec.template.spec.volumes[1].emptyDir.medium = nil end,
        "/dev/shm is not a memory-backed emptyDir" },
      { function(d) d[2].spec.template.spec.network = nil end, "publishNotReadyAddresses must be true" },
      { function(d) d[3].spec.trainer.resourcesPerNode.requests["hugepages-2Mi"] = "2Mi" end,
        "hugepages-2Mi: requests (2Mi) must equal limits (5120Mi)" },
      { function(d) d[3].spec.trainer.resourcesPerNode.limits["vpc.amazonaws.com/efa"] = nil end,
        "vpc.amazonaws.com/efa must be 1 on g6e.8xlarge, got nil" },
      { function(d) d[3].spec.runtimeRef.name = "torch-distributed" end,
        "runtimeRef ClusterTrainingRuntime torch-distributed is not among the documents" },
    }
    for _, b in ipairs(breaches) do
      local docs = fresh()
      b[1](docs)
      local problems = rules.check(docs, { instance = g6e })
      local all = table.concat(problems, " | ")
      assert.is_true(#problems >= 1 and #problems <= 2, b[2] .. ": " .. all)
      assert.is_truthy(all:find(b[2], 1, true), ("want %s\ngot  %s"):format(b[2], all))
    end
  end)
end)

describe("k8s/manifests", function()
  it("holds the rendered manifests of exactly the shipped recipes with a cluster, up to date (make k8s)", function()
    local recipes = shipped()
    assert.is_true(#recipes >= 2)
    local want = {}
    for _, path in ipairs(recipes) do
      local name = path:match("([^/]+)%.lua$")
      want[#want + 1] = name .. ".yaml"
      local res = k8s({ path })
      assert.are.equal(0, res.code, res.stderr)
      local file = "k8s/manifests/" .. name .. ".yaml"
      assert.are.equal(res.stdout, support.read(file), file .. " is out of date: run `make k8s`")
    end
    table.sort(want)
    assert.are.same(want, support.ls("k8s/manifests"))
  end)

  it("validate against Kubeflow Trainer v2.1.0's CRDs, strictly, and keep the rules", function()
    local dir, why = crd_dir()
    if not dir then pending(why) return end
    local ok, nwhy = node_ready()
    assert.is_true(ok, nwhy)
    local files = {}
    for _, f in ipairs(support.ls("k8s/manifests")) do files[#files + 1] = "k8s/manifests/" .. f end
    -- variants: a namespaced runtime, a checkpoint volume, a CPU cluster, p5 with RDMA
    local tmp = support.tmpdir()
    local variants = {
      { "cluster.runtime_scope=namespace", "cluster.namespace=training", "cluster.checkpoint_pvc=ckpt" },
      { "cluster.instance=", "cluster.gpus_per_node=0", "cluster.cpu=2", "cluster.memory=4Gi", "cluster.shm_size=1Gi" },
      { "cluster.instance=p5.48xlarge", "cluster.gpus_per_node=8", "cluster.env.NCCL_DEBUG=INFO" },
    }
    for i, v in ipairs(variants) do
      local args = { "recipes/llama-3-8b.lua", "-o", ("%s/variant-%d.yaml"):format(tmp, i) }
      for _, o in ipairs(v) do args[#args + 1] = o end
      local res = k8s(args)
      assert.are.equal(0, res.code, res.stderr)
      files[#files + 1] = args[3]
    end
    local results = validate(files)
    assert.are.equal(3 * #files, #results)
    for _, r in ipairs(results) do
      assert.is_true(r.valid, ("%s #%d %s %s: %s"):format(r.file, r.index, r.kind, r.name,
        table.concat(r.errors or {}, "; ")))
    end
    -- our rules on the documents as YAML reads them back
    local rules = require "moonspeed.k8s_rules"
    for _, f in ipairs(files) do assert.are.same({}, rules.check(read_back(f)), f) end
    -- strict: an unknown field and a wrong type are errors
    local text = support.read(files[1])
    local bad = support.write(tmp .. "/bad.yaml", text:gsub("numProcPerNode: 1\n", "numProcsPerNode: 1\n")
      :gsub("publishNotReadyAddresses: true", 'publishNotReadyAddresses: "yes"'))
    local res = validate({ bad })
    assert.are.same({ true, false, false }, { res[1].valid, res[2].valid, res[3].valid })
    assert.are.same({ "/spec/mlPolicy/torch must NOT have additional properties: numProcsPerNode",
      "/spec/template/spec/network/publishNotReadyAddresses must be boolean" }, res[2].errors)
    assert.are.same({ "/spec/trainer must NOT have additional properties: numProcsPerNode" }, res[3].errors)
  end)
end)

describe("the instance catalogue", function()
  it("has the instance types the recipes name, with their GPUs, network and RDMA", function()
    local instances = require "moonspeed.instances"
    local function facts(name)
      local t = assert(instances.get(name))
      return { t.gpu, t.gpus, t.gpu_memory_gib, t.sm, t.vcpus, t.ram_gib, t.efa, t.network_gbps, t.gpudirect_rdma }
    end
    assert.are.same({ "L40S", 1, 48, "8.9", 32, 256, 1, 25, false }, facts("g6e.8xlarge"))
    assert.are.same({ "L40S", 4, 48, "8.9", 48, 384, 1, 100, false }, facts("g6e.12xlarge"))
    assert.are.same({ "L40S", 8, 48, "8.9", 192, 1536, 4, 400, false }, facts("g6e.48xlarge"))
    assert.are.same({ "A100", 8, 40, "8.0", 96, 1152, 4, 400, true }, facts("p4d.24xlarge"))
    assert.are.same({ "H100", 8, 80, "9.0", 192, 2048, 32, 3200, true }, facts("p5.48xlarge"))
    local none, why = instances.get("g7.xlarge")
    assert.is_nil(none)
    assert.matches('^unknown instance type "g7%.xlarge"; the catalogue %(lua/moonspeed/instances%.lua%) has g6e%.12xlarge, ', why)
    assert.are.equal("1x L40S 48 GiB (sm_89), 32 vCPU, 256 GiB, 1 EFA, 25 Gbps, no GPUDirect RDMA",
      instances.describe(instances.get("g6e.8xlarge")))
  end)
end)

describe("moonspeed plan with a cluster", function()
  it("compares one rank with its GPU and a step's traffic with the network", function()
    local res = support.moonspeed({ "plan", "recipes/llama-3-8b.lua", "zero.stage=3" })
    assert.are.equal(0, res.code, res.stderr)
    assert.matches("cluster: 4 x g6e%.8xlarge %(1x L40S 48 GiB %(sm_89%), 32 vCPU, 256 GiB, 1 EFA, 25 Gbps, " ..
      "no GPUDirect RDMA%), 4 ranks", res.stdout)
    assert.matches("one rank needs [%d.]+ GiB on its L40S %(48 GiB%): ", res.stdout)
    -- bf16 gradients reduced and parameters gathered twice: 4 x 3/4 x 2 bytes x 8.03 B parameters
    local gib = tonumber(res.stdout:match("each rank moves ([%d.]+) GiB a step over the network"))
    assert.is_true(math.abs(gib - 4 * 0.75 * 2 * 8030261248 / 2 ^ 30) < 0.01, tostring(gib))
    local s = tonumber(res.stdout:match("at least ([%d.]+)s at 25 Gbps"))
    assert.is_true(math.abs(s - gib * 2 ^ 30 * 8 / 25e9) < 0.1, tostring(s))
  end)
end)
