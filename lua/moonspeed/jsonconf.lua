-- lua/moonspeed/jsonconf.lua — JSON configs of other tools read into recipe keys.
--
-- A reader walks a decoded config by key paths ("zero_optimization.stage"):
-- typed getters whose errors say "FILE: key.path: what; what would be right",
-- a record of every key read (entries: what it became) and of those read but
-- without effect, and the recipe layer it builds (layer, origin). DeepSpeed's
-- ds_config.json (deepspeed.lua) is read through it, and so is a Hugging Face
-- config.json, which becomes the model section here.

local json = require "moonspeed.json"
local schema = require "moonspeed.schema"

local M = {}

local function shown(v)
  if v == nil then return "(absent)" end
  if v == json.null then return "null" end
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "number" then return json.number(v) end
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end
M.shown = shown

-- A number written as a JSON number or as a decimal string ("1e8", "5e-5").
function M.as_number(v)
  if type(v) == "number" then return v end
  if type(v) == "string" and v:match("^%s*[-+]?[%d.]+[eE]?[-+]?%d*%s*$") and v:match("%d") then
    return tonumber(v)
  end
end

local Reader = {}
Reader.__index = Reader

function M.reader(cfg, file)
  return setmetatable({ cfg = cfg, file = file, seen = {}, entries = {}, warnings = {}, ignored = {},
                        layer = {}, origin = {} }, Reader)
end

function Reader:fail(path, msg) error(("%s: %s: %s"):format(self.file, path, msg), 0) end

-- The raw value at "a.b.c" (nil when absent or null); marks it read.
function Reader:raw(path)
  self.seen[path] = true
  local t = self.cfg
  for part in path:gmatch("[^.]+") do
    if type(t) ~= "table" or t == json.null then return nil end
    t = t[part]
  end
  if t == json.null then return nil end
  return t
end

-- A section (object) at path, or nil; anything else is an error.
function Reader:section(path)
  local v = self:raw(path)
  if v ~= nil and (type(v) ~= "table" or (#v > 0)) then
    self:fail(path, ("must be an object {...}, got %s"):format(shown(v)))
  end
  return v
end

-- Reads a scalar: kind "int", "number", "bool" or "string"; o.auto allows
-- "auto" (returned as "auto"); o.min, o.max, o.gt bound numbers.
function Reader:get(path, kind, o)
  o = o or {}
  local v = self:raw(path)
  if v == nil then return nil end
  if v == "auto" then
    if o.auto then return "auto" end
    self:fail(path, '"auto" is resolved only where the Hugging Face integration resolves it; write a value')
  end
  if kind == "bool" then
    if type(v) ~= "boolean" then self:fail(path, ("must be true or false, got %s"):format(shown(v))) end
    return v
  elseif kind == "string" then
    if type(v) ~= "string" then self:fail(path, ("must be a string, got %s"):format(shown(v))) end
    return v
  end
  local x = M.as_number(v)
  local what = kind == "int" and "an integer" or "a number"
  if not x or x ~= x or (kind == "int" and x ~= math.floor(x)) then
    self:fail(path, ("must be %s%s, got %s"):format(what, o.auto and ' or "auto"' or "", shown(v)))
  end
  if (o.min and x < o.min) or (o.max and x > o.max) or (o.gt and x <= o.gt) then
    local range = o.gt and ("> " .. schema.fmtnum(o.gt)) or (o.max and ("in [%s, %s]"):format(schema.fmtnum(o.min),
      schema.fmtnum(o.max))) or (">= " .. schema.fmtnum(o.min))
    self:fail(path, ("must be %s %s, got %s"):format(what, range, shown(v)))
  end
  return x
end

function M.field(to)
  return assert(schema.field_by_path[to], to)
end

-- Sets recipe key `to` from DeepSpeed key `ds` (v: a value or a function of the recipe).
function Reader:put(ds, to, v)
  if type(v) ~= "function" then
    local problem = schema.check(M.field(to), v)
    if problem then self:fail(ds, problem) end
  end
  local sec, key = to:match("^(%w+)%.(.+)$")
  if sec then
    self.layer[sec] = self.layer[sec] or {}
    self.layer[sec][key] = v
  else
    self.layer[to] = v
  end
  self.origin[to] = ("%s: %s"):format(self.file, ds)
end

function Reader:entry(kind, ds, value, to, how)
  self.entries[#self.entries + 1] = { kind = kind, ds = ds, value = value, to = to, how = how }
end

-- set: the key's value becomes `to` = v.
function Reader:set(ds, value, to, v, how)
  self:put(ds, to, v)
  self:entry("set", ds, value, to, how)
end

function Reader:ignore(ds, value, why)
  self.ignored[#self.ignored + 1] = ("%s = %s: %s"):format(ds, shown(value), why)
end

function Reader:warn(msg) self.warnings[#self.warnings + 1] = msg end

-- Decodes a JSON file; errors name the file, line and column.
function M.read_file(path)
  local text, err = require("moonspeed.sys").read_file(path)
  if not text then error(("cannot read %s"):format(err or path), 0) end
  local v, jerr = json.decode(text)
  if v == nil then
    local byte = tonumber(jerr:match("at byte (%d+)")) or 1
    local before = text:sub(1, byte - 1)
    local _, nl = before:gsub("\n", "")
    local col = byte - (before:match(".*\n()") or 1) + 1
    error(("%s:%d:%d: not valid JSON: %s"):format(path, nl + 1, col, (jerr:gsub(" at byte %d+", ""))), 0)
  end
  return v, text
end

---------------------------------------------------------------------------
-- A Hugging Face config.json as the model section
---------------------------------------------------------------------------

local HF_MODEL = {
  { "vocab_size", "vocab_size" }, { "hidden_size", "dim" }, { "num_hidden_layers", "n_layers" },
  { "num_attention_heads", "n_heads" }, { "num_key_value_heads", "n_kv_heads" }, { "intermediate_size", "ffn_dim" },
  { "max_position_embeddings", "max_seq_len" }, { "tie_word_embeddings", "tie_embeddings" },
  { "rope_theta", "rope_theta" }, { "rms_norm_eps", "norm_eps" }, { "initializer_range", "init_std" },
}
local HF_DEFAULTS = { tie_word_embeddings = false, rope_theta = 10000, rms_norm_eps = 1e-6, initializer_range = 0.02 }

-- The model section of a Hugging Face Llama config.json; returns model, entries, warnings.
function M.model_from_hf(hf, file)
  local rd = M.reader(hf, file)
  if type(hf) ~= "table" or #hf > 0 then error(("%s: a Hugging Face config is a JSON object {...}"):format(file), 0) end
  local mt = rd:get("model_type", "string")
  if mt and mt ~= "llama" and mt ~= "mistral" then
    rd:warn(("model_type = %q: moonspeed builds a Llama; the shapes below are read as Llama's"):format(mt))
  end
  for _, k in ipairs({ "attention_bias", "mlp_bias" }) do
    if rd:get(k, "bool") then rd:fail(k, "moonspeed's Llama has no biases; this model cannot be built") end
  end
  local act = rd:get("hidden_act", "string")
  if act and act ~= "silu" then rd:fail("hidden_act", ("moonspeed's MLP is SwiGLU (silu), got %q"):format(act)) end
  if rd:raw("rope_scaling") ~= nil then
    rd:warn("rope_scaling is not applied: moonspeed's RoPE is unscaled (fine for training at max_position_embeddings or less)")
  end
  local model = { name = (rd:get("_name_or_path", "string") or "hf-model"):match("([^/]+)$") }
  local entries = {}
  for _, m in ipairs(HF_MODEL) do
    local kind = (m[1] == "tie_word_embeddings") and "bool" or (m[2]:match("eps$") or m[2] == "rope_theta"
      or m[2] == "init_std") and "number" or "int"
    local v = rd:get(m[1], kind)
    if v == nil and m[1] == "num_key_value_heads" then v = rd:get("num_attention_heads", "int") end
    if v == nil then v = HF_DEFAULTS[m[1]] end
    if v == nil then rd:fail(m[1], "missing; moonspeed needs it to build the model") end
    local problem = schema.check(M.field("model." .. m[2]), v)
    if problem then rd:fail(m[1], problem) end
    model[m[2]] = v
    entries[#entries + 1] = { kind = rd.cfg[m[1]] ~= nil and "set" or "default", ds = m[1], value = rd.cfg[m[1]],
                              to = "model." .. m[2], how = rd.cfg[m[1]] == nil and "Hugging Face's default" or nil }
  end
  local hd = rd:get("head_dim", "int")
  if hd and hd * model.n_heads ~= model.dim then
    rd:fail("head_dim", ("moonspeed's head_dim is hidden_size / num_attention_heads = %d, got %d"):format(
      model.dim / model.n_heads, hd))
  end
  local warnings = {}
  for _, w in ipairs(rd.warnings) do warnings[#warnings + 1] = file .. ": " .. w end
  return model, entries, warnings
end

return M
