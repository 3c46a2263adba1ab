-- lua/moonspeed/tokenizer.lua — tokenizers as Lua objects, through LuaJIT's FFI.
--
--   local tokenizer = require "moonspeed.tokenizer"
--   local tok = tokenizer.load("data/llama3/tokenizer.model")  -- or tokenizer.json, or "bytes"
--   local ids = tok:encode("Hello world")        -- { 9906, 1917 }
--   local text = tok:decode(ids)                  -- "Hello world"
--   print(tok.id, tok.vocab_size, tok.bos, tok.eos)
--   tok:free()
--
-- encode(text, opts) takes opts.bos, opts.eos (add those ids) and opts.specials
-- (recognise "<|eot_id|>" and the other special-token names in the text; by
-- default they are plain text). encode_cdata / decode_cdata skip the Lua tables
-- for large inputs. tokenize(inputs, out_dir, opts) prepares a corpus into
-- train/val shards (ms_tokenize_files).

local ffi = require "ffi"
local engine = require "moonspeed.engine"

local C = engine.C
local M = {}

local ENCODE_BOS, ENCODE_EOS, ENCODE_SPECIALS = 1, 2, 4

local function fail(op)
  error(("%s failed: %s"):format(op, engine.last_error()), 3)
end

local Tokenizer = {}
Tokenizer.__index = Tokenizer
Tokenizer.__tostring = function(t)
  return ("tokenizer %s (%s, %d tokens)"):format(t.id, t.path, t.vocab_size)
end

-- Loads a tokenizer: a tokenizer.model, a tokenizer.json, or "bytes".
function M.load(path)
  if type(path) ~= "string" or path == "" then error("tokenizer.load: expected a path or \"bytes\"", 2) end
  local out = ffi.new("ms_tokenizer *[1]")
  if C.ms_tokenizer_load(path, out) ~= 0 then
    error(engine.last_error(), 2)
  end
  local h = ffi.gc(out[0], C.ms_tokenizer_free)
  return setmetatable({
    h = h, path = path,
    id = ffi.string(C.ms_tokenizer_id(h)),
    vocab_size = C.ms_tokenizer_vocab_size(h),
    bos = C.ms_tokenizer_bos(h),
    eos = C.ms_tokenizer_eos(h),
  }, Tokenizer)
end

function Tokenizer:free()
  if self.h then
    C.ms_tokenizer_free(ffi.gc(self.h, nil))
    self.h = nil
  end
end

local function handle(t)
  if not t.h then error("tokenizer: used after free()", 3) end
  return t.h
end

local function flags(opts)
  opts = opts or {}
  return (opts.bos and ENCODE_BOS or 0) + (opts.eos and ENCODE_EOS or 0) + (opts.specials and ENCODE_SPECIALS or 0)
end

-- Ids of text as an int32_t cdata array and its length.
function Tokenizer:encode_cdata(text, opts)
  if type(text) ~= "string" then error("encode: text must be a string", 2) end
  local h = handle(self)
  local cap = #text + 2
  local buf = ffi.new("int32_t[?]", cap)
  local n = ffi.new("int64_t[1]")
  if C.ms_tokenizer_encode(h, text, #text, flags(opts), buf, cap, n) ~= 0 then fail("ms_tokenizer_encode") end
  return buf, tonumber(n[0])
end

-- Ids of text as a Lua list.
function Tokenizer:encode(text, opts)
  local buf, n = self:encode_cdata(text, opts)
  local ids = {}
  for i = 0, n - 1 do ids[i + 1] = buf[i] end
  return ids
end

-- Text of n ids in an int32_t cdata array.
function Tokenizer:decode_cdata(buf, n)
  local h = handle(self)
  local cap = ffi.new("int64_t[1]")
  if C.ms_tokenizer_decode(h, buf, n, nil, 0, cap) ~= 0 then fail("ms_tokenizer_decode") end
  local out = ffi.new("char[?]", math.max(1, tonumber(cap[0])))
  local got = ffi.new("int64_t[1]")
  if C.ms_tokenizer_decode(h, buf, n, out, cap[0], got) ~= 0 then fail("ms_tokenizer_decode") end
  return ffi.string(out, got[0])
end

-- Text of a Lua list of ids.
function Tokenizer:decode(ids)
  if type(ids) ~= "table" then error("decode: ids must be a list of integers", 2) end
  local buf = ffi.new("int32_t[?]", math.max(1, #ids))
  for i, id in ipairs(ids) do
    if type(id) ~= "number" or id ~= math.floor(id) then
      error(("decode: id %d is %s, not an integer"):format(i, tostring(id)), 2)
    end
    buf[i - 1] = id
  end
  return self:decode_cdata(buf, #ids)
end

-- Text of generated ids: the special tokens (BOS, EOS ...) and ids beyond the
-- vocabulary (a model may have more rows than the tokenizer has tokens) left out.
function Tokenizer:decode_text(buf, n)
  local keep, k = ffi.new("int32_t[?]", math.max(1, n)), 0
  for i = 0, n - 1 do -- the special tokens follow the ordinary ones, BOS first
    if buf[i] >= 0 and buf[i] < self.bos then keep[k] = buf[i]; k = k + 1 end
  end
  return self:decode_cdata(keep, k)
end

-- The bytes of one token (special tokens: their names).
function Tokenizer:token(id)
  local p, n = ffi.new("const char *[1]"), ffi.new("int32_t[1]")
  if C.ms_tokenizer_token(handle(self), id, p, n) ~= 0 then fail("ms_tokenizer_token") end
  return ffi.string(p[0], n[0])
end

-- The id of a special token by name ("<|eot_id|>"), or nil.
function Tokenizer:special(name)
  local id = C.ms_tokenizer_special(handle(self), name)
  return id >= 0 and id or nil
end

-- Tokenizes files and directories into out_dir/{train,val}-NNNNN.bin.
-- opts: val_fraction, shard_tokens, threads, progress (bool). Returns a report table.
function Tokenizer:tokenize(inputs, out_dir, opts)
  opts = opts or {}
  local n = #inputs
  local paths = ffi.new("const char *[?]", n)
  for i, p in ipairs(inputs) do paths[i - 1] = p end
  local o = ffi.new("ms_tokenize_options")
  o.val_fraction = opts.val_fraction or 0
  o.shard_tokens = opts.shard_tokens or 0
  o.threads = opts.threads or 0
  o.progress = opts.progress and 1 or 0
  local rep = ffi.new("ms_tokenize_report")
  local st = C.ms_tokenize_files(handle(self), paths, n, out_dir, o, rep)
  local _ = inputs -- keep the path strings alive through the call
  if st ~= 0 then error(engine.last_error(), 2) end
  return {
    files = tonumber(rep.files), documents = tonumber(rep.documents), bytes = tonumber(rep.bytes),
    train_tokens = tonumber(rep.train_tokens), val_tokens = tonumber(rep.val_tokens),
    train_shards = rep.train_shards, val_shards = rep.val_shards, seconds = rep.seconds,
  }
end

---------------------------------------------------------------------------
-- Recipes: data.tokenizer is "bytes" or a path
---------------------------------------------------------------------------

local cache = {}

-- The tokenizer a recipe names, loaded once per path.
function M.for_recipe(r)
  local path = r.data.tokenizer
  if not cache[path] then
    local ok, t = pcall(M.load, path)
    if not ok then error(("data.tokenizer = %q: %s"):format(path, tostring(t)), 0) end
    cache[path] = t
  end
  return cache[path]
end

-- Checks data.tokenizer against model.vocab_size and against the headers of
-- data.train and data.val; returns the id the engine must find in the shards.
function M.recipe_id(r)
  local t = M.for_recipe(r)
  local name = ("data.tokenizer = %q (%s, %d tokens)"):format(r.data.tokenizer, t.id, t.vocab_size)
  if r.model.vocab_size < t.vocab_size then
    error(("model.vocab_size = %d is smaller than the vocabulary of %s; set model.vocab_size = %d")
      :format(r.model.vocab_size, name, t.vocab_size), 0)
  end
  for _, k in ipairs({ "train", "val" }) do
    local info = engine.shard_info(r.data[k]) -- a missing shard is the engine's to report
    if info and info.tokenizer ~= t.id then
      error(("data.%s = %q was made by tokenizer %s (%d tokens), but %s; tokenize the text again with it "
        .. "(moonspeed tokenize --tokenizer %s ...) or set data.tokenizer to the tokenizer that made the shard")
        :format(k, r.data[k], info.tokenizer, info.vocab_size, name, r.data.tokenizer), 0)
    end
  end
  return t.id
end

M.Tokenizer = Tokenizer
return M
