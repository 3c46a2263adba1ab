-- spec/lua/doc_mask_spec.lua — data.doc_mask: packed documents do not attend
-- to each other. The kernel is checked against finite differences in
-- spec/c/kernels_attention_test.c; here the whole model: with the mask, what
-- follows a BOS is computed from that BOS on alone.

local support = require "support"

describe("data.doc_mask", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())

  local r
  setup(function()
    local res = support.luajit([[
local engine = require "moonspeed.engine"
local plan = require "moonspeed.plan"
local recipe = require "moonspeed.recipe"
local json = require "moonspeed.json"
local ffi = require "ffi"
local C = engine.C
-- sampled continuations (same seed; init_std 1 makes the model sensitive to its context) of two contexts that differ only before their last BOS (256)
local function continuations(mask)
  local e = engine.new("spec/fixtures/recipes/tiny.lua", { "data.doc_mask=" .. tostring(mask), "model.init_std=1" }, { data = false })
  local outs = {}
  for k, head in ipairs({ "Moses spake", "and Aaron sa" }) do
    local ids = {}
    for i = 1, #head do ids[#ids + 1] = head:byte(i) end
    ids[#ids + 1] = 256
    for _, c in ipairs({ 73, 110, 32, 116, 104, 101 }) do ids[#ids + 1] = c end -- "In the"
    local p = ffi.new("int32_t[?]", #ids, ids)
    local out, n = ffi.new("int32_t[24]"), ffi.new("int32_t[1]")
    assert(C.ms_engine_generate(e.h, p, #ids, 24, 1.0, 0, 7, -1, out, n) == 0, engine.last_error())
    local t = {}
    for i = 0, n[0] - 1 do t[#t + 1] = out[i] end
    outs[k] = table.concat(t, " ")
  end
  e:free()
  return outs
end
local masked, plain = continuations(true), continuations(false)
local function data_bytes(mask)
  local rr = recipe.load("spec/fixtures/recipes/tiny.lua", { "data.doc_mask=" .. tostring(mask) })
  return plan.compute(rr).device_bytes.data
end
print(json.encode({ masked = masked, plain = plain, data_on = data_bytes(true), data_off = data_bytes(false) }))
]])
    r = assert(support.json_result(res))
  end)

  it("makes what follows a BOS independent of the document before it", function()
    assert.are.equal(r.masked[1], r.masked[2])
    assert.are_not.equal(r.plain[1], r.plain[2]) -- without the mask the earlier text matters
  end)

  it("plans and reserves one int32 per token of a micro-batch for the document starts", function()
    assert.are.equal(2 * 32 * 4, r.data_on - r.data_off) -- tiny.lua: micro_batch 2, seq_len 32
  end)
end)
