-- spec/lua/tokenize_spec.lua — moonspeed encode, decode and tokenize end to end,
-- and recipes whose data.tokenizer is a path. The byte-level tokenizer needs no
-- download; the Llama 3 parts are pending without `make data-llama3`.

local support = require "support"

local MODEL = "data/llama3/tokenizer.model"

local function have_llama3() return support.exists(MODEL) end

-- The tokens of a shard file (after its 64-byte header) as a Lua list.
local function shard_tokens(path)
  local s = assert(support.read(path), path)
  local t = {}
  for i = 65, #s, 4 do
    local a, b, c, d = s:byte(i, i + 3)
    t[#t + 1] = a + 256 * (b + 256 * (c + 256 * d))
  end
  return t, s:sub(33, 64):gsub("%z+$", "")
end

local function bytes_of(s)
  local t = {}
  for i = 1, #s do t[i] = s:byte(i) end
  return t
end

local function concat(...)
  local out = {}
  for _, l in ipairs({ ... }) do for _, x in ipairs(l) do out[#out + 1] = x end end
  return out
end

describe("moonspeed encode and decode", function()
  assert.is_nil(support.missing_build())

  it("print byte-level ids one per line or as JSON, and decode them back", function()
    local r = support.moonspeed({ "encode", "--tokenizer", "bytes", "--bos", "--eos" }, { stdin = "hé" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("256\n104\n195\n169\n257\n", r.stdout)
    r = support.moonspeed({ "encode", "--tokenizer", "bytes", "--json", "-" }, { stdin = "ok" })
    assert.are.equal("[111, 107]\n", r.stdout)
    r = support.moonspeed({ "decode", "--tokenizer", "bytes" }, { stdin = "[104, 195,\n 169]" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("hé", r.stdout)
  end)

  it("name the line of a bad id and the tokenizer's range", function()
    local r = support.moonspeed({ "decode", "--tokenizer", "bytes" }, { stdin = "104\n\n300\n" })
    assert.are.equal(1, r.code)
    assert.are.equal('moonspeed: standard input line 3: "300" is not a token id of tokenizer bytes (0..257)\n', r.stderr)
    r = support.moonspeed({ "decode", "--tokenizer", "bytes" }, { stdin = "[1, x]" })
    assert.are.equal('moonspeed: standard input line 1: "x" is not a token id of tokenizer bytes (0..257)\n', r.stderr)
    r = support.moonspeed({ "encode" }, { stdin = "x" })
    assert.are.equal(2, r.code)
    assert.matches("missing %-%-tokenizer PATH", r.stderr)
  end)

  it("give Llama 3's ids and text", function()
    if not have_llama3() then pending("run `make data-llama3`") return end
    local r = support.moonspeed({ "encode", "--tokenizer", MODEL }, { stdin = "Hello world" })
    assert.are.equal("9906\n1917\n", r.stdout)
    r = support.moonspeed({ "encode", "--tokenizer", "data/llama3/tokenizer.json", "--json", "--specials", "--bos" },
      { stdin = "Hi<|eot_id|>" })
    assert.are.equal("[128000, 13347, 128009]\n", r.stdout)
    r = support.moonspeed({ "decode", "--tokenizer", MODEL }, { stdin = "791\n4062\n14198\n39935\n128001\n" })
    assert.are.equal("The quick brown fox<|end_of_text|>", r.stdout)
    r = support.moonspeed({ "encode", "--tokenizer", "missing.model" }, { stdin = "x" })
    assert.are.equal("moonspeed: tokenizer missing.model: No such file or directory; run `make data-llama3` for "
      .. "Llama 3's tokenizer.model and tokenizer.json (\"bytes\" names the byte-level tokenizer)\n", r.stderr)
  end)
end)

describe("moonspeed tokenize", function()
  assert.is_nil(support.missing_build())
  local dir
  before_each(function() dir = support.tmpdir() end)
  after_each(function() support.cleanup() end)

  it("makes each document BOS ... EOS: text files, JSONL lines, directories in name order", function()
    os.execute("mkdir -p " .. support.quote(dir .. "/in/sub"))
    support.write(dir .. "/in/b.txt", "second file\n")
    support.write(dir .. "/in/a.txt", "hello\r\nworld\n")
    support.write(dir .. "/in/.hidden", "never")
    support.write(dir .. "/in/sub/c.jsonl",
      '{"id": 7, "text": "caf\\u00e9 \\ud83d\\ude00\\n\\"q\\"", "meta": {"text": "no"}}\n\n{"text": ""}\n{"text":"x"}\n')
    local r = support.moonspeed({ "tokenize", "--tokenizer", "bytes", "--out", dir .. "/out", "--val-fraction", "0",
      dir .. "/in" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^tokenized 3 files %(4 documents, [%d.]+ MB%) in [%d.]+ s: 48 train tokens in 1 shard, 0 val "
      .. "tokens in 0 shards %-> " .. dir:gsub("%p", "%%%0") .. "/out\n", r.stdout)
    assert.matches('recipe: data = { tokenizer = "bytes", train = ".*/out/train%-00000%.bin", val = ".*/out/val%-00000%.bin" }, '
      .. "model = { vocab_size = 258 }", r.stdout)
    assert.matches("tokenize %[#+%] 100%%  [%d.]+ MB/s  4 documents  48 tokens", r.stderr)
    assert.are.same({ "train-00000.bin" }, support.ls(dir .. "/out"))
    local toks, id = shard_tokens(dir .. "/out/train-00000.bin")
    assert.are.equal("bytes", id)
    assert.are.same(concat({ 256 }, bytes_of("hello\r\nworld\n"), { 257, 256 }, bytes_of("second file\n"), { 257, 256 },
      bytes_of('café 😀\n"q"'), { 257, 256 }, bytes_of("x"), { 257 }), toks)
  end)

  it("holds out whole blocks for validation, the same whatever the thread count, and cuts shards", function()
    local lines = {}
    for i = 1, 40000 do lines[i] = ("line %d of the corpus"):format(i) end
    local text = table.concat(lines, "\n") .. "\n"
    support.write(dir .. "/big.txt", text)
    local function run(out, extra)
      local args = { "tokenize", "--tokenizer", "bytes", "--out", dir .. "/" .. out, "--val-fraction", "0.25", dir .. "/big.txt" }
      for _, a in ipairs(extra or {}) do args[#args + 1] = a end
      local r = support.moonspeed(args)
      assert.are.equal(0, r.code, r.stderr)
      return r
    end
    run("one", { "--threads", "1" })
    run("two", { "--threads", "2" })
    run("cut", { "--shard-tokens", "100000" })
    for _, f in ipairs({ "train-00000.bin", "val-00000.bin" }) do
      assert.are.equal(support.read(dir .. "/one/" .. f), support.read(dir .. "/two/" .. f))
    end
    local train, val = shard_tokens(dir .. "/one/train-00000.bin"), shard_tokens(dir .. "/one/val-00000.bin")
    local function count(t, id) local n = 0 for _, x in ipairs(t) do if x == id then n = n + 1 end end return n end
    -- every byte lands in exactly one split; val is about a quarter, in whole blocks
    assert.are.equal(#text, #train + #val - 2 * count(train, 256) - 2 * count(val, 256))
    assert.are.equal(count(val, 256), count(val, 257))
    assert.is_true(count(val, 256) >= 10)
    local share = (#val - 2 * count(val, 256)) / #text
    assert.is_true(share > 0.2 and share < 0.3, "val share " .. share)
    -- a held-out block starts after a line end
    assert.are.equal(256, val[1])
    assert.matches("^line %d+ of the corpus\n", string.char(unpack(val, 2, 40)))
    -- the same tokens, cut into shards of 100000
    local want = {}
    for i = 0, math.ceil(#train / 100000) - 1 do want[#want + 1] = ("train-%05d.bin"):format(i) end
    for i = 0, math.ceil(#val / 100000) - 1 do want[#want + 1] = ("val-%05d.bin"):format(i) end
    assert.is_true(#want >= 8)
    assert.are.same(want, support.ls(dir .. "/cut"))
    local joined = {}
    for i = 0, math.ceil(#train / 100000) - 1 do
      local part = shard_tokens(("%s/cut/train-%05d.bin"):format(dir, i))
      assert.is_true(#part == 100000 or (i + 1) * 100000 >= #train)
      for _, x in ipairs(part) do joined[#joined + 1] = x end
    end
    assert.are.same(train, joined)
    -- a run reads every cut shard through a pattern
    local tiny = "spec/fixtures/recipes/tiny.lua"
    local r = support.moonspeed({ "run", tiny, "data.train=" .. dir .. "/cut/train-*.bin",
      "data.val=" .. dir .. "/cut/val-*.bin", "train.steps=2", "log.sample_tokens=0", "--run-dir", dir .. "/run" })
    assert.are.equal(0, r.code, r.stderr)
    assert.is_true(support.exists(dir .. "/run/model.bin"))
    r = support.moonspeed({ "run", tiny, "data.train=" .. dir .. "/cut/nothing-*.bin", "train.steps=2",
      "--run-dir", dir .. "/run2" })
    assert.are.equal(1, r.code)
    assert.matches("the pattern matches no file", r.stderr)
  end)

  it("decodes JSON escapes (\\uXXXX, surrogate pairs) to the very text a plain file holds", function()
    local text = require("mixed_text").generate(3e5, 7)
    -- JSON with every non-ASCII character escaped, as Python's json.dumps writes it
    local out, i = { '{"meta": {"text": 1}, "text": "' }, 1
    local esc = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    while i <= #text do
      local c = text:byte(i)
      local len = c < 0x80 and 1 or c < 0xE0 and 2 or c < 0xF0 and 3 or 4
      local cp = len == 1 and c or c % (2 ^ (7 - len))
      for k = 1, len - 1 do cp = cp * 64 + text:byte(i + k) % 64 end
      local ch = text:sub(i, i)
      if len == 1 and esc[ch] then out[#out + 1] = esc[ch]
      elseif len == 1 and c < 0x20 then out[#out + 1] = ("\\u%04x"):format(c)
      elseif len == 1 then out[#out + 1] = ch
      elseif cp < 0x10000 then out[#out + 1] = ("\\u%04x"):format(cp)
      else
        cp = cp - 0x10000
        out[#out + 1] = ("\\u%04x\\u%04x"):format(0xD800 + math.floor(cp / 1024), 0xDC00 + cp % 1024)
      end
      i = i + len
    end
    out[#out + 1] = '"}\n'
    support.write(dir .. "/doc.jsonl", table.concat(out))
    support.write(dir .. "/doc.txt", text)
    for _, f in ipairs({ "doc.jsonl", "doc.txt" }) do
      local r = support.moonspeed({ "tokenize", "--tokenizer", "bytes", "--out", dir .. "/" .. f .. ".out",
        "--val-fraction", "0.2", dir .. "/" .. f })
      assert.are.equal(0, r.code, r.stderr)
    end
    for _, shard in ipairs({ "train-00000.bin", "val-00000.bin" }) do
      local a = support.read(dir .. "/doc.jsonl.out/" .. shard)
      assert.is_true(#a > 1000)
      assert.are.equal(support.read(dir .. "/doc.txt.out/" .. shard), a)
    end
  end)

  it("refuses bad input with the file and line, and leaves no shards behind", function()
    support.write(dir .. "/ok.txt", "fine\n")
    support.write(dir .. "/bad.jsonl", '{"text": "a"}\n{"title": "b", "body": "c"}\n')
    local r = support.moonspeed({ "tokenize", "--tokenizer", "bytes", "--out", dir .. "/out", dir .. "/ok.txt",
      dir .. "/bad.jsonl" })
    assert.are.equal(1, r.code)
    assert.matches('moonspeed: tokenize: .*/bad%.jsonl line 2: no string field "text" %(fields: title, body%); each '
      .. 'line needs the document in "text"\n$', r.stderr)
    assert.are.same({}, support.ls(dir .. "/out"))
    support.write(dir .. "/bad2.jsonl", '{"text": "a"\n')
    r = support.moonspeed({ "tokenize", "--tokenizer", "bytes", "--out", dir .. "/out", dir .. "/bad2.jsonl" })
    assert.matches('bad2%.jsonl line 1: not a JSON object; a JSONL file holds one object per line, with the '
      .. 'document in its "text" field\n$', r.stderr)
    r = support.moonspeed({ "tokenize", "--tokenizer", "bytes", "--out", dir .. "/out", dir .. "/missing.txt" })
    assert.matches("input .*/missing%.txt does not exist\n$", r.stderr)
    r = support.moonspeed({ "tokenize", "--tokenizer", "bytes", "--out", dir .. "/out", "--val-fraction", "1", dir .. "/ok.txt" })
    assert.are.equal(2, r.code)
    assert.matches("%-%-val%-fraction must be in %[0, 1%)", r.stderr)
    r = support.moonspeed({ "tokenize", "--tokenizer", "bytes", "--out", dir .. "/out", dir .. "/ok.txt" })
    assert.are.equal(0, r.code, r.stderr)
    r = support.moonspeed({ "tokenize", "--tokenizer", "bytes", "--out", dir .. "/out", dir .. "/ok.txt" })
    assert.are.equal(1, r.code)
    assert.matches("already holds token shards %(train%-00000%.bin%); choose another output directory or remove them",
      r.stderr)
  end)

  it("cuts Llama 3 text where no token crosses: the shard is the whole text's encoding", function()
    if not have_llama3() then pending("run `make data-llama3`") return end
    local r = support.moonspeed({ "tokenize", "--tokenizer", MODEL, "--out", dir .. "/out", "--val-fraction", "0",
      "data/kjv/kjv.txt" })
    assert.are.equal(0, r.code, r.stderr)
    local c = support.luajit(([[
      local tk = require "moonspeed.tokenizer"
      local ffi = require "ffi"
      local t = tk.load(%q)
      local text = io.open("data/kjv/kjv.txt", "rb"):read("*a")
      local ids, n = t:encode_cdata(text, { bos = true, eos = true })
      local s = io.open(%q, "rb"):read("*a")
      local got = ffi.cast("const uint32_t *", s) + 16
      local same = (#s - 64) / 4 == n
      for i = 0, n - 1 do if not same then break end same = got[i] == ids[i] end
      print(same, n, s:sub(33, 64):match("^[^%%z]*"))
    ]]):format(MODEL, dir .. "/out/train-00000.bin"))
    assert.matches("^true%s+%d+%s+llama3%-82e9d31979e92ab929cd5444\n$", c.stdout, c.stderr)
  end)
end)

describe("a recipe with data.tokenizer = PATH", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())
  local TINY = "spec/fixtures/recipes/tiny.lua"

  it("must have room for the tokenizer's vocabulary and shards it made", function()
    if not have_llama3() then pending("run `make data-llama3`") return end
    local dir = support.tmpdir()
    local r = support.moonspeed({ "run", TINY, "data.tokenizer=" .. MODEL, "--run-dir", dir .. "/run" })
    assert.are.equal(1, r.code)
    assert.are.equal("moonspeed: model.vocab_size = 258 is smaller than the vocabulary of data.tokenizer = "
      .. '"data/llama3/tokenizer.model" (llama3-82e9d31979e92ab929cd5444, 128256 tokens); set model.vocab_size = 128256\n',
      r.stderr)
    r = support.moonspeed({ "run", TINY, "data.tokenizer=" .. MODEL, "model.vocab_size=128256", "--run-dir", dir .. "/run" })
    assert.are.equal(1, r.code)
    assert.are.equal('moonspeed: data.train = "data/kjv/train.bin" was made by tokenizer bytes (258 tokens), but '
      .. 'data.tokenizer = "data/llama3/tokenizer.model" (llama3-82e9d31979e92ab929cd5444, 128256 tokens); tokenize '
      .. "the text again with it (moonspeed tokenize --tokenizer data/llama3/tokenizer.model ...) or set "
      .. "data.tokenizer to the tokenizer that made the shard\n", r.stderr)
    assert.are.same({}, support.ls(dir .. "/run"))
    support.cleanup()
  end)

  it("trains on shards of that tokenizer and samples text through it", function()
    if not have_llama3() then pending("run `make data-llama3`") return end
    local dir = support.tmpdir()
    local r = support.moonspeed({ "tokenize", "--tokenizer", "data/llama3/tokenizer.json", "--out", dir .. "/kjv",
      "data/kjv/kjv.txt" })
    assert.are.equal(0, r.code, r.stderr)
    r = support.moonspeed({ "run", TINY, "data.tokenizer=" .. MODEL, "model.vocab_size=128256",
      "data.train=" .. dir .. "/kjv/train-00000.bin", "data.val=" .. dir .. "/kjv/val-00000.bin", "train.steps=2",
      "log.sample_tokens=8", "--run-dir", dir .. "/run" })
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("sample:\nAnd God said", r.stdout)
    support.cleanup()
  end)
end)
