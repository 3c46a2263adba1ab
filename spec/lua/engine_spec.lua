-- spec/lua/engine_spec.lua — the engine as Lua objects (lua/moonspeed/engine.lua).
--
-- Every test runs its Lua in a child luajit (the engine from
-- build/libmoonspeed.so), so a crash is a failed test. The child prints one
-- JSON line with what it saw; the assertions are here.

local support = require "support"

local TINY = "spec/fixtures/recipes/tiny.lua"

-- Runs `body` in a child with `engine`, `recipe`, `json`, `e` (a tiny engine)
-- in scope; `body` returns a table that comes back decoded.
local function child(body, opts)
  local code = ([[
local engine = require "moonspeed.engine"
local recipe = require "moonspeed.recipe"
local json = require "moonspeed.json"
local e = engine.new(%q)
local function run()
%s
end
local out = run()
print(json.encode(out))
]]):format(TINY, body)
  local res = support.luajit(code, opts)
  local v, err = support.json_result(res)
  assert(v, (err or "") .. "\nexit " .. tostring(res.code) .. "\n" .. res.stderr)
  return v, res
end

describe("engine", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())
  after_each(function() support.cleanup() end)

  it("steps: stats with loss near ln(vocab) at first, counted steps, tokens", function()
    local v = child([[
      local s1, s2 = e:step(), e:step()
      return { s1.step, s2.step, s1.loss, s2.loss, s1.tokens, s1.tokens_per_s > 0, s1.gflops > 0,
               s1.mfu > 0 and s1.mfu < 1, s1.lr, e:get_step(), tostring(s1):match("^step 1  loss") ~= nil }
    ]])
    assert.are.same({ 1, 2 }, { v[1], v[2] })
    assert.is_true(math.abs(v[3] - math.log(258)) < 0.3, "first loss " .. v[3])
    assert.are.equal(4 * 32, v[5])
    assert.are.same({ true, true, true }, { v[6], v[7], v[8] })
    assert.is_true(v[9] > 0 and v[9] < 3e-3)    -- warmup 2 steps to 3e-3
    assert.are.equal(2, v[10])
    assert.is_true(v[11])
  end)

  it("learns: the loss falls over a few steps, and eval gives a held-out loss", function()
    local v = child([[
      local first, last
      for i = 1, 12 do local s = e:step(); first = first or s.loss; last = s.loss end
      return { first, last, e:eval() }
    ]])
    assert.is_true(v[2] < v[1] - 0.3, ("%g -> %g"):format(v[1], v[2]))
    assert.is_true(v[3] > 0 and v[3] < v[1], "eval " .. v[3])
  end)

  it("is deterministic: the same recipe gives the same losses", function()
    local body = [[ local l = {} for i = 1, 3 do l[i] = e:step().loss end l[4] = e:eval() return l ]]
    assert.are.same(child(body), child(body))
  end)

  it("reports memory equal to the plan, and a plan equal to moonspeed.plan", function()
    local v = child([[
      local plan = require "moonspeed.plan"
      local m, p = e:memory(), e:plan()
      local q = plan.compute(e.recipe)
      e:step()
      local m2 = e:memory()
      return { m.reserved.total, p.device_bytes.total, q.device_bytes.total, m.used.total <= m.reserved.total,
               m2.reservations == m.reservations, p.n_params, tostring(m):match("^memory") ~= nil,
               tostring(p):match("kjv%-tiny") == nil and tostring(p):match("spec%-tiny") ~= nil }
    ]])
    assert.are.equal(v[1], v[2])
    assert.are.equal(v[2], v[3])
    assert.are.same({ true, true }, { v[4], v[5] })
    assert.is_true(v[6] > 10000 and v[6] < 100000)
    assert.are.same({ true, true }, { v[7], v[8] })
  end)

  it("lists units and tensors: names, shapes, dtypes, values", function()
    local v = child([[
      local us = e:units()
      local names, total = {}, 0
      for i, u in ipairs(us) do names[i] = u.name; total = total + u.numel end
      local t = e:tensor("block.0", 1)
      local wq = e:param("block.0.attn.wq")
      local emb = e:tensor(1, 1)
      return { names, total == e:plan().n_params, us[2].tensors, t.name, wq.shape, wq.dtype, #wq.values,
               wq.numel, emb.shape, wq:stats().std, tostring(wq):match("^tensor block%.0%.attn%.wq %(32, 32%) f32") ~= nil,
               tostring(us):match("block%.1") ~= nil }
    ]])
    assert.are.same({ "embed", "block.0", "block.1", "head" }, v[1])
    assert.is_true(v[2])
    assert.is_true(#v[3] >= 7)
    assert.are.equal("block.0." .. v[3][1]:match("^block%.0%.(.*)$"), v[4])
    assert.are.same({ 32, 32 }, v[5])
    assert.are.equal("f32", v[6])
    assert.are.same({ 1024, 1024 }, { v[7], v[8] })
    assert.are.same({ 258, 32 }, v[9])
    assert.is_true(math.abs(v[10] - 0.02) < 0.005, "init std " .. v[10])
    assert.are.same({ true, true }, { v[11], v[12] })
  end)

  it("writes tensors and reads them back; grads appear after a step", function()
    local v = child([[
      local t = e:param("block.1.attn.wk")
      t:set(function(i) return i / 1000 end)
      local back = e:param("block.1.attn.wk").values
      e:step()
      local g = e:param("block.1.attn.wk").grad
      local nonzero = 0
      for _, x in ipairs(g) do if x ~= 0 then nonzero = nonzero + 1 end end
      return { back[1], back[2], back[#back], #back, nonzero > 0 }
    ]])
    assert.is_true(math.abs(v[1] - 0.001) < 1e-7)
    assert.is_true(math.abs(v[2] - 0.002) < 1e-7)
    assert.is_true(math.abs(v[3] - v[4] / 1000) < 1e-5)
    assert.is_true(v[5])
  end)

  it("generates bytes from a prompt, reproducibly per seed", function()
    local v = child([[
      local a, n = e:generate("In the", { tokens = 16, seed = 7 })
      local b = e:generate("In the", { tokens = 16, seed = 7 })
      local c = e:generate("In the", { tokens = 16, temperature = 0 })
      local d = e:generate("In the", { tokens = 16, temperature = 0, seed = 99 })
      local z = e:generate("In the", { tokens = 0 })
      return { a, n, a == b, c == d, z, type(a) }
    ]])
    assert.are.equal("string", v[6])
    assert.is_true(v[2] <= 16 and #v[1] <= 16)
    assert.is_true(v[3])
    assert.is_true(v[4])
    assert.are.equal("", v[5])
  end)

  it("saves and loads weights", function()
    local dir = support.tmpdir()
    local v = child(([[
      local w = e:param("block.0.attn.wq").values
      e:save(%q)
      for i = 1, 3 do e:step() end
      local changed = e:param("block.0.attn.wq").values[1] ~= w[1]
      e:load(%q)
      local again = e:param("block.0.attn.wq").values
      local same = true
      for i = 1, #w do if again[i] ~= w[i] then same = false end end
      return { changed, same }
    ]]):format(dir .. "/w.bin", dir .. "/w.bin"))
    assert.are.same({ true, true }, v)
  end)

  it("raises caller mistakes at the caller's line", function()
    local v = child([[
      local res = {}
      local function try(f) local ok, err = pcall(f) res[#res + 1] = err end
      try(function() e:generate(5) end)
      try(function() e:generate("x", { tokens = -1 }) end)
      try(function() e:tensor(99, 1) end)
      try(function() e:tensor("block.0", 99) end)
      try(function() e:param("block.0.attn.wx") end)
      try(function() e:set_step(-1) end)
      try(function() e:save(42) end)
      return res
    ]])
    local where = "child%.lua:%d+: "
    assert.matches("^.*" .. where .. "e:generate%(prompt, opts%): prompt must be a string$", v[1])
    assert.matches("^.*" .. where .. "e:generate: tokens must be an integer >= 0$", v[2])
    assert.matches("^.*" .. where .. "e:tensor%(unit, i%): unit 99 does not exist; units are 1%.%.4$", v[3])
    assert.matches("^.*" .. where .. "e:tensor%(unit, i%): unit block%.0 has tensors 1%.%.%d+, not 99$", v[4])
    assert.matches('^.*' .. where .. 'e:param: no tensor named "block%.0%.attn%.wx"; did you mean "block%.0%.attn%.w[qkvo]"%?$', v[5])
    assert.matches("^.*" .. where .. "e:set_step%(n%): n must be an integer >= 0$", v[6])
    assert.matches("^.*" .. where .. "e:save%(path%): path must be a string$", v[7])
  end)

  it("raises engine failures with the C function and ms_last_error()", function()
    local dir = support.tmpdir()
    support.write(dir .. "/junk.bin", "not weights")
    local v = child(([[
      local res = {}
      local ok, err = pcall(e.load, e, %q)
      res[1] = err
      ok, err = pcall(e.load, e, %q)
      res[2] = err
      local bare = engine.new(%q, nil, { data = false })
      ok, err = pcall(bare.step, bare)
      res[3] = err
      ok, err = pcall(engine.new, %q, { "data.train=%s/nope.bin" })
      res[4] = err
      ok, err = pcall(e.profile_stop, e)
      res[5] = err
      e:profile_start()
      ok, err = pcall(e.profile_start, e)
      res[6] = err
      e:step()
      local p = e:profile_stop()
      res[7] = { #p.ops > 0, p.seconds > 0, p.ops[1].calls > 0 }
      return res
    ]]):format(dir .. "/missing.bin", dir .. "/junk.bin", TINY, TINY, dir))
    assert.matches("ms_engine_load_weights failed: .*missing%.bin", v[1])
    assert.matches("ms_engine_load_weights failed: .*junk%.bin", v[2])
    assert.matches("ms_engine_step failed: the engine has no training data; set data.train$", v[3])
    assert.matches("ms_engine_create failed: .*nope%.bin", v[4])
    assert.matches("ms_engine_profile_stop failed: no profile is running$", v[5])
    assert.matches("ms_engine_profile_start failed: a profile is already running; stop it first$", v[6])
    assert.are.same({ true, true, true }, v[7])
  end)

  it("frees idempotently and refuses calls afterwards", function()
    local v = child([[
      e:free()
      e:free()
      local ok, err = pcall(function() local s = e:step() return s end)
      return { ok, err, tostring(e), e:alive() }
    ]])
    assert.is_false(v[1])
    assert.matches("child%.lua:%d+: e:step%(%): the engine has been freed$", v[2])
    assert.are.equal("engine (freed)", v[3])
    assert.is_false(v[4])
  end)

  it("has the schema's defaults in ms_config_defaults", function()
    local v = child([[
      local schema = require "moonspeed.schema"
      local ffi = require "ffi"
      local cfg = ffi.new("ms_config")
      engine.C.ms_config_defaults(cfg)
      local from_schema = engine.config(recipe.from_table({}))
      local diff = {}
      local function cmp(path, a, b)
        if tonumber(a) ~= tonumber(b) then diff[#diff + 1] = ("%s: engine %s, schema %s"):format(path, tostring(a), tostring(b)) end
      end
      for _, k in ipairs({ "vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "max_seq_len",
                           "tie_embeddings", "rope_theta", "norm_eps", "init_std" }) do
        cmp("model." .. k, cfg.model[k], from_schema.model[k])
      end
      for _, k in ipairs({ "steps", "batch", "micro_batch", "seq_len", "warmup", "schedule", "lr", "min_lr", "beta1",
                           "beta2", "eps", "weight_decay", "clip", "checkpoint_activations", "eval_batches", "seed" }) do
        cmp("train." .. k, cfg.train[k], from_schema.train[k])
      end
      for _, k in ipairs({ "precision", "device", "threads", "loss_chunk" }) do cmp(k, cfg[k], from_schema[k]) end
      return diff
    ]])
    assert.are.same({}, v)
  end)

  it("reports what the host's updates of offloaded units cost, and bets only after a step that was not clipped", function()
    local v = child([[
      local plain = e:step()
      local o = engine.new("spec/fixtures/recipes/tiny.lua", { "offload.optimizer=cpu", "offload.overlap=true",
                                                               "train.clip=1.6" })
      local steps = {}
      for i = 1, 8 do
        local s = o:step()
        steps[i] = { s.grad_norm, s.offload.update_s, s.offload.wait_s, s.offload.recomputed }
      end
      o:free()
      return { plain.offload == nil, steps }
    ]])
    assert.is_true(v[1]) -- nothing offloaded: no offload record
    local redone, kept, updating, clipped_before = 0, 0, 0, false
    for i, s in ipairs(v[2]) do
      local norm, update, wait, recomputed = s[1], s[2], s[3], s[4]
      -- a step's updates may end during the next step, so a step's seconds may be the one before's
      assert.is_true(update >= 0 and update < 5 and wait >= 0 and wait < 5, ("step %d: %g, %g"):format(i, update, wait))
      updating = updating + update
      -- the bet (updating during the backward with the gradients unclipped) is taken after a step
      -- that was not clipped, and redone exactly when the step is clipped
      local bet, clipped = not clipped_before, norm > 1.6
      assert.are.equal(bet and clipped, recomputed, ("step %d: gradient norm %g"):format(i, norm))
      if recomputed then redone = redone + 1 elseif bet then kept = kept + 1 end
      clipped_before = clipped
    end
    assert.is_true(updating > 0)
    assert.is_true(redone > 0 and kept > 0, ("%d bets redone, %d kept: both kinds of step"):format(redone, kept))
  end)

  it("accepts the recipe as a file, a table or resolved, with overrides", function()
    local v = child([[
      local r = recipe.load("spec/fixtures/recipes/tiny.lua")
      local a = engine.new(r)
      local b = engine.new("spec/fixtures/recipes/tiny.lua", { "model.n_layers=1" })
      local c = engine.new({ model = { dim = 16, n_heads = 2, n_kv_heads = 1, ffn_dim = 32 },
                             train = { batch = 2, micro_batch = 2, seq_len = 16 } }, nil, { data = false })
      local ok, err = pcall(engine.new, { model = { dimm = 3 } })
      local res = { #a:units(), #b:units(), #c:units(), c.recipe.model.dim, err }
      a:free() b:free() c:free()
      return res
    ]])
    assert.are.same({ 4, 3, 6, 16 }, { v[1], v[2], v[3], v[4] })
    assert.are.equal("recipe: unknown key model.dimm; did you mean model.dim?", v[5])
  end)

  it("prepares byte shards from text", function()
    local dir = support.tmpdir()
    support.write(dir .. "/t.txt", ("In the beginning God created the heaven and the earth.\n"):rep(3000))
    local v = child(([[
      local ti, vi = engine.prepare_bytes(%q, %q, %q, 20)
      local info = engine.shard_info(%q)
      local none, err = engine.shard_info(%q)
      return { ti.n_tokens, vi.n_tokens, ti.tokenizer, ti.vocab_size, info.n_tokens, none == nil, err }
    ]]):format(dir .. "/t.txt", dir .. "/train.bin", dir .. "/val.bin", dir .. "/train.bin", dir .. "/t.txt"))
    local text_bytes = #("In the beginning God created the heaven and the earth.\n") * 3000
    assert.is_true(v[1] + v[2] >= text_bytes and v[1] + v[2] <= text_bytes + 1000)
    assert.is_true(v[2] > 0)
    assert.are.same({ "bytes", 258, v[1], true }, { v[3], v[4], v[5], v[6] })
    assert.is_string(v[7])
  end)
end)
