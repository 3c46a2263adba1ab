-- spec/lua/mixed_text.lua — a deterministic corpus of mixed text for the
-- tokenizer specs and benchmark: English prose (the KJV), source code of this
-- repository, CJK, emoji (with ZWJ sequences, skin tones, flags), Arabic with
-- diacritics, other scripts, \r\n and tabs, unusual Unicode spaces, long digit
-- runs, contractions in any case, long runs of one character, ASCII noise and
-- special-token names written as plain text, interleaved paragraph by
-- paragraph so that every kind meets every other.
--
--   local mixed = require "mixed_text"
--   local text = mixed.generate(2.2e6)     -- at least that many bytes
--
-- Left out on purpose, because the JavaScript reference encoder differs there
-- from Meta's tiktoken and Hugging Face's tokenizers (which PCRE2 follows):
-- U+0085 and U+FEFF (JavaScript's \s disagrees with Unicode's White_Space) and
-- U+017F after an apostrophe (JavaScript spells (?i:'s) as '[sS]).

local M = {}

local function rng(seed)
  local s = seed
  return function(n) -- 0 .. n-1
    s = (s * 1103515245 + 12345) % 2147483648
    return math.floor(s / 65536) % n
  end
end

local function utf8(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
    0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end
M.utf8 = utf8

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Source files of the repository, in a fixed order.
local function sources()
  local out = {}
  local p = io.popen("find engine kernels lua spec -type f \\( -name '*.c' -o -name '*.h' -o -name '*.lua' \\) | LC_ALL=C sort")
  for path in p:lines() do out[#out + 1] = read(path) or "" end
  p:close()
  out[#out + 1] = read("Makefile") or ""
  return table.concat(out, "\n")
end

local function lines_of(s)
  local t = {}
  for l in (s .. "\n"):gmatch("([^\n]*)\n") do t[#t + 1] = l end
  return t
end

local SPACES = { 0x00A0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
  0x2009, 0x200A, 0x202F, 0x205F, 0x3000, 0x2028, 0x2029 }
local CONTRACTIONS = { "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'rE" }
local WORDS = { "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Hello", "world", "don", "it",
  "they", "we", "I", "You", "HTTP", "naïve", "café", "Straße", "Ωmega", "résumé", "coöperate", "x", "a" }
local SPECIAL_NAMES = { "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
  "<|reserved_special_token_7|>", "<|", "|>" }

function M.generate(min_bytes, seed)
  local r = rng(seed or 20240418)
  local function pick(t) return t[r(#t) + 1] end
  local function range(a, b) return utf8(a + r(b - a + 1)) end
  local kjv = lines_of(read("data/kjv/kjv.txt") or "In the beginning God created the heaven and the earth.")
  local code = lines_of(sources())
  local ki, ci = 1, 1
  local out, size = {}, 0
  local function put(s) out[#out + 1] = s; size = size + #s end
  local function eol() return r(3) == 0 and "\r\n" or "\n" end

  local kinds = {
    function() -- English prose
      local e = eol()
      for _ = 1, 1 + r(20) do put(kjv[ki] .. e); ki = ki % #kjv + 1 end
    end,
    function() -- source code
      for _ = 1, 5 + r(40) do put(code[ci] .. "\n"); ci = ci % #code + 1 end
    end,
    function() -- CJK
      for _ = 1, 5 + r(60) do
        local k = r(10)
        if k < 4 then put(range(0x4E00, 0x9FA5))
        elseif k < 5 then put(range(0x3041, 0x3093))
        elseif k < 6 then put(range(0x30A1, 0x30F6))
        elseif k < 8 then put(range(0xAC00, 0xD7A3))
        elseif k < 9 then put(utf8(pick({ 0x3001, 0x3002, 0x300C, 0x300D, 0xFF01, 0xFF1F, 0xFF0C })))
        else put(pick({ " ", "GPU", "2024年", " AI ", "１２３", "\n" })) end
      end
      put(eol())
    end,
    function() -- emoji
      for _ = 1, 3 + r(30) do
        local k = r(12)
        if k < 4 then put(range(0x1F600, 0x1F64F))
        elseif k < 6 then put(range(0x1F300, 0x1F5FF))
        elseif k < 7 then put(range(0x1F680, 0x1F6C5))
        elseif k < 8 then put(utf8(0x1F468) .. utf8(0x200D) .. utf8(0x1F469) .. utf8(0x200D) .. utf8(0x1F467))
        elseif k < 9 then put(utf8(0x1F44D) .. range(0x1F3FB, 0x1F3FF))
        elseif k < 10 then put(range(0x1F1E6, 0x1F1FF) .. range(0x1F1E6, 0x1F1FF))
        elseif k < 11 then put(utf8(0x2764) .. utf8(0xFE0F))
        else put(" " .. pick(WORDS) .. pick({ "", " ", "!", "..." })) end
      end
      put(eol())
    end,
    function() -- Arabic
      for _ = 1, 3 + r(25) do
        for _ = 1, 2 + r(7) do
          put(r(2) == 0 and range(0x0621, 0x063A) or range(0x0641, 0x064A))
          if r(4) == 0 then put(range(0x064B, 0x0652)) end
        end
        local k = r(10)
        if k == 0 then put(" " .. range(0x0660, 0x0669) .. range(0x0660, 0x0669))
        elseif k == 1 then put(utf8(0x060C))
        elseif k == 2 then put(utf8(0x061F)) end
        put(" ")
      end
      put(eol())
    end,
    function() -- unusual spaces, tabs, trailing blanks
      for _ = 1, 3 + r(30) do
        put(pick(WORDS))
        local k = r(8)
        if k < 3 then put(utf8(pick(SPACES)))
        elseif k < 4 then put("\t")
        elseif k < 5 then put(string.rep(" ", 2 + r(6)))
        elseif k < 6 then put(" \t ")
        elseif k < 7 then put(utf8(pick(SPACES)) .. utf8(pick(SPACES)))
        else put(" ") end
      end
      put(pick({ "  \n", "\t\r\n", "\n\n", " \r\n\r\n", "\n \n", "\n\t" }))
    end,
    function() -- digits
      for _ = 1, 2 + r(12) do
        local k = r(9)
        if k < 3 then
          local d = {}
          for i = 1, 1 + r(80) do d[i] = string.char(48 + r(10)) end
          put(table.concat(d))
        elseif k < 4 then put(("%d.%d"):format(r(100000), r(100000)))
        elseif k < 5 then put(("%d,%03d,%03d"):format(r(1000), r(1000), r(1000)))
        elseif k < 6 then put(pick(WORDS) .. r(1000) .. pick(WORDS))
        elseif k < 7 then put(range(0x0966, 0x096F) .. range(0x0966, 0x096F) .. range(0x0966, 0x096F))
        elseif k < 8 then put(range(0xFF10, 0xFF19) .. range(0xFF10, 0xFF19) .. utf8(0x00B2) .. utf8(0x216B))
        else put(("+1 (%03d) %03d-%04d"):format(r(1000), r(1000), r(10000))) end
        put(pick({ " ", "  ", "\n", ", ", "\t" }))
      end
      put(eol())
    end,
    function() -- contractions in any case
      for _ = 1, 3 + r(15) do put(pick(WORDS) .. pick(CONTRACTIONS) .. pick({ " ", "  ", "' ", "\n" })) end
      put(eol())
    end,
    function() -- other scripts: Greek, Cyrillic, Devanagari, Thai, Hebrew, combining accents
      for _ = 1, 3 + r(20) do
        local k = r(6)
        local a, b = ({ { 0x03B1, 0x03C9 }, { 0x0410, 0x044F }, { 0x0915, 0x0939 }, { 0x0E01, 0x0E2E },
          { 0x05D0, 0x05EA }, { 0x61, 0x7A } })[k + 1][1], ({ { 0x03B1, 0x03C9 }, { 0x0410, 0x044F },
          { 0x0915, 0x0939 }, { 0x0E01, 0x0E2E }, { 0x05D0, 0x05EA }, { 0x61, 0x7A } })[k + 1][2]
        for _ = 1, 2 + r(8) do
          put(range(a, b))
          if k == 2 and r(3) == 0 then put(range(0x093E, 0x094C)) end
          if k == 5 and r(4) == 0 then put(utf8(0x0301)) end
        end
        put(pick({ " ", " ", ". ", ", ", "\n" }))
      end
      put(eol())
    end,
    function() -- long runs of one character
      local k = r(7)
      if k == 0 then put(string.rep("a", 100 + r(2000)))
      elseif k == 1 then put(string.rep(" ", 50 + r(3000)) .. "x")
      elseif k == 2 then put(string.rep("=", 100 + r(500)))
      elseif k == 3 then put(string.rep("\n", 5 + r(60)))
      elseif k == 4 then put(string.rep("ab", 100 + r(400)))
      elseif k == 5 then put(string.rep(utf8(0x4E00), 50 + r(300)))
      else put(string.rep("\t", 10 + r(100)) .. "y") end
      put(eol())
    end,
    function() -- ASCII noise
      local t = {}
      for i = 1, 20 + r(200) do t[i] = string.char(32 + r(95)) end
      put(table.concat(t) .. eol())
    end,
    function() -- special-token names, as plain text
      for _ = 1, 1 + r(4) do put(pick(WORDS) .. pick(SPECIAL_NAMES) .. pick({ "", " ", "\n" })) end
      put(eol())
    end,
  }
  -- prose and code are the bulk; every other kind shows up often
  local weights = { 14, 10, 4, 3, 3, 4, 4, 2, 3, 1, 2, 1 }
  local total = 0
  for _, w in ipairs(weights) do total = total + w end
  while size < min_bytes do
    local x, k = r(total), 1
    while x >= weights[k] do x = x - weights[k]; k = k + 1 end
    kinds[k]()
  end
  return table.concat(out)
end

return M
