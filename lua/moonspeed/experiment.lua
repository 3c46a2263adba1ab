-- lua/moonspeed/experiment.lua — experiments and DeepSpeed imports on the command line.
--
--   moonspeed run EXPERIMENT [--list] [--only N]     (the run command calls run_all)
--   moonspeed from-deepspeed DS_CONFIG.json [--hf-config config.json] [--base RECIPE] [--world N] [-o FILE]
--
-- An experiment is a recipe file that returns sweep(...) (sweep.lua); its
-- variants run one after the other, each in its own run directory
-- (<log.dir>/<experiment>-<variant>-<time>, or DIR/<variant> with --run-dir
-- DIR), and a comparison table (compare.lua) follows. A variant that fails
-- is reported and the others still run; the exit status is then 1.

local M = {}

local function say(...) io.stdout:write(...) io.stdout:write("\n") io.stdout:flush() end

-- The lines of `--list`: number, name, the values it sets.
function M.list_lines(path, variants, n)
  local schema = require "moonspeed.schema"
  local out = { ("experiment %s: %d variant%s"):format(path, n, n == 1 and "" or "s") }
  local width = 0
  for _, v in ipairs(variants) do width = math.max(width, #(v.label or "")) end
  for _, v in ipairs(variants) do
    local vals = {}
    for _, kv in ipairs(v.info.values or {}) do
      local x = kv[2]
      vals[#vals + 1] = ("%s = %s"):format(kv[1], type(x) == "number" and schema.fmtnum(x)
        or require("moonspeed.recipe").lua_value(x))
    end
    out[#out + 1] = ("  %2d  %-" .. width .. "s  %s"):format(v.index, v.label or "", table.concat(vals, ", "))
  end
  return out
end

-- Runs every variant with run_one(r, info, run_dir) -> status, dir; then the comparison.
function M.run_all(path, variants, opts, run_one, lead)
  local done, failed = {}, {}
  local total = #variants
  for k, v in ipairs(variants) do
    if lead then say(("== variant %d (%d of %d): %s"):format(v.index, k, total, v.info.name)) end
    local run_dir = opts["run-dir"] and (opts["run-dir"] .. "/" .. v.label) or nil
    local ok, status, dir = pcall(run_one, v.r, v.info, run_dir)
    if ok and status == 0 then
      done[#done + 1] = dir
    else
      local why = ok and ("exit status " .. tostring(status))
        or tostring(status):gsub("^[^:\n]*moonspeed/[%w_]+%.lua:%d+: ", "")
      failed[#failed + 1] = ("variant %d (%s): %s"):format(v.index, v.label, why)
      io.stderr:write(("moonspeed: %s\n"):format(failed[#failed]))
      if ok and status and status > 128 then break end   -- stopped by a signal: the rest waits
    end
  end
  if lead and #done > 0 then
    say(("== %s: %d of %d variants finished"):format(path, #done, total))
    local compare = require "moonspeed.compare"
    local sums = {}
    for i, d in ipairs(done) do sums[i] = compare.summary(d) end
    for _, l in ipairs(compare.table(sums)) do say(l) end
  end
  if #failed > 0 then
    error(("%d of %d variants failed: %s"):format(#failed, total, table.concat(failed, "; ")), 0)
  end
  return 0
end

---------------------------------------------------------------------------
-- from-deepspeed
---------------------------------------------------------------------------

M.from_deepspeed = {
  summary = "a DeepSpeed JSON config as a moonspeed recipe, saying what each key became",
  help = [[
usage: moonspeed from-deepspeed DS_CONFIG.json [--hf-config config.json] [--base RECIPE]
                                [--world N] [-o FILE] [section.key=value ...]

Prints a recipe equivalent to a DeepSpeed config: `return extend(BASE, {...})`
with the keys the config decides, headed by comments saying what every DeepSpeed
key became (with the value it resolved to). Keys with no effect in moonspeed and
keys moonspeed does not know are listed in warnings (on standard error too);
contradictions (batch sizes against DeepSpeed's rule, offload without the stage
it needs, both fp16 and bf16 ...) and impossible values are errors naming the
JSON key.

"auto" values resolve as the Hugging Face integration resolves them, with the
base recipe (and the overrides) as the training arguments and the model config
for the model-derived sizes. A recipe may also read the config directly:
  return extend("default.lua", deepspeed("ds_config.json"))

options:
  --hf-config FILE  a Hugging Face config.json: the model section, and hidden_size
                    for the "auto" bucket sizes
  --base RECIPE     the recipe the result extends (default recipes/default.lua);
                    its keys are the training arguments "auto" takes
  --world N         the world size of DeepSpeed's batch rule (default: the launched
                    world, else the base recipe's cluster, else 1)
  -o, --output FILE write the recipe here instead of standard output
]],
  spec = { flags = { ["--hf-config"] = "string", ["--base"] = "string", ["--world"] = "int",
                     ["--output"] = "string" }, short = { ["-o"] = "--output" }, max_positional = 1, overrides = true },
}

-- The recipe text; also returns the translation and the resolved recipe.
function M.translate_file(path, opts, overrides, default_base)
  local ds = require "moonspeed.deepspeed"
  local recipe = require "moonspeed.recipe"
  local schema = require "moonspeed.schema"
  local base = opts.base or default_base
  local rb, binfo = recipe.load(base, overrides)
  local model, hf_entries, hf_warn = nil, {}, {}
  if opts["hf-config"] then
    local jc = require "moonspeed.jsonconf"
    model, hf_entries, hf_warn = jc.model_from_hf(jc.read_file(opts["hf-config"]), opts["hf-config"])
  end
  if opts.world and opts.world < 1 then error("--world must be at least 1", 0) end
  local world = opts.world or ds.world_of(rb)
  local tr = ds.load(path, { world = world, hidden = model and model.dim })
  local t = recipe.merge(rb, model and { model = model } or {})
  local origin = {}
  for k, v in pairs(binfo.origin) do origin[k] = v end
  for k, v in pairs(tr.origin) do origin[k] = v end
  local r = recipe.resolve(recipe.merge(t, tr.layer), origin, path)
  -- the keys the result sets: the model from config.json, the overrides, the translation's
  local keys, set = {}, {}
  local function add(p) if not set[p] then set[p] = true keys[#keys + 1] = p end end
  for k in pairs(model or {}) do add("model." .. k) end
  for p, o in pairs(binfo.origin) do if o:match("^override ") then add(p) end end
  for k, v in pairs(tr.layer) do
    if type(v) == "table" then for kk in pairs(v) do add(k .. "." .. kk) end else add(k) end
  end
  local lines = { ("-- %s, translated by moonspeed from-deepspeed%s for a world of %d rank%s."):format(path,
    opts["hf-config"] and (" (model from " .. opts["hf-config"] .. ")") or "", world, world == 1 and "" or "s"),
    "-- What each key became (auto: from the base recipe, as Hugging Face takes the training arguments):" }
  local entries = {}
  for _, e in ipairs(hf_entries) do entries[#entries + 1] = e end
  for _, e in ipairs(tr.entries) do entries[#entries + 1] = e end
  for _, l in ipairs(ds.report(entries, r)) do lines[#lines + 1] = "--   " .. l end
  local warnings = {}
  for _, w in ipairs(hf_warn) do warnings[#warnings + 1] = w end
  for _, w in ipairs(tr.warnings) do warnings[#warnings + 1] = w end
  for _, w in ipairs(warnings) do
    for l in (w .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = "-- warning: " .. l:gsub("^  ", "  ") end
  end
  -- the table, section by section in schema order
  local shown_base = base:match("recipes/(.+)$") or base   -- extend() looks in the recipes folder too
  lines[#lines + 1] = ("return extend(%q, {"):format(shown_base)
  for _, s in ipairs(schema.sections) do
    local inner = {}
    for _, f in ipairs(s.fields) do
      if set[f.path] then
        local v = f.section and r[f.section][f.key] or r[f.key]
        inner[#inner + 1] = ("%s = %s,"):format(f.key, recipe.lua_value(v))
      end
    end
    if #inner > 0 then
      if s.name then
        lines[#lines + 1] = ("  %s = {"):format(s.name)
        for _, l in ipairs(inner) do lines[#lines + 1] = "    " .. l end
        lines[#lines + 1] = "  },"
      else
        for _, l in ipairs(inner) do lines[#lines + 1] = "  " .. l end
      end
    end
  end
  lines[#lines + 1] = "})"
  return table.concat(lines, "\n") .. "\n", warnings, r
end

function M.run_from_deepspeed(opts, pos, overrides, usage, default_base)
  if not pos[1] then usage("missing DS_CONFIG.json (a DeepSpeed config)") end
  local text, warnings = M.translate_file(pos[1], opts, overrides, default_base)
  for _, w in ipairs(warnings) do io.stderr:write("warning: ", w, "\n") end
  require("moonspeed.sys").output(opts.output, text)
  return 0
end

return M
