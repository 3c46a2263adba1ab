-- spec/lua/json_spec.lua — the small JSON encoder/decoder behind metrics.jsonl.

local json = require "moonspeed.json"

describe("json", function()
  it("round-trips values", function()
    local v = { step = 3, loss = 2.5, name = "a \"q\" \\ \n\t", list = { 1, 2, { x = false } }, empty = {} }
    assert.are.same(v, json.decode(json.encode(v)))
  end)

  it("writes keys in the order given, then sorted", function()
    assert.are.equal('{"step":1,"loss":2,"a":3,"z":4}', json.encode({ z = 4, a = 3, loss = 2, step = 1 }, { "step", "loss" }))
  end)

  it("writes numbers exactly and briefly", function()
    assert.are.equal("[1,0.1,1e-08,-2.5,12345678901]", json.encode({ 1, 0.1, 1e-8, -2.5, 12345678901 }))
    assert.are.equal("[null,null]", json.encode({ 0 / 0, math.huge }))
    assert.are.equal(0.1 + 0.2, json.decode(json.encode(0.1 + 0.2)))
  end)

  it("decodes escapes, unicode and null", function()
    assert.are.same({ a = "é€😀", b = json.null }, json.decode('{"a":"\\u00e9\\u20ac\\ud83d\\ude00","b":null}'))
    assert.are.same({ 1.5e3, -0.25, true }, json.decode(" [1.5e3, -0.25, true] "))
  end)

  it("reports malformed input with the byte offset", function()
    local v, err = json.decode('{"a":1,}')
    assert.is_nil(v)
    assert.are.equal("json: expected a string key at byte 8", err)
    v, err = json.decode("[1, 2")
    assert.is_nil(v)
    assert.matches("^json: expected ',' or ']' at byte", err)
    v, err = json.decode("1 2")
    assert.are.equal("json: trailing characters at byte 3", err)
  end)

  -- an input spec/fuzz/lua_json.c reports: 10,000 nested arrays raised "stack overflow"
  it("reports nesting deeper than 512 levels instead of overflowing the stack", function()
    local v, err = json.decode(("["):rep(10000) .. ("]"):rep(10000))
    assert.is_nil(v)
    assert.are.equal("json: nesting deeper than 512 levels at byte 513", err)
    v, err = json.decode(('{"a":'):rep(600) .. "1" .. ("}"):rep(600))
    assert.is_nil(v)
    assert.are.equal("json: nesting deeper than 512 levels at byte 2561", err)
    local deep = json.decode(("["):rep(512) .. ("]"):rep(512))
    for _ = 1, 511 do deep = deep[1] end
    assert.are.same({}, deep)
  end)
end)
