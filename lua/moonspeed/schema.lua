-- lua/moonspeed/schema.lua — every recipe key: type, default, range, one-line doc.
--
-- This is the one description of a recipe. The loader (recipe.lua, which
-- checks each table as written through layer.lua) validates against it,
-- engine.lua maps it onto ms_config, and `moonspeed keys` prints the
-- reference from it. A new key is added here and nowhere else (plus its
-- ms_config field in engine.lua when the engine needs it).
--
-- A field is { key, type, default, doc, ... } with type one of
--   "int"    an integer; optional min / max
--   "number" a number;   optional min / max, gt (exclusive lower bound), lt
--   "bool"   true or false
--   "string" a string;   optional nonempty
--   "enum"   a string from `values`
--   "map"    a table of string keys to string values (labels, environment)
--   "list"   a list of maps whose keys are in `item_keys` (tolerations)
-- Sections are tables of fields; top-level scalars are fields of the root.
-- Reserved sections are accepted only empty: their keys arrive in later releases.

local M = {}

local function section(name, doc, fields)
  local s = { name = name, doc = doc, fields = fields, by_key = {} }
  for _, f in ipairs(fields) do
    f.section = name
    f.path = name and (name .. "." .. f.key) or f.key
    s.by_key[f.key] = f
  end
  return s
end

-- The order here is the order of `moonspeed keys` and of resolved recipe files.
M.sections = {
  section(nil, "Top-level keys", {
    { key = "precision", type = "enum", values = { "fp32", "bf16" }, default = "fp32",
      doc = "fp32: everything fp32; bf16: bf16 parameters and activations, fp32 master weights and optimizer state" },
    { key = "device", type = "enum", values = { "cpu", "cuda" }, default = "cpu",
      doc = "where the model computes: cpu, or cuda (NVIDIA GPUs, one per rank: local rank r uses GPU r)" },
    { key = "threads", type = "int", min = 0, max = 1024, default = 0,
      doc = "worker threads for the CPU backend; 0 = all cores" },
  }),
  section("model", "The network shape (Llama family)", {
    { key = "name", type = "string", default = "tiny",
      doc = "a name for humans (plots, the plan, the run summary)" },
    { key = "vocab_size", type = "int", min = 1, max = 16777216, default = 258,
      doc = "tokens in the vocabulary (the bytes tokenizer has 258: bytes, BOS, EOS)" },
    { key = "dim", type = "int", min = 2, max = 65536, default = 128,
      doc = "model width d" },
    { key = "n_layers", type = "int", min = 1, max = 1024, default = 4,
      doc = "transformer blocks" },
    { key = "n_heads", type = "int", min = 1, max = 1024, default = 4,
      doc = "query heads; head_dim = dim / n_heads must be even (RoPE)" },
    { key = "n_kv_heads", type = "int", min = 1, max = 1024, default = 2,
      doc = "key/value heads (grouped-query attention); divides n_heads" },
    { key = "ffn_dim", type = "int", min = 1, max = 1048576, default = 384,
      doc = "hidden width of the SwiGLU MLP" },
    { key = "max_seq_len", type = "int", min = 1, max = 1048576, default = 256,
      doc = "longest sequence the model is built for (RoPE tables); train.seq_len <= max_seq_len" },
    { key = "tie_embeddings", type = "bool", default = true,
      doc = "the LM head reuses the embedding matrix" },
    { key = "rope_theta", type = "number", gt = 0, default = 10000,
      doc = "RoPE base frequency (Llama 3: 500000)" },
    { key = "norm_eps", type = "number", gt = 0, lt = 1, default = 1e-5,
      doc = "epsilon of RMSNorm" },
    { key = "init_std", type = "number", gt = 0, lt = 10, default = 0.02,
      doc = "standard deviation of the normal init of weight matrices" },
  }),
  section("train", "The optimization", {
    { key = "steps", type = "int", min = 1, max = 1e9, default = 1000,
      doc = "optimizer steps; the LR schedule spans them" },
    { key = "batch", type = "int", min = 1, max = 16777216, default = 16,
      doc = "sequences per optimizer step" },
    { key = "micro_batch", type = "int", min = 1, max = 16777216, default = 16,
      doc = "sequences per forward/backward pass; divides batch (gradient accumulation)" },
    { key = "seq_len", type = "int", min = 1, max = 1048576, default = 128,
      doc = "tokens per training sequence; <= model.max_seq_len" },
    { key = "lr", type = "number", gt = 0, lt = 10, default = 1e-3,
      doc = "peak learning rate" },
    { key = "min_lr", type = "number", min = 0, lt = 10, default = 1e-4,
      doc = "learning rate at the end of a linear or cosine decay; <= lr" },
    { key = "schedule", type = "enum", values = { "constant", "linear", "cosine" }, default = "cosine",
      doc = "learning-rate decay after warmup, from lr to min_lr" },
    { key = "warmup", type = "int", min = 0, max = 1e9, default = 0,
      doc = "steps of linear warmup from 0 to lr" },
    { key = "clip", type = "number", min = 0, default = 1.0,
      doc = "clip the global gradient norm to this; 0 = no clipping" },
    { key = "weight_decay", type = "number", min = 0, lt = 10, default = 0.1,
      doc = "decoupled AdamW weight decay (not applied to norms and embeddings)" },
    { key = "beta1", type = "number", min = 0, lt = 1, default = 0.9,
      doc = "AdamW first-moment decay" },
    { key = "beta2", type = "number", min = 0, lt = 1, default = 0.95,
      doc = "AdamW second-moment decay" },
    { key = "eps", type = "number", gt = 0, lt = 1, default = 1e-8,
      doc = "AdamW epsilon" },
    { key = "eval_every", type = "int", min = 0, max = 1e9, default = 100,
      doc = "evaluate held-out loss every this many steps (and after the last); 0 = only after the last" },
    { key = "eval_batches", type = "int", min = 1, max = 1e6, default = 8,
      doc = "micro-batches per evaluation" },
    { key = "seed", type = "int", min = 0, max = 2^53, default = 1234,
      doc = "seed of the initialization and the data order" },
    { key = "nan", type = "enum", values = { "stop", "skip" }, default = "stop",
      doc = "a step whose loss or gradients are NaN or Inf updates nothing; stop: the run ends with a report naming the first unit where they appeared; skip: it is counted and training goes on" },
    { key = "nan_max_skips", type = "int", min = 1, max = 1e9, default = 10,
      doc = "with nan = \"skip\": this many skipped steps in a row end the run" },
    { key = "selective_checkpoint", type = "bool", default = false,
      doc = "keep matmul and attention outputs, recompute only the norms and SwiGLU in backward (about a third less activation memory for ~1% more compute); checkpoint_activations wins when both are set" },
    { key = "checkpoint_activations", type = "bool", default = false,
      doc = "keep only each block's input and recompute its forward in backward (less memory, ~1/3 more compute)" },
    { key = "profile", type = "int", min = 0, max = 1e6, default = 0,
      doc = "time every op of this many steps after the run's first on the device's own clock (a GPU's events, the host's clock on the CPU), then print by op (a matmul by its shape) milliseconds a step, share and calls, and how long the device stood idle (waiting for the host, a copy or a collective), and write them to profile.json in the run directory; 0 = off (moonspeed attach's profile N does the same on a running job)" },
    { key = "loss_chunk", type = "int", min = 0, max = 16777216, default = 0,
      doc = "rows of logits per LM-head chunk; 0 = automatic: on a GPU a micro-batch in one chunk up to 2 GiB of fp32 logits (8 GiB unless the recipe offloads the optimizer or checkpoints every activation), else ~512 MiB chunks; ~64 MiB on the CPU" },
  }),
  section("data", "Where the tokens come from", {
    { key = "tokenizer", type = "string", nonempty = true, default = "bytes",
      doc = "\"bytes\" (one token per byte, BOS 256, EOS 257), or the path of a tokenizer.model or tokenizer.json (make data-llama3 fetches Llama 3's); the shards must carry its id" },
    { key = "train", type = "string", nonempty = true, default = "data/kjv/train.bin",
      doc = "training token shard, or a pattern naming several (data/corpus/train-*.bin); relative to the working directory" },
    { key = "val", type = "string", nonempty = true, default = "data/kjv/val.bin",
      doc = "held-out token shard (or pattern) for evaluation" },
    { key = "doc_mask", type = "bool", default = false,
      doc = "documents are packed into sequences; true: attention does not cross them (a BOS starts a document)" },
  }),
  section("init", "Where the initial weights come from", {
    { key = "from", type = "string", default = "",
      doc = "empty: meta init (train.seed); else a Hugging Face Llama directory (config.json + model.safetensors or model.safetensors.index.json; its config must match the model section), a run directory or a model.bin; each rank reads only its own slices" },
  }),
  section("zero", "ZeRO: how model state is split across ranks", {
    { key = "stage", type = "int", min = 0, max = 3, auto = true, default = 0,
      doc = "0 replicate; 1 shard fp32 master and moments; 2 also gradients (reduce-scattered per unit); 3 also parameters (gathered per unit); \"auto\": the lowest stage that fits (moonspeed plan says which)" },
    { key = "prefetch", type = "int", min = 0, max = 2, default = 1,
      doc = "stage 3: units gathered ahead of the one computing" },
  }),
  section("offload", "Optimizer state and parameters in host memory (the GPU keeps what is left)", {
    { key = "optimizer", type = "enum", values = { "none", "cpu", "auto" }, default = "none",
      doc = "cpu: the fp32 master weights and Adam moments of the offloaded units live in pinned host memory and a CPU AdamW updates them while the GPU goes on; auto: offload only when the plan does not fit the device otherwise" },
    { key = "params", type = "enum", values = { "none", "cpu" }, default = "none",
      doc = "cpu (zero.stage 3, optimizer = cpu): each offloaded unit's shard of the compute parameters lives in pinned host memory, where the host updates it, and streams up just before the unit is gathered" },
    { key = "ratio", type = "number", min = 0, max = 1, default = 1,
      doc = "with optimizer = cpu: the fraction of the optimizer state offloaded, in whole units (the rest stays on the device and is updated there at the same time)" },
    { key = "overlap", type = "bool", default = false,
      doc = "true: the host updates each offloaded unit as soon as its gradient arrives, during the backward, into a second copy of its state, betting that the step is neither clipped nor skipped (kept if so, else recomputed or dropped); false: the host updates after the backward, in forward order, while the next forward runs (measured faster on one H200, and half the host memory)" },
  }),
  section("comm", "Collectives between ranks", {
    { key = "provider", type = "string", default = "",
      doc = "libfabric provider (shm, tcp;ofi_rxm, efa); empty = FI_PROVIDER, else efa when present, shm on one host, tcp;ofi_rxm across hosts" },
    { key = "timeout_s", type = "number", gt = 0, max = 86400, default = 300,
      doc = "deadline of every collective; a dead or stuck rank becomes an error naming it" },
  }),
  section("checkpoint", "Sharded checkpoints and resuming", {
    { key = "dir", type = "string", default = "",
      doc = "where checkpoints go (one folder shared by every rank); empty = <run dir>/checkpoints" },
    { key = "every", type = "int", min = 0, max = 1e9, default = 0,
      doc = "steps between checkpoints (and one after the last step); 0 = only when asked for (attach, a stop)" },
    { key = "keep", type = "int", min = 1, max = 1e6, default = 3,
      doc = "complete checkpoints kept; older ones are removed once a newer one is in place" },
    { key = "async", type = "bool", default = false,
      doc = "snapshot the state to host memory and write it from a background thread while training goes on" },
    { key = "resume", type = "string", nonempty = true, default = "auto",
      doc = "\"auto\": from the newest valid checkpoint in dir (damaged ones skipped), \"none\", or a checkpoint folder" },
  }),
  section("cluster", "Where the job runs on Kubernetes (moonspeed k8s, moonspeed doctor, the planner)", {
    { key = "name", type = "string", default = "",
      doc = "the TrainJob's name (a DNS label: lowercase letters, digits, '-'); empty = the recipe's file name" },
    { key = "nodes", type = "int", min = 1, max = 4096, default = 1,
      doc = "pods (one per node) of the TrainJob" },
    { key = "gpus_per_node", type = "int", min = 0, max = 64, default = 0,
      doc = "ranks (one per GPU) in each pod; 0 = every GPU of cluster.instance" },
    { key = "instance", type = "string", default = "",
      doc = "the EC2 instance type of the nodes (lua/moonspeed/instances.lua): GPUs, EFA, network; empty = none named" },
    { key = "image", type = "string", default = "",
      doc = "the container image holding moonspeed (k8s/Dockerfile); needed by moonspeed k8s" },
    { key = "namespace", type = "string", nonempty = true, default = "default",
      doc = "the Kubernetes namespace of the TrainJob and its ConfigMap" },
    { key = "runtime", type = "string", nonempty = true, default = "moonspeed",
      doc = "the name of the (Cluster)TrainingRuntime emitted with the job" },
    { key = "runtime_scope", type = "enum", values = { "cluster", "namespace" }, default = "cluster",
      doc = "cluster: a ClusterTrainingRuntime; namespace: a TrainingRuntime in cluster.namespace" },
    { key = "node_selector", type = "map", default = {},
      doc = "labels a node must carry (e.g. node.kubernetes.io/instance-type); the instance type is added when named" },
    { key = "tolerations", type = "list", default = {},
      item_keys = { key = "string", operator = "string", value = "string", effect = "string",
                    tolerationSeconds = "int" },
      doc = "taints the pods tolerate: { { key = \"nvidia.com/gpu\", operator = \"Exists\", effect = \"NoSchedule\" } }" },
    { key = "hugepages", type = "string", nonempty = true, default = "auto",
      doc = "2 MiB hugepages per pod (a quantity like \"5120Mi\"); auto = 5120Mi on EFA instances, else none; \"0\" = none" },
    { key = "shm_size", type = "string", nonempty = true, default = "16Gi",
      doc = "size of /dev/shm (a memory-backed emptyDir; counts against the pod's memory)" },
    { key = "cpu", type = "string", nonempty = true, default = "auto",
      doc = "CPU request and limit per pod; auto = 90% of the instance's vCPUs (room for the node's daemons)" },
    { key = "memory", type = "string", nonempty = true, default = "auto",
      doc = "memory request and limit per pod; auto = 85% of the instance's RAM" },
    { key = "checkpoint_pvc", type = "string", default = "",
      doc = "a PersistentVolumeClaim mounted in every pod for checkpoints; empty = none" },
    { key = "checkpoint_mount", type = "string", nonempty = true, default = "/checkpoints",
      doc = "where cluster.checkpoint_pvc is mounted" },
    { key = "env", type = "map", default = {},
      doc = "extra environment of the training container (PET_* are the runtime's and refused)" },
  }),
  section("log", "What a run reports", {
    { key = "every", type = "int", min = 1, max = 1e9, default = 10,
      doc = "steps between progress lines when the output is not a terminal" },
    { key = "sample_tokens", type = "int", min = 0, max = 1048576, default = 200,
      doc = "tokens of the sample generated after training; 0 = no sample" },
    { key = "sample_prompt", type = "string", default = "In the beginning",
      doc = "prompt of that sample" },
    { key = "sample_temperature", type = "number", min = 0, max = 100, default = 0.8,
      doc = "sampling temperature; 0 = greedy" },
    { key = "sample_top_k", type = "int", min = 0, max = 16777216, default = 40,
      doc = "sample among the k most likely tokens; 0 = all" },
    { key = "peak_gflops", type = "number", min = 0, default = 0,
      doc = "peak GFLOP/s of the hardware, for MFU; 0 = automatic (a known GPU: its dense bf16 or fp32 peak; the CPU: 32 fp32 FLOP/cycle per core, the AVX2/AVX-512 FMA rate, x clock x threads)" },
    { key = "dir", type = "string", nonempty = true, default = "runs",
      doc = "parent folder of run directories (runs/<recipe>-<YYYYmmdd-HHMMSS>)" },
  }),
}

M.section_by_name = {}
M.fields = {}          -- every field, in reference order
M.field_by_path = {}   -- "train.lr" -> field
local leaf_count = {}
for _, s in ipairs(M.sections) do
  if s.name then M.section_by_name[s.name] = s end
  for _, f in ipairs(s.fields) do
    M.fields[#M.fields + 1] = f
    M.field_by_path[f.path] = f
    leaf_count[f.key] = (leaf_count[f.key] or 0) + 1
  end
end
M.root = M.sections[1]

-- Candidate fields for a short override key (`lr` for `train.lr`).
function M.fields_named(key)
  local found = {}
  for _, f in ipairs(M.fields) do
    if f.key == key then found[#found + 1] = f end
  end
  return found
end

-- Every valid key path, for "did you mean" suggestions.
function M.all_paths()
  local paths = {}
  for _, f in ipairs(M.fields) do paths[#paths + 1] = f.path end
  for _, s in ipairs(M.sections) do if s.name then paths[#paths + 1] = s.name end end
  return paths
end

local function fmtnum(x)
  if x == math.huge then return "inf" end
  if x == math.floor(x) and math.abs(x) < 2^53 then
    if x >= 2^20 and x == 2^math.floor(math.log(x) / math.log(2) + 0.5) then
      return ("2^%d"):format(math.floor(math.log(x) / math.log(2) + 0.5))
    end
    return ("%d"):format(x)
  end
  return ("%.10g"):format(x)
end
M.fmtnum = fmtnum

-- What a field allows, in words: `a number > 0`, `one of "fp32", "bf16"`.
function M.allowed(f)
  if f.type == "enum" then
    local q = {}
    for i, v in ipairs(f.values) do q[i] = ("%q"):format(v) end
    return #q == 1 and q[1] or ("one of " .. table.concat(q, ", "))
  elseif f.type == "bool" then
    return "true or false"
  elseif f.type == "string" then
    return f.nonempty and "a non-empty string" or "a string"
  elseif f.type == "map" then
    return "a table of string keys to string values"
  elseif f.type == "list" then
    local keys = {}
    for k in pairs(f.item_keys) do keys[#keys + 1] = k end
    table.sort(keys)
    return "a list of tables with keys " .. table.concat(keys, ", ")
  end
  local what = f.type == "int" and "an integer" or "a number"
  local auto = f.auto and ' or "auto"' or ""
  local lo, hi
  if f.min then lo = ">= " .. fmtnum(f.min) end
  if f.gt then lo = "> " .. fmtnum(f.gt) end
  if f.max then hi = "<= " .. fmtnum(f.max) end
  if f.lt then hi = "< " .. fmtnum(f.lt) end
  if lo and hi then
    if f.min and f.max then return ("%s in [%s, %s]%s"):format(what, fmtnum(f.min), fmtnum(f.max), auto) end
    return ("%s %s and %s%s"):format(what, lo, hi, auto)
  end
  if lo or hi then return what .. " " .. (lo or hi) .. auto end
  return what .. auto
end

-- Describes a value for messages: `"3e-4" (a string)`, `-1`, `a table`.
function M.describe(v)
  local t = type(v)
  if t == "string" then return ("%q (a string)"):format(v) end
  if t == "number" then return fmtnum(v) end
  if t == "boolean" then return tostring(v) end
  if t == "nil" then return "nothing" end
  return "a " .. t
end

-- A map or list field's problem (nil when fine): names the entry at fault.
local function check_table(f, v)
  if type(v) ~= "table" or getmetatable(v) then
    return ("%s must be %s, got %s"):format(f.path, M.allowed(f), M.describe(v))
  end
  if f.type == "map" then
    for k, x in pairs(v) do
      if type(k) ~= "string" or k == "" then
        return ("%s must be %s; found the key %s"):format(f.path, M.allowed(f), M.describe(k))
      end
      if type(x) ~= "string" then
        return ("%s.%s must be a string, got %s"):format(f.path, k, M.describe(x))
      end
    end
    return nil
  end
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  if n ~= #v then return ("%s must be a list (entries 1..n), not a table of named keys"):format(f.path) end
  for i, item in ipairs(v) do
    local at = ("%s[%d]"):format(f.path, i)
    if type(item) ~= "table" then return ("%s must be a table, got %s"):format(at, M.describe(item)) end
    for k, x in pairs(item) do
      local want = type(k) == "string" and f.item_keys[k]
      if not want then
        local keys = {}
        for name in pairs(f.item_keys) do keys[#keys + 1] = name end
        table.sort(keys)
        return ("%s has an unknown key %s; allowed: %s"):format(at, tostring(k), table.concat(keys, ", "))
      end
      local ok = (want == "string" and type(x) == "string")
        or (want == "int" and type(x) == "number" and x == math.floor(x))
      if not ok then
        return ("%s.%s must be %s, got %s"):format(at, k, want == "int" and "an integer" or "a string", M.describe(x))
      end
    end
  end
  return nil
end

-- Checks one value against its field. Returns nil when fine, else the reason.
function M.check(f, v)
  if f.type == "map" or f.type == "list" then return check_table(f, v) end
  local t = type(v)
  local ok
  if f.auto and v == "auto" then
    return nil
  elseif f.type == "int" then
    ok = t == "number" and v == math.floor(v) and v == v
  elseif f.type == "number" then
    ok = t == "number" and v == v
  elseif f.type == "bool" then
    ok = t == "boolean"
  elseif f.type == "string" then
    ok = t == "string" and (not f.nonempty or v ~= "")
  elseif f.type == "enum" then
    ok = false
    if t == "string" then
      for _, x in ipairs(f.values) do if x == v then ok = true end end
    end
  end
  if ok and t == "number" then
    ok = (not f.min or v >= f.min) and (not f.max or v <= f.max)
      and (not f.gt or v > f.gt) and (not f.lt or v < f.lt)
  end
  if ok then return nil end
  return ("%s must be %s, got %s"):format(f.path, M.allowed(f), M.describe(v))
end

-- The defaults as a fresh recipe table.
function M.defaults()
  local r = {}
  for _, s in ipairs(M.sections) do
    local into = r
    if s.name then into = {}; r[s.name] = into end
    for _, f in ipairs(s.fields) do into[f.key] = M.default_of(f) end
  end
  return r
end

-- A field's default (a fresh table for maps and lists).
function M.default_of(f)
  if type(f.default) ~= "table" then return f.default end
  local c = {}
  for k, v in pairs(f.default) do c[k] = v end
  return c
end

local function fmtdefault(f)
  local v = f.default
  if type(v) == "table" then return "{}" end
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "number" then return fmtnum(v) end
  return tostring(v)
end
M.fmtdefault = fmtdefault

-- The key reference (`moonspeed keys`); markdown = true for a README table.
function M.reference(markdown)
  local out = {}
  local function add(s) out[#out + 1] = s end
  if markdown then
    add("| key | type | default | allowed | meaning |")
    add("|---|---|---|---|---|")
    for _, f in ipairs(M.fields) do
      add(("| `%s` | %s | `%s` | %s | %s |"):format(f.path, f.type, fmtdefault(f),
        M.allowed(f):gsub("|", "\\|"), f.doc))
    end
    return table.concat(out, "\n") .. "\n"
  end
  add("Recipe keys (type, default, allowed values, meaning). Set them in a recipe file,")
  add("or on the command line as section.key=value (or key=value when the key name is unique).")
  for _, s in ipairs(M.sections) do
    add("")
    add(s.name and (s.name .. " — " .. s.doc) or s.doc)
    for _, f in ipairs(s.fields) do
      add(("  %-30s %-7s default %s"):format(f.path, f.type, fmtdefault(f)))
      add(("  %-30s %s"):format("", f.doc))
      add(("  %-30s allowed: %s"):format("", M.allowed(f)))
    end
  end
  return table.concat(out, "\n") .. "\n"
end

return M
