-- lua/moonspeed/hf.lua — `moonspeed export` (a run as a Hugging Face Llama
-- directory) and `moonspeed logits` (a model's logits for given tokens, the
-- debugging aid that spec/peers/hf_compare.py compares against transformers).
-- Importing is the recipe key init.from (schema.lua), done by the engine.

local M = {}

local UNITS = { B = 1, KB = 1e3, MB = 1e6, GB = 1e9, TB = 1e12, KIB = 2^10, MIB = 2^20, GIB = 2^30, TIB = 2^40 }

-- "5GB" -> 5e9, "500MiB" -> 524288000, "1000" -> 1000; nil for anything else.
function M.parse_size(s)
  if type(s) ~= "string" then return nil end
  local num, unit = s:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
  if not num then return nil end
  local f = UNITS[unit:upper()] or (unit == "" and 1)
  if not f then return nil end
  local n = math.floor(tonumber(num) * f)
  if n < 1 then return nil end
  return n
end

-- The recipe and the weights of SRC: a run directory (its model.bin, or, for
-- a run stopped early, its newest valid checkpoint) or a checkpoint directory
-- (its meta.json carries the resolved recipe).
local function source(src, usage)
  local sys = require "moonspeed.sys"
  local recipe = require "moonspeed.recipe"
  local checkpoint = require "moonspeed.checkpoint"
  if not src then usage("missing SRC (a run directory written by moonspeed run, or a checkpoint)") end
  src = src:gsub("/+$", "")
  if sys.exists(src .. "/meta.json") then
    local fine, meta = checkpoint.verify(src)
    if not fine then error(("checkpoint %s: %s"):format(src, meta), 0) end
    local tmp = os.tmpname()
    assert(sys.write_file(tmp, meta.recipe))
    local ok, r = pcall(recipe.load, tmp)
    os.remove(tmp)
    if not ok then error(("checkpoint %s: its recipe does not load: %s"):format(src, r), 0) end
    return r, src
  end
  if not sys.exists(src .. "/recipe.lua") then
    error(("%s has no recipe.lua and no meta.json: SRC must be a run directory of moonspeed run or a checkpoint")
      :format(src), 0)
  end
  local r = recipe.load(src .. "/recipe.lua")
  if sys.exists(src .. "/model.bin") then return r, src end
  for _, c in ipairs(checkpoint.list(checkpoint.root(r, src))) do
    if checkpoint.verify(c.path) then return r, c.path end
  end
  error(("%s holds no model.bin (the run did not finish) and no valid checkpoint"):format(src), 0)
end

-- The tokenizer's BOS and EOS for config.json; nil when the tokenizer cannot be loaded here.
local function special_ids(r)
  local ok, tok = pcall(require("moonspeed.tokenizer").for_recipe, r)
  if not ok then return nil, nil end
  return tok.bos, tok.eos
end

function M.commands(usage, say)
  local export = {
    name = "export",
    summary = "write a run's weights as a Hugging Face Llama model (safetensors)",
    help = [[
usage: moonspeed export SRC --hf DIR [--dtype bf16|fp32] [--max-shard-size 5GB]

Writes the model of SRC (a run directory: recipe.lua + model.bin, or its newest
valid checkpoint when the run stopped early; or a checkpoint directory) as a Hugging
Face LlamaForCausalLM directory DIR that transformers' from_pretrained loads:
  model-00001-of-0000N.safetensors ...   the weights, Hugging Face names and layouts
  model.safetensors.index.json           which shard holds which tensor
  config.json, generation_config.json    the shape, rope_theta, rms_norm_eps,
                                         tie_word_embeddings, BOS/EOS ids, torch_dtype
Works one unit (embedding, block, head) at a time. Everything is written into a
temporary directory beside DIR and renamed at the end: DIR is complete or absent.
DIR must not exist (or be empty).

A recipe imports such a directory (or one written by save_pretrained) with
init = { from = "DIR" }; each rank reads only its own slices.

options:
  --hf DIR               the directory to write (required)
  --dtype bf16|fp32      the weights' dtype (default bf16; bf16 rounds to nearest even)
  --max-shard-size SIZE  start a new shard before one grows past SIZE (default 5GB;
                         B, KB, MB, GB, KiB, MiB, GiB)
]],
    spec = { flags = { ["--hf"] = "string", ["--dtype"] = "string", ["--max-shard-size"] = "string" },
             max_positional = 1 },
    run = function(opts, pos)
      local engine = require "moonspeed.engine"
      local fmt = require "moonspeed.fmt"
      local r, src = source(pos[1], usage)
      if not opts.hf then usage("missing --hf DIR (the Hugging Face directory to write)") end
      local dtype = opts.dtype or "bf16"
      if dtype ~= "bf16" and dtype ~= "fp32" then
        usage(("--dtype must be bf16 or fp32, got %q"):format(dtype))
      end
      local max = 5e9
      if opts["max-shard-size"] then
        max = M.parse_size(opts["max-shard-size"])
        if not max then
          usage(("--max-shard-size must be a size such as 5GB, 500MB or 2GiB, got %q"):format(opts["max-shard-size"]))
        end
      end
      local bos, eos = special_ids(r)
      local rep = engine.export_hf(r, src, opts.hf, { dtype = dtype, max_shard_bytes = max, bos = bos, eos = eos })
      say(("wrote %s: %d tensors, %s of %s weights in %d shard%s (LlamaForCausalLM)"):format(opts.hf, rep.tensors,
        fmt.bytes(rep.bytes), dtype, rep.shards, rep.shards == 1 and "" or "s"))
      return 0
    end,
  }

  local logits = {
    name = "logits",
    summary = "a model's logits for given tokens, as JSON (for comparisons)",
    help = [[
usage: moonspeed logits MODEL --tokens ID,ID,... [section.key=value ...] [--save-weights FILE]

MODEL is a run directory (its recipe.lua and model.bin) or a recipe (meta init, or
init.from). Prints one JSON line: {"tokens": [...], "vocab_size": V, "logits": [[...], ...]},
the fp32 logits of every position of the one sequence (at most train.seq_len tokens).
Under `moonspeed launch` every rank computes and rank 0 prints.

options:
  --tokens LIST         token ids, separated by commas or spaces
  --save-weights FILE   also write the model's fp32 master weights (model.bin format)
]],
    spec = { flags = { ["--tokens"] = "string", ["--save-weights"] = "string" }, max_positional = 1,
             overrides = true },
    run = function(opts, pos, overrides)
      local recipe = require "moonspeed.recipe"
      local engine = require "moonspeed.engine"
      local json = require "moonspeed.json"
      local sys = require "moonspeed.sys"
      local path = pos[1]
      if not path then usage("missing MODEL (a run directory or a recipe)") end
      if not opts.tokens then usage("missing --tokens ID,ID,...") end
      local tokens = {}
      for t in opts.tokens:gmatch("[^,%s]+") do
        local n = tonumber(t)
        if not n or n ~= math.floor(n) or n < 0 then usage(("--tokens: %q is not a token id"):format(t)) end
        tokens[#tokens + 1] = n
      end
      if #tokens == 0 then usage("--tokens: no token ids") end
      path = path:gsub("/+$", "")
      local weights
      if sys.exists(path .. "/recipe.lua") then
        weights = path .. "/model.bin"
        path = path .. "/recipe.lua"
      elseif not sys.exists(path) then
        error(("%s does not exist"):format(path), 0)
      end
      local r, info = recipe.load(path, overrides)
      if weights then
        -- a run's trained weights win over the init.from it started from, unless one is given here
        local given = false
        for _, o in ipairs(overrides) do given = given or o:match("^init%.from=") or o:match("^from=") end
        if given then weights = nil else r.init.from = "" end
      end
      local e = engine.new(r, nil, { data = false, info = info })
      local ok, err = pcall(function()
        if weights then e:load(weights) end
        local rows = e:logits(tokens)
        if opts["save-weights"] then e:save(opts["save-weights"]) end
        if e:rank() == 0 then
          local parts = {}
          for i, row in ipairs(rows) do
            local cells = {}
            for k, x in ipairs(row) do cells[k] = ("%.9g"):format(x) end
            parts[i] = "[" .. table.concat(cells, ",") .. "]"
          end
          say(('{"tokens":%s,"vocab_size":%d,"logits":[%s]}'):format(json.encode(tokens), r.model.vocab_size,
            table.concat(parts, ",")))
        end
      end)
      e:free()
      if not ok then error(err, 0) end
      return 0
    end,
  }

  return { export, logits }
end

return M
