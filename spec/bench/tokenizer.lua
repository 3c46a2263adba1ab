-- spec/bench/tokenizer.lua — tokenizer throughput: moonspeed's Llama 3 BPE on
-- one core and through `tokenize` on 1 and N threads, next to the reference
-- JavaScript encoder (npm's llama3-tokenizer-js under node) on the same text.
--
--   make bench-tokenizer          (or: luajit spec/bench/tokenizer.lua [THREADS])
--
-- Texts: the mixed text of the specs (spec/lua/mixed_text.lua, 2.2 MB: prose,
-- code, CJK, emoji, Arabic, odd spaces, digit runs) and the KJV (English prose).
-- Single-core figures are the best of several in-process ms_tokenizer_encode
-- calls; the threaded ones are whole `moonspeed tokenize` runs (read, encode,
-- write shards) over 8 copies of the mixed text. MB are 10^6 bytes of input.

package.path = "lua/?.lua;build/lua/?.lua;spec/lua/?.lua;" .. package.path
local tokenizer = require "moonspeed.tokenizer"
local sys = require "moonspeed.sys"
local mixed = require "mixed_text"

local MODEL = "data/llama3/tokenizer.model"
local threads = tonumber(arg[1]) or sys.nproc()

local function read(path)
  local f = assert(io.open(path, "rb"), path .. " is missing: run `make data data-llama3`")
  local s = f:read("*a")
  f:close()
  return s
end

local tok = tokenizer.load(MODEL)
local tmp = io.popen("mktemp -d -t moonspeed-bench.XXXXXX"):read("*l")
local texts = {
  { name = "mixed", text = mixed.generate(2.2e6) },
  { name = "KJV", text = read("data/kjv/kjv.txt") },
}
for _, t in ipairs(texts) do
  t.path = tmp .. "/" .. t.name .. ".txt"
  local f = assert(io.open(t.path, "wb"))
  f:write(t.text)
  f:close()
end

local rows = {}
local function row(what, text, mbs, note)
  rows[#rows + 1] = ("| %-44s | %-5s | %8.1f | %s |"):format(what, text, mbs, note or "")
  io.stderr:write(rows[#rows], "\n")
end

-- one core, in process
for _, t in ipairs(texts) do
  local best = math.huge
  local n
  for _ = 1, 5 do
    local t0 = sys.now()
    local _, k = tok:encode_cdata(t.text)
    best = math.min(best, sys.now() - t0)
    n = k
  end
  row("moonspeed, 1 core (ms_tokenizer_encode)", t.name, #t.text / best / 1e6,
    ("%d tokens, %.2f bytes/token"):format(n, #t.text / n))
end

-- whole `tokenize` runs over 8 copies of the mixed text
local copies = {}
for i = 1, 8 do
  copies[i] = ("%s/copy%d.txt"):format(tmp, i)
  os.execute(("cp %s %s"):format(texts[1].path, copies[i]))
end
local counts = { 1 }
if threads > 1 then counts[2] = threads end
for _, n in ipairs(counts) do
  local best = math.huge
  local bytes
  for run = 1, 3 do
    local out = ("%s/out-%d-%d"):format(tmp, n, run)
    os.execute("mkdir -p " .. out)
    local rep = tok:tokenize(copies, out, { threads = n, val_fraction = 0.01 })
    best = math.min(best, rep.seconds)
    bytes = rep.bytes
    os.execute("rm -rf " .. out)
  end
  row(("moonspeed tokenize, %d thread%s (files to shards)"):format(n, n == 1 and "" or "s"), "mixed",
    bytes / best / 1e6, ("%.1f MB in %.2f s"):format(bytes / 1e6, best))
end

-- the reference JavaScript encoder
for _, t in ipairs(texts) do
  local p = io.popen(("node spec/peers/llama3_tokenizer.mjs bench %s 3 2>&1"):format(t.path))
  local out = p:read("*a")
  p:close()
  local mbs = tonumber(out:match('"mb_per_s":([%d.eE+-]+)'))
  if mbs then
    row("llama3-tokenizer-js 1.2.0 (node " .. (io.popen("node --version"):read("*l") or "?") .. "), 1 core",
      t.name, mbs, "")
  else
    io.stderr:write("reference encoder failed: ", out, "\n")
  end
end
os.execute("rm -rf " .. tmp)

local cpu = (read("/proc/cpuinfo"):match("model name%s*:%s*([^\n]+)") or "?")
print(("tokenizer throughput on %s (%d cores used at most)\n"):format(cpu, threads))
print("| what | text | MB/s | |")
print("| --- | --- | ---: | --- |")
for _, r in ipairs(rows) do print(r) end
