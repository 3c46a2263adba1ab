-- spec/lua/tokenizer_spec.lua — the Llama 3 tokenizer against known ids, against
-- itself (both file forms, decode of encode), and against the reference
-- JavaScript encoder of npm's llama3-tokenizer-js on ~2.2 MB of mixed text.
--
-- The tokenizer files come from `make data-llama3` (make test fetches them);
-- without them these specs are pending. The engine runs in child processes.

local support = require "support"
local json = require "moonspeed.json"

local MODEL, JSONF = "data/llama3/tokenizer.model", "data/llama3/tokenizer.json"
local PEER = "spec/peers/llama3_tokenizer.mjs"

-- Runs `body` (Lua code using `tk`, the tokenizer module, and `out(value)`)
-- in a child; returns what it passed to out().
local function child(body)
  local res = support.luajit(([[
local tokenizer = require "moonspeed.tokenizer"
local json = require "moonspeed.json"
local function out(v) io.stdout:write(json.encode(v), "\n") end
%s
]]):format(body))
  local v, err = support.json_result(res)
  assert(v ~= nil, ("child failed (exit %s): %s\n%s"):format(tostring(res.code), tostring(err), res.stderr))
  return v
end

local function have_files()
  return support.exists(MODEL) and support.exists(JSONF)
end

describe("the Llama 3 tokenizer", function()
  assert.is_nil(support.missing_build())
  if not have_files() then
    it("needs data/llama3", function()
      pending("data/llama3/tokenizer.model and tokenizer.json are missing: run `make data-llama3` (make test does)")
    end)
    return
  end

  local known
  setup(function()
    known = child([[
local r = {}
for _, path in ipairs({ "data/llama3/tokenizer.model", "data/llama3/tokenizer.json" }) do
  local t = tokenizer.load(path)
  local s = { id = t.id, vocab = t.vocab_size, bos = t.bos, eos = t.eos,
              eot = t:special("<|eot_id|>"), sh = t:special("<|start_header_id|>"), eh = t:special("<|end_header_id|>") }
  for _, text in ipairs({ "Hello world", " the", "The quick brown fox", "12345678" }) do s[text] = t:encode(text) end
  s.plain = t:encode("<|begin_of_text|>Hi<|eot_id|>")
  s.specials = t:encode("<|begin_of_text|>Hi<|eot_id|>", { specials = true })
  s.bos_eos = t:encode("Hi", { bos = true, eos = true })
  s.names = { t:token(128000), t:token(128001), t:token(128009), t:token(128255) }
  r[#r + 1] = s
  t:free()
end
out(r)
]])
  end)

  it("gives the known ids (DATA.md) from both file forms", function()
    for _, s in ipairs(known) do
      assert.are.same({ 9906, 1917 }, s["Hello world"])
      assert.are.same({ 279 }, s[" the"])
      assert.are.same({ 791, 4062, 14198, 39935 }, s["The quick brown fox"])
      assert.are.same({ 4513, 10961, 2495 }, s["12345678"])
    end
  end)

  it("has 128256 tokens, BOS 128000, EOS 128001, the header and eot ids, and one id for both forms", function()
    for _, s in ipairs(known) do
      assert.are.equal(128256, s.vocab)
      assert.are.equal(128000, s.bos)
      assert.are.equal(128001, s.eos)
      assert.are.equal(128006, s.sh)
      assert.are.equal(128007, s.eh)
      assert.are.equal(128009, s.eot)
      assert.are.equal("llama3-82e9d31979e92ab929cd5444", s.id)
      assert.are.same({ "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|reserved_special_token_250|>" }, s.names)
    end
  end)

  it("reads special-token names as text unless asked", function()
    for _, s in ipairs(known) do
      assert.are.same({ 128000, 13347, 128009 }, s.specials)
      assert.are.same({ 128000, 13347, 128001 }, s.bos_eos)
      assert.is_true(#s.plain > 6)
      for _, id in ipairs(s.plain) do assert.is_true(id < 128000) end
    end
  end)

  it("decodes a UTF-8 character split across tokens, token by token", function()
    local r = child([[
local t = tokenizer.load("data/llama3/tokenizer.model")
local text = "emoji 🦙 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 👨‍👩‍👧"
local ids = t:encode(text)
local split, parts = 0, {}
for i, id in ipairs(ids) do
  local b = t:token(id)
  parts[i] = b
  if b:find("[\128-\255]") and not b:find("^[\1-\127\194-\244][\128-\191]*$") then split = split + 1 end
end
out({ same = t:decode(ids) == text, joined = table.concat(parts) == text, n = #ids, split = split })
]])
    assert.is_true(r.same)
    assert.is_true(r.joined)
    assert.is_true(r.split > 0) -- some token holds part of a character
  end)

  it("encodes invalid UTF-8 byte by byte and decodes it back unchanged", function()
    local r = child([[
local t = tokenizer.load("data/llama3/tokenizer.model")
local cases = { "\255", "abc\255def", "\192\128", "\237\160\128 surrogate", "\244\144\128\128 too big",
                "caf\195", "\226\130", "ok \240\159\166 cut emoji", string.rep("\254", 300) .. "x" }
local res = { cases = {} }
for i, s in ipairs(cases) do
  local ids = t:encode(s)
  res.cases[i] = { back = t:decode(ids) == s, n = #ids }
end
local lone = t:encode("a\255b")
res.lone = { t:token(lone[1]), t:token(lone[2]), t:token(lone[3]) }
out(res)
]])
    for i = 1, 9 do assert.is_true(r.cases[i].back, "case " .. i) end
    assert.are.same({ "a", "\255", "b" }, r.lone)
  end)

  describe("on 2.2 MB of mixed text", function()
    local dir, r
    setup(function()
      dir = support.tmpdir()
      r = child(([[
local mixed = require "mixed_text"
local text = mixed.generate(2.2e6)
local f = assert(io.open(%q, "wb")); f:write(text); f:close()
local a = tokenizer.load("data/llama3/tokenizer.model")
local b = tokenizer.load("data/llama3/tokenizer.json")
local ia, na = a:encode_cdata(text)
local ib, nb = b:encode_cdata(text)
local same, first = na == nb, nil
for i = 0, math.min(na, nb) - 1 do
  if ia[i] ~= ib[i] then same, first = false, i; break end
end
local g = assert(io.open(%q, "wb"))
local buf = {}
for i = 0, na - 1 do buf[#buf + 1] = tostring(ia[i]) end
g:write(table.concat(buf, "\n"), "\n"); g:close()
out({ bytes = #text, tokens = na, forms_same = same, first = first, roundtrip = a:decode_cdata(ia, na) == text })
]]):format(dir .. "/mixed.txt", dir .. "/ours.ids"))
    end)
    teardown(function() support.cleanup() end)

    it("is at least 2 MB and gives both file forms the same ids", function()
      assert.is_true(r.bytes >= 2e6)
      assert.is_true(r.forms_same, "first difference at token " .. tostring(r.first))
    end)

    it("decodes back to the very same bytes", function()
      assert.is_true(r.roundtrip)
    end)

    it("gives the ids of the reference JavaScript encoder", function()
      if not support.exists("data/llama3/llama3-tokenizer-js/bundle/llama3-tokenizer-with-baked-data.js") then
        pending("the reference encoder is missing: run `make data-llama3`")
        return
      end
      if support.sh("command -v node").code ~= 0 then
        pending("node is not installed: the comparison with the reference JavaScript encoder needs it")
        return
      end
      local res = support.sh(("node %s encode %s %s"):format(PEER, support.quote(dir .. "/mixed.txt"),
        support.quote(dir .. "/js.ids")))
      assert.are.equal(0, res.code, res.stderr)
      local ours, theirs = support.read(dir .. "/ours.ids"), support.read(dir .. "/js.ids")
      if ours ~= theirs then
        local a, b = {}, {}
        for x in ours:gmatch("%d+") do a[#a + 1] = x end
        for x in theirs:gmatch("%d+") do b[#b + 1] = x end
        local i = 1
        while a[i] == b[i] do i = i + 1 end
        error(("ids differ from the reference at token %d of %d/%d: ours %s, reference %s"):format(
          i, #a, #b, table.concat({ unpack(a, math.max(1, i - 3), i + 3) }, " "),
          table.concat({ unpack(b, math.max(1, i - 3), i + 3) }, " ")))
      end
      assert.are.equal(r.tokens, select(2, ours:gsub("\n", "")))
    end)
  end)
end)
