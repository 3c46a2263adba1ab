-- spec/lua/hf_spec.lua — Hugging Face interop from the command line:
-- `moonspeed export` then init.from gives back the very same weights (fp32),
-- logits and loss; bf16 export rounds to nearest even; sharding; import at
-- world size 2 equals world size 1; refusals. The comparison against
-- transformers itself is spec/peers/hf_compare.py (it needs PyTorch).

local ffi = require "ffi"
local support = require "support"
local json = require "moonspeed.json"

local TINY = "spec/fixtures/recipes/tiny.lua"
local TOKENS = "256,73,110,32,116,104,101,32,98,101,103,105,110,110,105,110,103"

local function ok(res)
  assert.are.equal(0, res.code, res.stderr .. res.stdout)
  return res
end

-- The JSON line of `moonspeed logits` (rank 0's, under launch).
local function logits(res)
  ok(res)
  local line = res.stdout:match('{"tokens".-\n') or res.stdout
  line = line:gsub("^%[rank 0%] ", "")
  return assert(json.decode(line))
end

-- The fp32 values of a weights file (model.bin), in file order, as a cdata array and a count.
local function weights(path)
  local s = assert(support.read(path))
  assert.are.equal("MSWEIGHT", s:sub(1, 8))
  local units = ffi.cast("const uint32_t *", s)[3]
  local at, parts = 16, {}
  for _ = 1, units do
    local n = tonumber(ffi.cast("const uint64_t *", ffi.cast("const char *", s) + at + 48)[0])
    parts[#parts + 1] = s:sub(at + 57, at + 56 + n * 4)
    at = at + 56 + n * 4
  end
  local all = table.concat(parts)
  return ffi.cast("const float *", all), #all / 4, all
end

local Bits = ffi.typeof("union { float f; uint32_t u; }")
local function bf16(x)
  local u = Bits()
  u.f = x
  u.u = bit.band(u.u + 0x7fff + bit.band(bit.rshift(u.u, 16), 1), 0xffff0000)
  return u.f
end

describe("Hugging Face export and import", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())
  local dir, run
  setup(function()
    dir = support.tmpdir()
    run = dir .. "/run"
    ok(support.moonspeed({ "run", TINY, "train.steps=3", "log.sample_tokens=0", "--run-dir", run }))
  end)
  teardown(function() support.cleanup() end)

  it("exports a run as a LlamaForCausalLM directory and imports it with identical weights, logits and loss", function()
    local hf = dir .. "/hf32"
    local res = ok(support.moonspeed({ "export", run, "--hf", hf, "--dtype", "fp32" }))
    assert.matches("^wrote " .. hf:gsub("%p", "%%%0") .. ": 20 tensors, [%d.]+ KiB of fp32 weights in 1 shard", res.stdout)
    assert.are.same({ "config.json", "generation_config.json", "model-00001-of-00001.safetensors",
                      "model.safetensors.index.json" }, support.ls(hf))
    assert.are.same({}, support.ls(dir .. "/hf32.tmp")) -- nothing left beside it
    local cfg = json.decode(support.read(hf .. "/config.json"))
    assert.are.same({ "LlamaForCausalLM" }, cfg.architectures)
    assert.are.equal("llama", cfg.model_type)
    for k, v in pairs({ vocab_size = 258, hidden_size = 32, num_hidden_layers = 2, num_attention_heads = 2,
                        num_key_value_heads = 1, intermediate_size = 64, head_dim = 16, max_position_embeddings = 64,
                        rope_theta = 10000, rms_norm_eps = 1e-5, tie_word_embeddings = true, bos_token_id = 256,
                        eos_token_id = 257, torch_dtype = "float32", hidden_act = "silu" }) do
      assert.are.equal(v, cfg[k], k)
    end
    local gen = json.decode(support.read(hf .. "/generation_config.json"))
    assert.are.equal(256, gen.bos_token_id)
    assert.are.equal(257, gen.eos_token_id)
    local index = json.decode(support.read(hf .. "/model.safetensors.index.json"))
    assert.are.equal("model-00001-of-00001.safetensors", index.weight_map["model.layers.1.mlp.down_proj.weight"])
    assert.is_nil(index.weight_map["lm_head.weight"]) -- tied, as save_pretrained writes it

    -- import: the master weights come back bit for bit
    local a = logits(support.moonspeed({ "logits", run, "--tokens", TOKENS }))
    local b = logits(support.moonspeed({ "logits", TINY, "init.from=" .. hf, "--tokens", TOKENS,
                                         "--save-weights", dir .. "/back.bin" }))
    assert.are.equal(support.read(run .. "/model.bin"), support.read(dir .. "/back.bin"))
    assert.are.same(a, b)
    assert.are.equal(17, #b.logits)
    assert.are.equal(258, #b.logits[1])
    -- and so does the loss
    local res2 = ok(support.luajit(([[
      local engine = require "moonspeed.engine"
      local a = engine.new(%q, { "init.from=%s" })
      local b = engine.new(%q)
      b:load(%q)
      print(("%%.9g %%.9g"):format(a:eval(), b:eval()))
      a:free() b:free()
    ]]):format(TINY, hf, TINY, run .. "/model.bin")))
    local la, lb = res2.stdout:match("^(%S+) (%S+)")
    assert.are.equal(lb, la)
    assert.is_true(tonumber(la) > 1 and tonumber(la) < 6)
  end)

  it("rounds bf16 exports to nearest even", function()
    local hf = dir .. "/hf16"
    ok(support.moonspeed({ "export", run, "--hf", hf }))  -- bf16 is the default
    assert.are.equal("bfloat16", json.decode(support.read(hf .. "/config.json")).torch_dtype)
    ok(support.moonspeed({ "logits", TINY, "init.from=" .. hf, "--tokens", "1", "--save-weights", dir .. "/b16.bin" }))
    local want, n, keep_want = weights(run .. "/model.bin")
    local got, m, keep_got = weights(dir .. "/b16.bin")
    assert.are.equal(n, m)
    local changed = 0
    for i = 0, n - 1 do
      local w = bf16(want[i])
      if got[i] ~= w then error(("element %d: %.9g, want %.9g (from %.9g)"):format(i, got[i], w, want[i])) end
      if w ~= want[i] then changed = changed + 1 end
    end
    assert.is_true(changed > n / 2) -- trained fp32 weights rarely are bf16 values already
    assert.is_true(#keep_want == #keep_got) -- (keeps the strings behind the pointers alive)
    local s32 = #support.read(dir .. "/hf32/model-00001-of-00001.safetensors")
    local s16 = #support.read(hf .. "/model-00001-of-00001.safetensors")
    assert.is_true(math.abs(s16 - s32 / 2) < 4096)
  end)

  it("splits shards by --max-shard-size and imports them all", function()
    local hf = dir .. "/sharded"
    local res = ok(support.moonspeed({ "export", run, "--hf", hf, "--dtype", "fp32", "--max-shard-size", "20KB" }))
    local shards = tonumber(res.stdout:match("in (%d+) shards"))
    assert.is_true(shards >= 4)
    local files = support.ls(hf)
    assert.are.equal(shards + 3, #files)
    assert.are.equal(("model-%05d-of-%05d.safetensors"):format(shards, shards), files[shards + 2])
    local index = json.decode(support.read(hf .. "/model.safetensors.index.json"))
    local per = {}
    for _, f in pairs(index.weight_map) do per[f] = (per[f] or 0) + 1 end
    local count = 0
    for _ in pairs(per) do count = count + 1 end
    assert.are.equal(shards, count)
    ok(support.moonspeed({ "logits", TINY, "init.from=" .. hf, "--tokens", "1", "--save-weights", dir .. "/s.bin" }))
    assert.are.equal(support.read(run .. "/model.bin"), support.read(dir .. "/s.bin"))
  end)

  it("imports at world size 2 exactly as at world size 1, each rank reading its own slices", function()
    local hf = dir .. "/hf32"
    local one = logits(support.moonspeed({ "logits", TINY, "init.from=" .. hf, "--tokens", TOKENS,
                                           "--save-weights", dir .. "/w1.bin" }))
    for _, stage in ipairs({ 1, 3 }) do
      local w2 = ("%s/w2-stage%d.bin"):format(dir, stage)
      local two = logits(support.moonspeed({ "launch", "--nproc-per-node", "2", "--", support.exe, "logits", TINY,
        "init.from=" .. hf, "zero.stage=" .. stage, "--tokens", TOKENS, "--save-weights", w2 }))
      assert.are.equal(support.read(dir .. "/w1.bin"), support.read(w2))
      for p = 1, #one.logits do
        for v = 1, 258 do
          local x, y = one.logits[p][v], two.logits[p][v]
          if math.abs(x - y) > 1e-5 * math.max(1, math.abs(x)) then
            error(("stage %d: position %d, token %d: %.9g at world 2, %.9g at world 1"):format(stage, p, v - 1, y, x))
          end
        end
      end
    end
  end)

  it("trains from an import, and the run's own weights replace it afterwards", function()
    local hf, run2 = dir .. "/hf-start", dir .. "/run2"
    ok(support.moonspeed({ "export", run, "--hf", hf, "--dtype", "fp32" }))
    ok(support.moonspeed({ "run", TINY, "init.from=" .. hf, "train.steps=2", "log.sample_tokens=0",
                           "--run-dir", run2 }))
    assert.matches('init = {%s*from = "[^"]*/hf%-start"', support.read(run2 .. "/recipe.lua"))
    os.execute("rm -rf " .. support.quote(hf)) -- the run no longer needs where it started
    local trained = logits(support.moonspeed({ "logits", run2, "--tokens", TOKENS }))
    local started = logits(support.moonspeed({ "logits", run, "--tokens", TOKENS }))
    assert.are_not.same(started.logits[1], trained.logits[1])
    ok(support.moonspeed({ "sample", run2, "--tokens", "5" }))
    local metrics = support.read(run2 .. "/metrics.jsonl")
    local first = tonumber(metrics:match('"loss":([%d.e+-]+)'))
    assert.is_true(first < 5.4, metrics) -- started from the trained weights, not from ln(258) = 5.55
  end)

  it("refuses a directory whose config.json does not match the recipe, naming every key", function()
    local res = support.moonspeed({ "logits", TINY, "init.from=" .. dir .. "/hf32", "model.dim=64",
                                    "model.ffn_dim=96", "--tokens", "1" })
    assert.are.equal(1, res.code)
    assert.matches("moonspeed: ms_engine_create failed: init.from: [^\n]*/hf32/config.json differs from the recipe's "
      .. "model section: hidden_size = 32 but model.dim = 64; intermediate_size = 64 but model.ffn_dim = 96; "
      .. "head_dim = 16 but model.dim / model.n_heads = 32; set the model section", res.stderr)
  end)

  it("never writes over a directory and never leaves a partial one", function()
    local res = support.moonspeed({ "export", run, "--hf", dir .. "/hf32" })
    assert.are.equal(1, res.code)
    assert.matches("the target already exists and is not empty; choose a new directory", res.stderr)
    assert.are.equal(4, #support.ls(dir .. "/hf32"))
    -- a truncated source fails half way: no target, no temporary
    local bad = dir .. "/badrun"
    os.execute(("mkdir -p %s && cp %s/recipe.lua %s/ && head -c 20000 %s/model.bin > %s/model.bin"):format(
      support.quote(bad), support.quote(run), support.quote(bad), support.quote(run), support.quote(bad)))
    local before = support.ls(dir)
    res = support.moonspeed({ "export", bad, "--hf", dir .. "/partial", "--max-shard-size", "5KB" })
    assert.are.equal(1, res.code)
    assert.matches("the file ends early; it is truncated", res.stderr)
    assert.are.same(before, support.ls(dir))
    -- an unwritable place
    res = support.moonspeed({ "export", run, "--hf", run .. "/model.bin/hf" })
    assert.are.equal(1, res.code)
    assert.matches("Not a directory", res.stderr)
    assert.are.same(before, support.ls(dir))
  end)

  it("checks its arguments", function()
    local cases = {
      { { "export", run }, "missing --hf DIR" },
      { { "export", run, "--hf", dir .. "/x", "--dtype", "fp16" }, '--dtype must be bf16 or fp32, got "fp16"' },
      { { "export", run, "--hf", dir .. "/x", "--max-shard-size", "5XB" }, "--max-shard-size must be a size" },
      { { "logits", TINY }, "missing --tokens" },
      { { "logits", TINY, "--tokens", "1,x" }, '--tokens: "x" is not a token id' },
    }
    for _, c in ipairs(cases) do
      local res = support.moonspeed(c[1])
      assert.are.equal(2, res.code, table.concat(c[1], " "))
      assert.truthy(res.stderr:find(c[2], 1, true), res.stderr)
    end
    local res = support.moonspeed({ "export", dir, "--hf", dir .. "/x" })
    assert.are.equal(1, res.code)
    assert.matches("has no recipe.lua and no meta.json: SRC must be a run directory of moonspeed run or a checkpoint", res.stderr)
    res = support.moonspeed({ "logits", TINY, "--tokens", "300" })
    assert.are.equal(1, res.code)
    assert.matches("token 0 is 300, outside the vocabulary of 258", res.stderr)
  end)

  it("reads shard sizes", function()
    local parse = require("moonspeed.hf").parse_size
    assert.are.equal(5e9, parse("5GB"))
    assert.are.equal(500 * 2^20, parse("500MiB"))
    assert.are.equal(1000, parse("1000"))
    assert.are.equal(1500, parse("1.5kb"))
    assert.is_nil(parse("5XB"))
    assert.is_nil(parse("0"))
    assert.is_nil(parse("-1GB"))
  end)
end)
