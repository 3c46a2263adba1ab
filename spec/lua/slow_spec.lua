-- spec/lua/slow_spec.lua — the shipped default recipe, trained in full (`busted --run=slow`).
--
-- Minutes, not seconds: kept out of `make test`. It checks the promise of
-- recipes/default.lua: a held-out loss below 2.0 nats/byte on the KJV bytes,
-- and a bf16 run whose loss curve stays within 2% of fp32's.

local support = require "support"
local json = require "moonspeed.json"

local function metrics(path)
  local recs = {}
  for line in assert(support.read(path)):gmatch("[^\n]+") do recs[#recs + 1] = json.decode(line) end
  return recs
end

describe("the default recipe #slow", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())
  local dir
  setup(function() dir = support.tmpdir() end)
  teardown(function() support.cleanup() end)

  it("reaches a held-out loss below 2.0 nats/byte", function()
    local res = support.moonspeed({ "run", "recipes/default.lua", "--run-dir", dir .. "/fp32" })
    assert.are.equal(0, res.code, res.stderr)
    local recs = metrics(dir .. "/fp32/metrics.jsonl")
    assert.is_true(recs[#recs].val_loss < 2.0, "val_loss " .. tostring(recs[#recs].val_loss))
  end)

  it("trains in bf16 within 2% of fp32", function()
    local res = support.moonspeed({ "run", "recipes/default.lua", "precision=bf16", "--run-dir", dir .. "/bf16" })
    assert.are.equal(0, res.code, res.stderr)
    local a, b = metrics(dir .. "/fp32/metrics.jsonl"), metrics(dir .. "/bf16/metrics.jsonl")
    local last = #a
    local sa, sb = 0, 0
    for i = last - 49, last do sa, sb = sa + a[i].loss, sb + b[i].loss end
    assert.is_true(math.abs(sa - sb) / sa < 0.02, ("fp32 %.4f, bf16 %.4f"):format(sa / 50, sb / 50))
  end)
end)
