-- spec/lua/k8s_support.lua — the manifest validator shared by the specs that emit
-- Kubeflow Trainer manifests (k8s_spec, sweep_spec): the CRDs' folder, node and
-- its packages, reading a YAML file back, and ajv's verdict per document.
--
-- The CRDs are read from ../shared/k8s-schemas (beside the repository) or from
-- the folder MOONSPEED_K8S_SCHEMAS names (a copy of k8s-schemas).

local support = require "support"
local json = require "moonspeed.json"
local assert = require "luassert"

local M = {}

function M.crd_dir()
  local env = os.getenv("MOONSPEED_K8S_SCHEMAS")
  local base = (env and env ~= "") and env or (support.root .. "/../shared/k8s-schemas")
  local dir = base .. "/kubeflow-trainer/crds"
  if support.exists(dir .. "/trainer.kubeflow.org_trainjobs.yaml") then return dir end
  return nil, ("the Kubeflow Trainer CRDs are not at %s; set MOONSPEED_K8S_SCHEMAS to a copy of k8s-schemas " ..
    "to run the schema checks"):format(dir)
end

local VALIDATE = support.root .. "/spec/k8s/validate.js"

function M.node_ready()
  if support.sh("command -v node").code ~= 0 then return nil, "node is not installed (the validator runs on it)" end
  if not support.exists(support.root .. "/spec/k8s/node_modules/.installed") then
    return nil, "spec/k8s/node_modules is missing: run `make spec-node`"
  end
  return true
end

-- The documents of a YAML file as node's yaml package reads them.
function M.read_back(file)
  local res = support.sh("node " .. support.quote(VALIDATE) .. " --dump " .. support.quote(file))
  assert.are.equal(0, res.code, res.stderr)
  return assert(json.decode(res.stdout))
end

-- Validation results, one table per document.
function M.validate(files)
  local dir = assert(M.crd_dir())
  local q = {}
  for i, f in ipairs(files) do q[i] = support.quote(f) end
  local res = support.sh(("node %s %s %s"):format(support.quote(VALIDATE), support.quote(dir), table.concat(q, " ")))
  local out = {}
  for line in res.stdout:gmatch("[^\n]+") do out[#out + 1] = assert(json.decode(line)) end
  assert.is_true(#out > 0, res.stderr)
  return out, res
end

return M
