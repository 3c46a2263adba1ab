-- lua/moonspeed/compare.lua — `moonspeed compare`: runs side by side.
--
--   moonspeed compare RUN_DIR... [--plot FILE] [--json]
--
-- One row per run directory, from its metrics.jsonl (and recipe.lua for what
-- differs between the runs): steps done, final training loss, the last
-- held-out loss, tokens/s (the median over the steps after the first, which
-- carries the warm-up), and peak memory (the largest memory_bytes, the bytes
-- the engine reserved). Keys whose resolved values differ between the runs'
-- recipes are listed as the runs' differences. --plot draws every run's loss
-- and tokens/s curves in one SVG.

local metrics = require "moonspeed.metrics"
local fmt = require "moonspeed.fmt"

local M = {}

local function median(xs)
  if #xs == 0 then return nil end
  table.sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) / 2] end
  return (xs[n / 2] + xs[n / 2 + 1]) / 2
end

-- The figures of one run directory; raises when it has no metrics.
function M.summary(dir)
  dir = dir:gsub("/+$", "")
  local recs, err = metrics.read(dir .. "/metrics.jsonl")
  if not recs then error(("%s: cannot read metrics.jsonl: %s (is it a run directory of moonspeed run?)"):format(dir,
    tostring(err)), 0) end
  if #recs == 0 then error(("%s/metrics.jsonl has no steps yet"):format(dir), 0) end
  local s = { dir = dir, name = dir:match("([^/]+)$"), recs = recs, steps = 0, peak = 0 }
  local speeds = {}
  for i, r in ipairs(recs) do
    if type(r.step) == "number" then s.steps = math.max(s.steps, r.step) end
    if type(r.loss) == "number" then s.loss = r.loss end
    if type(r.val_loss) == "number" then s.val_loss = r.val_loss end
    if type(r.memory_bytes) == "number" then s.peak = math.max(s.peak, r.memory_bytes) end
    if type(r.tokens_per_s) == "number" and (i > 1 or #recs == 1) then speeds[#speeds + 1] = r.tokens_per_s end
  end
  s.tokens_per_s = median(speeds)
  local ok, r = pcall(require("moonspeed.recipe").load, dir .. "/recipe.lua")
  s.recipe = ok and r or nil
  return s
end

-- Recipe keys whose values differ between the summaries' recipes, in schema order.
function M.differences(sums)
  local schema = require "moonspeed.schema"
  local out = {}
  for _, f in ipairs(schema.fields) do
    local first, differ
    for i, s in ipairs(sums) do
      local r = s.recipe
      if r then
        local v = f.section and r[f.section][f.key] or r[f.key]
        v = type(v) == "table" and require("moonspeed.json").encode(v) or v
        if i == 1 then first = v elseif v ~= first then differ = true end
      end
    end
    if differ and f.path ~= "log.dir" then out[#out + 1] = f end
  end
  return out
end

local function value_of(r, f)
  if not r then return "?" end
  local v = f.section and r[f.section][f.key] or r[f.key]
  if type(v) == "number" then return require("moonspeed.schema").fmtnum(v) end
  if type(v) == "table" then return require("moonspeed.json").encode(v) end
  return tostring(v)
end

-- The table as text lines.
function M.table(sums)
  local diffs = M.differences(sums)
  local head = { "run", "steps", "loss", "val_loss", "tokens/s", "peak memory" }
  for _, f in ipairs(diffs) do head[#head + 1] = f.path end
  local rows = { head }
  for _, s in ipairs(sums) do
    local row = { s.name, tostring(s.steps), s.loss and ("%.4f"):format(s.loss) or "-",
                  s.val_loss and ("%.4f"):format(s.val_loss) or "-",
                  s.tokens_per_s and ("%.0f"):format(s.tokens_per_s) or "-", fmt.bytes(s.peak) }
    for _, f in ipairs(diffs) do row[#row + 1] = value_of(s.recipe, f) end
    rows[#rows + 1] = row
  end
  local lines = {}
  for l in (fmt.columns(rows, { [2] = true, [3] = true, [4] = true, [5] = true, [6] = true }) .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = l
  end
  return lines
end

M.command = {
  summary = "a table of runs side by side (final loss, tokens/s, peak memory), and their curves together",
  help = [[
usage: moonspeed compare RUN_DIR... [--plot FILE] [--json]

One row per run directory: steps done, the final training loss, the last held-out
loss, tokens/s (the median over the steps after the first), peak memory (the most
bytes the engine reserved), then every recipe key whose value differs between the
runs. `moonspeed run EXPERIMENT` prints the same table after its variants.

options:
  --plot FILE   also draw every run's loss and tokens/s curves in one SVG
  --json        one JSON object per run instead of the table
]],
  spec = { flags = { ["--plot"] = "string", ["--json"] = "bool" }, max_positional = 1000 },
}

function M.run(opts, pos, usage, say)
  if #pos == 0 then usage("missing RUN_DIR (one or more directories written by moonspeed run)") end
  local sums = {}
  for i, dir in ipairs(pos) do sums[i] = M.summary(dir) end
  if opts.json then
    local json = require "moonspeed.json"
    for _, s in ipairs(sums) do
      say(json.encode({ run = s.dir, steps = s.steps, loss = s.loss, val_loss = s.val_loss,
        tokens_per_s = s.tokens_per_s, peak_memory_bytes = s.peak },
        { "run", "steps", "loss", "val_loss", "tokens_per_s", "peak_memory_bytes" }))
    end
  else
    for _, l in ipairs(M.table(sums)) do say(l) end
  end
  if opts.plot then
    local runs = {}
    for i, s in ipairs(sums) do runs[i] = { name = s.name, recs = s.recs } end
    local ok, err = require("moonspeed.sys").write_file(opts.plot, require("moonspeed.plot").compare_svg(runs, "compare"))
    if not ok then error(("cannot write %s: %s"):format(opts.plot, tostring(err)), 0) end
    if not opts.json then say(("wrote %s (%d runs)"):format(opts.plot, #runs)) end
  end
  return 0
end

return M
