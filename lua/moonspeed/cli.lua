-- lua/moonspeed/cli.lua — the `moonspeed` command line.
--
--   moonspeed run [RECIPE|EXPERIMENT] [overrides] [--run-dir DIR] [--list] [--only N]   (experiment.lua)
--   moonspeed plan [RECIPE] [overrides]
--   moonspeed sample RUN_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]
--   moonspeed export RUN_DIR --hf DIR [--dtype bf16|fp32] [--max-shard-size 5GB]   (hf.lua)
--   moonspeed logits MODEL --tokens ID,... [overrides] [--save-weights FILE]       (hf.lua)
--   moonspeed repl [RECIPE] [overrides]
--   moonspeed plot RUN_DIR [-o FILE]
--   moonspeed checkpoint DIR
--   moonspeed keys [--markdown]
--   moonspeed check [RECIPE] [overrides]
--   moonspeed prepare-bytes TEXT --out DIR [--val-every N]
--   moonspeed encode | decode | tokenize ...   (tokenize.lua)
--   moonspeed version
--   moonspeed launch --nproc-per-node N [--nnodes M --node-rank R --master HOST:PORT] RECIPE [overrides]
--   moonspeed bench comm [--provider P] [--world N]
--   moonspeed k8s RECIPE [overrides] [-o FILE]            (k8s.lua)
--   moonspeed doctor [RECIPE] [overrides] [--json]         (doctor.lua)
--   moonspeed attach [RUN_DIR] [--rank N] [--json]          (attach.lua, control.lua)
--   moonspeed from-deepspeed DS_CONFIG.json [--hf-config F] [--base RECIPE] [--world N] [-o FILE]
--                                                         (experiment.lua, deepspeed.lua)
--   moonspeed compare RUN_DIR... [--plot FILE] [--json]    (compare.lua)
--
-- main(arg) returns the exit status: 0 ok, 1 failure (a bad recipe, an engine
-- error), 2 bad usage. Errors are one message on stderr; MOONSPEED_DEBUG=1
-- adds a Lua traceback. The training loop lives in train.lua; the REPL drives
-- the very same engine calls one step at a time.

local M = {}

local PROG = "moonspeed"

---------------------------------------------------------------------------
-- Errors and argument parsing
---------------------------------------------------------------------------

local Usage = {}
Usage.__index = Usage
Usage.__tostring = function(u) return u.msg end

local function usage(msg) error(setmetatable({ msg = msg }, Usage), 0) end

local function closest(word, list)
  local distance = require("moonspeed.layer").distance
  local best, best_d
  for _, w in ipairs(list) do
    local d = distance(word, w)
    if not best_d or d < best_d then best, best_d = w, d end
  end
  if best_d and best_d <= math.max(2, math.floor(#word / 3)) then return best end
end

-- Parses args by spec = { flags = { ["--out"] = "string" | "int" | "number" | "bool" },
-- short = { ["-o"] = "--out" }, max_positional = n, overrides = bool }.
local function parse(args, spec)
  local opts, pos, overrides = {}, {}, {}
  local i = 1
  local names = {}
  for k in pairs(spec.flags or {}) do names[#names + 1] = k end
  table.sort(names)
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do pos[#pos + 1] = args[j] end
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, value = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      name = (spec.short or {})[name] or name
      local kind = (spec.flags or {})[name]
      if not kind then
        local s = closest(name, names)
        usage(("unknown option %s%s"):format(name, s and ("; did you mean " .. s .. "?") or ""))
      end
      if kind == "bool" then
        opts[name:sub(3)] = true
      else
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then usage(("option %s needs a value"):format(name)) end
        end
        if kind == "int" or kind == "number" then
          local x = tonumber(value)
          if not x or (kind == "int" and x ~= math.floor(x)) then
            usage(("option %s needs %s, got %q"):format(name, kind == "int" and "an integer" or "a number", value))
          end
          value = x
        end
        opts[name:sub(3)] = value
      end
    elseif spec.overrides and a:find("=", 1, true) and not a:match("^[^=]*/") then
      overrides[#overrides + 1] = a
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  if #pos > (spec.max_positional or 0) then
    usage(("unexpected argument %q"):format(pos[(spec.max_positional or 0) + 1]))
  end
  return opts, pos, overrides
end

-- recipes/default.lua of the Lua root (spelled relative when that is the working directory).
local function default_recipe()
  local root = rawget(_G, "MOONSPEED_ROOT")
  if not root or root == os.getenv("PWD") then return "recipes/default.lua" end
  return root .. "/recipes/default.lua"
end

local function say(...) io.stdout:write(...) io.stdout:write("\n") io.stdout:flush() end

---------------------------------------------------------------------------
-- Commands
---------------------------------------------------------------------------

local commands, order = {}, {}
local function command(name, c)
  c.name = name
  commands[name] = c
  order[#order + 1] = name
end

-- Warnings of a loaded recipe (DeepSpeed keys with no effect ...), on the lead rank only.
local function show_warnings(info)
  local rank = os.getenv("MS_RANK")
  if rank and rank ~= "" and rank ~= "0" then return end
  for _, w in ipairs(info.warnings or {}) do io.stderr:write("warning: ", w, "\n") end
end

-- The engine's own check of a resolved recipe; shows its warnings.
local function check_recipe(path, r, info)
  local engine = require "moonspeed.engine"
  local problem = engine.config_problem(r)
  if problem then error(("%s: the engine rejects this recipe: %s"):format(path, problem), 0) end
  show_warnings(info)
  return r, info
end

-- Loads and checks a recipe: schema, cross-key rules, then the engine's own check.
local function load_recipe(path, overrides)
  local recipe = require "moonspeed.recipe"
  local sys = require "moonspeed.sys"
  if not sys.exists(path) then
    error(("recipe %s does not exist"):format(path), 0)
  end
  local r, info = recipe.load(path, overrides)
  return check_recipe(path, r, info)
end

local function check_data(r, info)
  local sys = require "moonspeed.sys"
  for _, k in ipairs({ "train", "val" }) do
    local p = r.data[k]
    if not p:find("[%*%?%[]") and not sys.exists(p) then -- a pattern's matches are the engine's to check
      error(("%s: data.%s = %q does not exist; run `make data`, or point data.%s at a token shard")
        :format(info.origin["data." .. k] or info.file, k, p, k), 0)
    end
  end
end

-- The run directory: --run-dir (which may hold the run being resumed), or a
-- new one under log.dir.
local function new_run_dir(r, info, wanted)
  local sys = require "moonspeed.sys"
  if wanted then
    if sys.exists(wanted .. "/metrics.jsonl") then
      local checkpoint = require "moonspeed.checkpoint"
      if r.checkpoint.resume == "none" or #checkpoint.list(checkpoint.root(r, wanted)) == 0 then
        error(("run directory %s already holds a run (metrics.jsonl) and no checkpoint to resume from; choose another --run-dir")
          :format(wanted), 0)
      end
      return wanted -- resumed below; metrics go on in the same file
    end
    local ok, err = sys.mkdir_p(wanted)
    if not ok then error(err, 0) end
    return wanted
  end
  local ok, err = sys.mkdir_p(r.log.dir)
  if not ok then error(err, 0) end
  local base = ("%s/%s-%s"):format(r.log.dir, info.name, os.date("%Y%m%d-%H%M%S"))
  local dir = base
  for n = 2, 1000 do
    local made, merr, existed = sys.mkdir_new(dir)
    if made then return dir end
    if not existed then error(merr, 0) end
    dir = ("%s-%d"):format(base, n)
  end
  error("cannot find a free run directory name under " .. r.log.dir, 0)
end

command("run", {
  summary = "train a recipe: progress, metrics, weights and a sample in a run directory",
  help = [[
usage: moonspeed run [RECIPE|EXPERIMENT] [section.key=value ...] [--run-dir DIR]
                     [--list] [--only N]

Trains RECIPE (default: recipes/default.lua) for train.steps steps, evaluating the
held-out loss every train.eval_every steps and after the last. Overrides set recipe
keys with the same checks as the file (e.g. train.steps=100 lr=3e-4).

Before anything is allocated the memory plan is checked against this machine; a plan
that does not fit is refused with the numbers. Nothing is written for a bad recipe.

The run directory (runs/<recipe>-<YYYYmmdd-HHMMSS>/ unless --run-dir) holds:
  recipe.lua      the resolved recipe (every key; loadable as a recipe)
  metrics.jsonl   one JSON object per step (step, loss, val_loss, lr, grad_norm,
                  tokens_per_s, gflops, mfu, memory_bytes, seconds, elapsed)
  model.bin       the final weights (moonspeed sample RUN_DIR uses them)
  sample.txt      a sample from the final model

Checkpoints (checkpoint.every, or asked for) go to checkpoint.dir, by default
<run dir>/checkpoints; with checkpoint.resume = "auto" (the default) a run whose
--run-dir or checkpoint.dir holds checkpoints resumes from the newest valid one.

An EXPERIMENT is a recipe file returning sweep(base, variants): its variants run one
after the other, each in its own run directory (<experiment>-<variant>-<time>, or
DIR/<variant> with --run-dir DIR), then a table compares them (moonspeed compare).
A failed variant does not stop the others; the exit status is then 1.

options:
  --run-dir DIR   write the run here instead (must not hold a run already,
                  unless it is resumed from its checkpoints); for an
                  experiment, the folder of its variants' run directories
  --stop-at STEP  stop after STEP (a checkpoint is saved), to resume later
  --list          list an experiment's variants (number, name, values) and stop
  --only N        run variant N of an experiment alone
]],
  spec = { flags = { ["--run-dir"] = "string", ["--stop-at"] = "int", ["--list"] = "bool", ["--only"] = "int" },
           max_positional = 1, overrides = true },
  run = function(opts, pos, overrides)
    local path = pos[1] or default_recipe()
    if not require("moonspeed.sys").exists(path) then error(("recipe %s does not exist"):format(path), 0) end
    local experiment = require "moonspeed.experiment"
    local variants, is_exp, n = require("moonspeed.recipe").load_experiment(path, overrides, opts.only)
    if opts.list then
      if not is_exp then say(("%s is a recipe, not an experiment: one variant"):format(path)) return 0 end
      for _, l in ipairs(experiment.list_lines(path, variants, n)) do say(l) end
      return 0
    end
    local function one(r, info, run_dir)
      local o = {}
      for k, v in pairs(opts) do o[k] = v end
      o["run-dir"] = run_dir
      return M.run_one(path, r, info, o, overrides)
    end
    if not is_exp then return (one(variants[1].r, variants[1].info, opts["run-dir"])) end
    local rank = os.getenv("MS_RANK")
    return experiment.run_all(path, variants, opts, one, not rank or rank == "" or rank == "0")
  end,
})

-- Trains one resolved recipe; returns the exit status and the run directory.
function M.run_one(path, r, info, opts, overrides)
    local engine_mod = require "moonspeed.engine"
    local plan = require "moonspeed.plan"
    local sys = require "moonspeed.sys"
    local fmt = require "moonspeed.fmt"
    local recipe = require "moonspeed.recipe"
    check_recipe(path, r, info)
    local auto_notes = plan.resolve_auto(r)
    local p = plan.compute(r)
    p.auto_notes = auto_notes
    local got, machine = pcall(plan.machine, p)
    if not got then error(("%s: %s; nothing was started"):format(path, tostring(machine)), 0) end
    local fits, need, have = plan.fits(p, machine)
    if not fits then
      io.stderr:write(plan.format(p, path, machine), "\n")
      error(("the plan for %s does not fit this machine: it needs %s, %s is available (%s); nothing was started")
        :format(path, fmt.bytes(need), fmt.bytes(have), machine.source), 0)
    end
    check_data(r, info)
    local e = engine_mod.new(r, nil, { info = info })
    local status, ctl, run_dir = 0, nil, nil
    local ok, err = pcall(function()
      -- with several ranks every rank makes the same (collective) engine calls;
      -- rank 0 alone writes the run directory and talks
      local lead = e:rank() == 0
      local quiet = function() end
      local say = lead and say or quiet
      local dir = lead and new_run_dir(r, info, opts["run-dir"]) or opts["run-dir"]
      run_dir = dir
      if not dir and r.checkpoint.dir == "" and r.checkpoint.every > 0 then
        error("with several ranks and checkpoint.every > 0 every rank must know where checkpoints go: "
          .. "give --run-dir (moonspeed launch does on one node) or set checkpoint.dir", 0)
      end
      dir = dir or "(rank 0's)"
      local header = ("resolved recipe of the run in %s\nfrom %s%s"):format(dir, path,
        #overrides > 0 and (" with " .. table.concat(overrides, " ")) or "")
      local recipe_text = recipe.serialize(r, header)
      local warn = function(msg) io.stderr:write("warning: ", msg, "\n") end
      if lead then
        assert(sys.write_file(dir .. "/recipe.lua", recipe_text))
        local free, weights = sys.fs_free(dir), 4 * p.n_params
        if free and free < weights then
          warn(("the run writes model.bin (%s: the fp32 weights) into %s at its end, and that file system has %s free; "
            .. "make room before then, or give --run-dir on a larger one"):format(fmt.bytes(weights), dir, fmt.bytes(free)))
        end
      end
      local ckpt = require("moonspeed.checkpoint").policy(r, e, dir, { say = say, recipe_text = recipe_text, warn = warn })
      local resumed = ckpt:resume()
      -- between steps: a signal (every rank stops after the same step), `moonspeed attach`
      -- (every rank that knows the run directory), --stop-at, then the checkpoints
      engine_mod.watch_signals()
      local controls = { function(t)
        local sig = engine_mod.signal_pending()
        if e:world_size() > 1 then sig = e:agree_max(sig) end
        if sig ~= 0 then t.signal = sig; t:request("stop") end
      end }
      ctl = require("moonspeed.control").new({ dir = (lead or opts["run-dir"]) and dir or nil, rank = e:rank(),
                                               world = e:world_size(), say = say })
      controls[#controls + 1] = ctl
      if opts["stop-at"] then
        local stop_at = opts["stop-at"]
        controls[#controls + 1] = function(t) if t.step >= stop_at then t:request("stop") end end
      end
      controls[#controls + 1] = ckpt:control() -- last: it serves what the others asked for
      local t = require("moonspeed.train").new(r, info, e, dir, { say = say, resumed_at = resumed, controls = controls })
      local threads, world = e:threads(), e:world_size()
      say(("run %s: %s, %s parameters, %s on %s (%d thread%s%s); %d steps of %d x %d tokens -> %s"):format(
        info.name, r.model.name, fmt.count(p.n_params), r.precision, r.device, threads, threads == 1 and "" or "s",
        world > 1 and (", %d ranks, ZeRO stage %d"):format(world, r.zero.stage) or "", r.train.steps,
        r.train.batch, r.train.seq_len, dir))
      for _, note in ipairs(auto_notes) do say(note) end
      if r.device == "cuda" then -- what to hold nvidia-smi and the process's RSS against
        say(("memory plan: %s on the GPU, %s of pinned host memory"):format(fmt.bytes(p.device_bytes.total),
          fmt.bytes(p.host_bytes.total)))
      end
      local finished = t:run()
      ckpt:close()
      if not finished and t.signal then -- preempted: out within the grace period, the checkpoint resumes it
        say(("stopped by %s after step %d of %d; the checkpoint in %s resumes it"):format(
          require("moonspeed.launch").signame(t.signal), t.step, r.train.steps, ckpt.root))
        status = 128 + t.signal
        return
      end
      if not finished then -- asked for (--stop-at, attach): the weights and sample too, as at the end
        say(("stopped after step %d of %d, as asked; the checkpoint in %s resumes it"):format(t.step, r.train.steps, ckpt.root))
      end
      e:save(dir .. "/model.bin")
      say(t:summary())
      if r.log.sample_tokens > 0 then
        local text = e:generate(r.log.sample_prompt, { tokens = r.log.sample_tokens,
          temperature = r.log.sample_temperature, top_k = r.log.sample_top_k, seed = r.train.seed })
        local sample = r.log.sample_prompt .. text
        if lead then assert(sys.write_file(dir .. "/sample.txt", sample .. "\n")) end
        say("sample:")
        say(sample)
      end
      say("run directory: " .. dir)
    end)
    if ctl then ctl:close() end
    e:free()
    if not ok then error(err, 0) end
    return status, run_dir
end

command("plan", {
  summary = "the memory plan of a recipe, and whether it fits this machine",
  help = [[
usage: moonspeed plan [RECIPE] [section.key=value ...] [--world N]

Prints the bytes the engine would reserve for RECIPE (default: recipes/default.lua),
by purpose (parameters, gradients, master weights, optimizer state, activations,
workspace, data, the backend's own scratch) on the device and on the host beside it,
and whether that fits this machine (MemAvailable in /proc/meminfo). Allocates nothing. `moonspeed run` refuses
a plan that does not fit. Exit status 0 either way; 1 for a bad recipe.

options:
  --world N       plan one rank of N (zero.stage decides what each rank keeps);
                  default: the cluster's ranks when cluster.instance is named,
                  else the launched world, else 1
]],
  spec = { flags = { ["--world"] = "int" }, max_positional = 1, overrides = true },
  run = function(opts, pos, overrides)
    local plan = require "moonspeed.plan"
    local path = pos[1] or default_recipe()
    local r = load_recipe(path, overrides)
    if opts.world and opts.world < 1 then usage("option --world needs a rank count of at least 1") end
    local world = opts.world or plan.cluster_world(r)
    local notes = plan.resolve_auto(r, world, plan.cluster_budget(r))
    local p = plan.compute(r, world)
    p.auto_notes = notes
    say(plan.format(p, path))
    return 0
  end,
})

command("sample", {
  summary = "generate text from a finished run",
  help = [[
usage: moonspeed sample RUN_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S]

Rebuilds the model from RUN_DIR/recipe.lua, loads RUN_DIR/model.bin and prints the
prompt followed by up to N sampled tokens (bytes; stops at end-of-text).

options (defaults from the recipe's log section):
  --prompt TEXT       the text to continue (log.sample_prompt)
  --tokens N          tokens to generate (log.sample_tokens)
  --temperature T     0 = greedy (log.sample_temperature)
  --top-k K           sample among the K most likely; 0 = all (log.sample_top_k)
  --seed S            the sampling seed (1)
]],
  spec = { flags = { ["--prompt"] = "string", ["--tokens"] = "int", ["--temperature"] = "number",
                     ["--top-k"] = "int", ["--seed"] = "int" }, max_positional = 1 },
  run = function(opts, pos)
    local sys = require "moonspeed.sys"
    local dir = pos[1]
    if not dir then usage("missing RUN_DIR (a directory written by moonspeed run)") end
    dir = dir:gsub("/+$", "")
    for _, f in ipairs({ "recipe.lua", "model.bin" }) do
      if not sys.exists(dir .. "/" .. f) then
        error(("%s has no %s: is it a finished run directory of moonspeed run?"):format(dir, f), 0)
      end
    end
    local recipe = require "moonspeed.recipe"
    local engine = require "moonspeed.engine"
    local r, info = recipe.load(dir .. "/recipe.lua")
    r.init.from = "" -- the run's own weights replace whatever it started from
    if opts.tokens and opts.tokens < 0 then usage("--tokens must be >= 0") end
    if opts.temperature and opts.temperature < 0 then usage("--temperature must be >= 0") end
    if opts["top-k"] and opts["top-k"] < 0 then usage("--top-k must be >= 0") end
    if opts.seed and opts.seed < 0 then usage("--seed must be >= 0") end
    local e = engine.new(r, nil, { data = false, info = info })
    local ok, err = pcall(function()
      e:load(dir .. "/model.bin")
      local prompt = opts.prompt or r.log.sample_prompt
      local text = e:generate(prompt, { tokens = opts.tokens or r.log.sample_tokens,
        temperature = opts.temperature, top_k = opts["top-k"], seed = opts.seed or 1 })
      say(prompt .. text)
    end)
    e:free()
    if not ok then error(err, 0) end
    return 0
  end,
})

command("repl", {
  summary = "an interactive LuaJIT prompt with the engine loaded",
  help = [[
usage: moonspeed repl [RECIPE] [section.key=value ...]

A LuaJIT prompt with the engine for RECIPE (default: recipes/default.lua) already
created. Preloaded: e (the engine), recipe (the resolved recipe), moonspeed (the module).
  e:step()                       one optimizer step (the same call `run` makes)
  e:eval()                       held-out loss
  e:memory(), e:plan()           bytes reserved and used; the plan
  e:units(), e:tensor(u, i)      units; a tensor (shape, dtype, values)
  e:param("block.0.attn.wq")     a tensor by name
  e:generate("In the beginning", {tokens = 200})
Expressions print without `return`; incomplete input continues on the next line.
Line editing and history (~/.moonspeed_history) on a terminal. Ctrl-D or exit() leaves.
]],
  spec = { flags = {}, max_positional = 1, overrides = true },
  run = function(_, pos, overrides)
    local path = pos[1] or default_recipe()
    local r, info = load_recipe(path, overrides)
    return require("moonspeed.repl").start(r, info)
  end,
})

command("checkpoint", {
  summary = "list the checkpoints in a folder and check every file against its checksum",
  help = [[
usage: moonspeed checkpoint DIR

DIR is a checkpoint folder (checkpoint.dir, or RUN_DIR/checkpoints; a run
directory works too). Prints every checkpoint, newest first: its step, world
size, ZeRO stage, size, and "ok" or what is wrong (a missing meta.json, a
truncated or modified file, by name), plus saves in progress or interrupted.
Exit status 0 when every checkpoint is intact, 1 otherwise.
]],
  spec = { max_positional = 1 },
  run = function(_, pos)
    if not pos[1] then usage("missing DIR: the checkpoint folder (or run directory) to check") end
    local checkpoint = require "moonspeed.checkpoint"
    local sys = require "moonspeed.sys"
    local fmt = require "moonspeed.fmt"
    local root = pos[1]
    if not sys.is_dir(root) then error(("%s is not a directory"):format(root), 0) end
    if sys.is_dir(root .. "/checkpoints") and #checkpoint.list(root) == 0 then root = root .. "/checkpoints" end
    local latest = (sys.read_file(root .. "/latest") or ""):match("^(%S+)")
    say(("checkpoints in %s (latest: %s)"):format(root, latest or "none"))
    local bad = 0
    for _, c in ipairs(checkpoint.list(root)) do
      local fine, meta = checkpoint.verify(c.path)
      if fine then
        local bytes = 0
        for _, f in ipairs(meta.files) do bytes = bytes + f.bytes end
        say(("  %s  step %d  %d rank%s  stage %d  %s  ok"):format(c.name, meta.step, meta.world_size,
          meta.world_size == 1 and "" or "s", meta.zero_stage, fmt.bytes(bytes)))
      else
        bad = bad + 1
        say(("  %s  damaged: %s"):format(c.name, meta))
      end
    end
    for _, n in ipairs(sys.list_dir(root)) do
      if n:match("^%.tmp%-step%-%d+$") then say(("  %s  incomplete: a save in progress, or one a crash interrupted"):format(n)) end
      if n:match("^%.trash%-step%-%d+$") then say(("  %s  being removed (older than the checkpoints kept)"):format(n)) end
    end
    return bad == 0 and 0 or 1
  end,
})

command("plot", {
  summary = "loss and throughput curves of a run, as SVG",
  help = [[
usage: moonspeed plot RUN_DIR [-o FILE]

Draws the training and held-out loss and tokens/s from RUN_DIR/metrics.jsonl into an
SVG (default RUN_DIR/plot.svg) with axes, labels and a legend. Works while the run
is still going.

options:
  -o, --output FILE   where to write the SVG
]],
  spec = { flags = { ["--output"] = "string" }, short = { ["-o"] = "--output" }, max_positional = 1 },
  run = function(opts, pos)
    local metrics = require "moonspeed.metrics"
    local plot = require "moonspeed.plot"
    local sys = require "moonspeed.sys"
    local dir = pos[1]
    if not dir then usage("missing RUN_DIR (a directory written by moonspeed run)") end
    dir = dir:gsub("/+$", "")
    local recs, err = metrics.read(dir .. "/metrics.jsonl")
    if not recs then error(("cannot read %s/metrics.jsonl: %s"):format(dir, tostring(err)), 0) end
    if #recs == 0 then error(("%s/metrics.jsonl has no steps yet"):format(dir), 0) end
    local out = opts.output or (dir .. "/plot.svg")
    local ok, werr = sys.write_file(out, plot.svg(recs, dir:match("([^/]+)$")))
    if not ok then error(("cannot write %s: %s"):format(out, tostring(werr)), 0) end
    say(("wrote %s (%d steps)"):format(out, #recs))
    return 0
  end,
})

command("keys", {
  summary = "every recipe key: type, default, allowed values, meaning",
  help = [[
usage: moonspeed keys [--markdown]

Prints the reference of every recipe key, generated from the schema.
  --markdown   as a Markdown table
]],
  spec = { flags = { ["--markdown"] = "bool" }, max_positional = 0 },
  run = function(opts)
    io.stdout:write(require("moonspeed.schema").reference(opts.markdown))
    return 0
  end,
})

command("prepare-bytes", {
  summary = "turn a text file into byte-level train/val token shards",
  help = [[
usage: moonspeed prepare-bytes TEXT --out DIR [--val-every N]

Writes DIR/train.bin and DIR/val.bin: the bytes of TEXT as tokens (BOS 256 first),
every N-th chunk (default 20) held out for validation. Prints the token counts.
]],
  spec = { flags = { ["--out"] = "string", ["--val-every"] = "int" }, max_positional = 1 },
  run = function(opts, pos)
    local sys = require "moonspeed.sys"
    local text = pos[1]
    if not text then usage("missing TEXT (a text file)") end
    if not opts.out then usage("missing --out DIR") end
    local every = opts["val-every"] or 20
    if every < 2 then usage("--val-every must be >= 2") end
    if not sys.exists(text) then error(("%s does not exist"):format(text), 0) end
    local ok, err = sys.mkdir_p(opts.out)
    if not ok then error(err, 0) end
    local engine = require "moonspeed.engine"
    local ti, vi = engine.prepare_bytes(text, opts.out .. "/train.bin", opts.out .. "/val.bin", every)
    say(("train: %d tokens -> %s/train.bin"):format(ti.n_tokens, opts.out))
    say(("val:   %d tokens -> %s/val.bin"):format(vi.n_tokens, opts.out))
    return 0
  end,
})

-- export, logits: Hugging Face interop lives in hf.lua.
for _, c in ipairs(require("moonspeed.hf").commands(usage, say)) do command(c.name, c) end

-- encode, decode, tokenize: the tokenizer commands live in tokenize.lua.
for _, c in ipairs(require("moonspeed.tokenize").commands(usage, say)) do command(c.name, c) end

command("check", {
  summary = "validate a recipe and print it resolved (every key)",
  help = [[
usage: moonspeed check [RECIPE] [section.key=value ...]

Loads RECIPE (default: recipes/default.lua) with the overrides, validates it exactly
as `run` does, and prints the resolved recipe: every key, defaults filled in.
]],
  spec = { flags = {}, max_positional = 1, overrides = true },
  run = function(_, pos, overrides)
    local path = pos[1] or default_recipe()
    local r, info = load_recipe(path, overrides)
    for _, tr in ipairs(info.deepspeed or {}) do   -- what each DeepSpeed key became
      say(("-- %s (DeepSpeed):"):format(tr.file))
      for _, l in ipairs(require("moonspeed.deepspeed").report(tr.entries, r)) do say("--   " .. l) end
    end
    io.stdout:write(require("moonspeed.recipe").serialize(r, "resolved from " .. path ..
      (#overrides > 0 and (" with " .. table.concat(overrides, " ")) or "")))
    return 0
  end,
})

command("version", {
  summary = "the engine and LuaJIT versions",
  help = "usage: moonspeed version\n",
  spec = { flags = {}, max_positional = 0 },
  run = function()
    local engine = require "moonspeed.engine"
    say(("moonspeed %s (%s)"):format(engine.version(), jit and jit.version or _VERSION))
    return 0
  end,
})

-- Commands with a module of their own.
command("launch", require("moonspeed.launch").command)
command("bench", require("moonspeed.bench").command)

do
  local attach = require("moonspeed.attach").command
  command("attach", { summary = attach.summary, help = attach.help, spec = attach.spec,
    run = function(opts, pos) return require("moonspeed.attach").run(opts, pos, usage) end })
end

do
  local doctor = require("moonspeed.doctor").command
  command("doctor", { summary = doctor.summary, help = doctor.help, spec = doctor.spec,
    run = function(opts, pos, overrides)
      return require("moonspeed.doctor").run(opts, pos, overrides, load_recipe)
    end })
end

do
  local spec = require("moonspeed.k8s").command_spec
  command("k8s", { summary = spec.summary, help = spec.help, spec = spec.spec,
    run = function(opts, pos, overrides)
      return require("moonspeed.k8s").run(opts, pos, overrides, load_recipe, usage)
    end })
end

do
  local experiment = require "moonspeed.experiment"
  local fd = experiment.from_deepspeed
  command("from-deepspeed", { summary = fd.summary, help = fd.help, spec = fd.spec,
    run = function(opts, pos, overrides)
      return experiment.run_from_deepspeed(opts, pos, overrides, usage, default_recipe())
    end })
  local compare = require("moonspeed.compare")
  command("compare", { summary = compare.command.summary, help = compare.command.help, spec = compare.command.spec,
    run = function(opts, pos) return compare.run(opts, pos, usage, say) end })
end

local function overview()
  local lines = { "usage: moonspeed COMMAND [ARGS]", "", "commands:" }
  for _, name in ipairs(order) do
    local c = commands[name]
    if not c.hidden then lines[#lines + 1] = ("  %-14s %s"):format(name, c.summary) end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "moonspeed COMMAND --help tells more. Start with: moonspeed run"
  return table.concat(lines, "\n") .. "\n"
end

---------------------------------------------------------------------------

-- Strips "…/moonspeed/x.lua:12: " positions from messages meant for users.
local function clean(msg)
  return (msg:gsub("^[^:\n]*moonspeed/[%w_]+%.lua:%d+: ", ""))
end

function M.main(argv)
  argv = argv or {}
  local args = {}
  for i = 1, #argv do args[i] = argv[i] end
  local name = table.remove(args, 1)
  if name == nil or name == "--help" or name == "-h" or name == "help" then
    local topic = name == "help" and args[1]
    if topic and commands[topic] then
      io.stdout:write(commands[topic].help)
      return 0
    end
    local out = name == nil and io.stderr or io.stdout
    out:write(overview())
    return name == nil and 2 or 0
  end
  if name == "--version" then name = "version" end
  local c = commands[name]
  if not c then
    local s = closest(name, order)
    io.stderr:write(("%s: unknown command %q%s\n"):format(PROG, name, s and ("; did you mean %s?"):format(s) or ""))
    io.stderr:write(("run `%s --help` for the list of commands\n"):format(PROG))
    return 2
  end
  for _, a in ipairs(args) do
    if a == "--" then break end
    if a == "--help" or a == "-h" then
      io.stdout:write(c.help)
      return 0
    end
  end
  local debug_on = os.getenv("MOONSPEED_DEBUG")
  debug_on = debug_on and debug_on ~= "" and debug_on ~= "0"
  local ok, res = xpcall(function()
    if c.spec.raw then return c.run(args, usage, parse) end  -- parses its own arguments
    local opts, pos, overrides = parse(args, c.spec)
    return c.run(opts, pos, overrides)
  end, function(err)
    if getmetatable(err) == Usage then return err end
    if debug_on then return debug.traceback(tostring(err), 2) end
    return err
  end)
  io.stdout:flush()
  if ok then return res or 0 end
  if getmetatable(res) == Usage then
    io.stderr:write(("%s %s: %s\n"):format(PROG, name, res.msg))
    io.stderr:write(("run `%s %s --help` for usage\n"):format(PROG, name))
    return 2
  end
  io.stderr:write(("%s: %s\n"):format(PROG, debug_on and tostring(res) or clean(tostring(res))))
  return 1
end

M.parse = parse
M.commands = commands

return M
