-- lua/moonspeed/yaml.lua — Lua tables to YAML through libyaml's emitter.
--
-- libyaml is linked statically into the moonspeed executable and exported
-- (-Wl,-E), so ffi.C reaches yaml_emitter_*; under a plain luajit the shared
-- libyaml is loaded instead. The declarations below follow /usr/include/yaml.h
-- (libyaml 0.2): yaml_event_t is declared field by field because the event
-- initializers fill it; yaml_emitter_t is opaque past its error fields, with
-- its exact size (a spec compares both sizes with the C compiler's).
--
-- Mapping from Lua:
--   table with keys 1..n      a block sequence (M.list{} for an empty one)
--   table with string keys    a block mapping, keys in M.KEY_ORDER then sorted
--                             ({} is an empty mapping)
--   string                    plain when YAML reads it back as the same string;
--                             double-quoted when it would read as a bool, null
--                             or number ("true", "on", "1.0", ""); literal block
--                             when it has several lines
--   number, boolean           plain
-- Documents come out in order, each starting with "---".

local ffi = require "ffi"

local M = {}

ffi.cdef [[
typedef unsigned char yaml_char_t;
typedef struct yaml_mark_s { size_t index; size_t line; size_t column; } yaml_mark_t;
typedef struct yaml_version_directive_s { int major; int minor; } yaml_version_directive_t;
typedef struct yaml_tag_directive_s { yaml_char_t *handle; yaml_char_t *prefix; } yaml_tag_directive_t;
typedef struct yaml_event_s {
  int type;
  union {
    struct { int encoding; } stream_start;
    struct {
      yaml_version_directive_t *version_directive;
      struct { yaml_tag_directive_t *start; yaml_tag_directive_t *end; } tag_directives;
      int implicit;
    } document_start;
    struct { int implicit; } document_end;
    struct { yaml_char_t *anchor; } alias;
    struct {
      yaml_char_t *anchor; yaml_char_t *tag; yaml_char_t *value; size_t length;
      int plain_implicit; int quoted_implicit; int style;
    } scalar;
    struct { yaml_char_t *anchor; yaml_char_t *tag; int implicit; int style; } sequence_start;
    struct { yaml_char_t *anchor; yaml_char_t *tag; int implicit; int style; } mapping_start;
  } data;
  yaml_mark_t start_mark;
  yaml_mark_t end_mark;
} yaml_event_t;
typedef struct yaml_emitter_s {
  int error;                 /* yaml_error_type_t */
  const char *problem;
  uint8_t rest[416];         /* the remaining fields of libyaml's 432-byte emitter */
} yaml_emitter_t;
int yaml_emitter_initialize(yaml_emitter_t *emitter);
void yaml_emitter_delete(yaml_emitter_t *emitter);
void yaml_emitter_set_output_string(yaml_emitter_t *emitter, unsigned char *output, size_t size, size_t *size_written);
void yaml_emitter_set_unicode(yaml_emitter_t *emitter, int unicode);
void yaml_emitter_set_width(yaml_emitter_t *emitter, int width);
void yaml_emitter_set_indent(yaml_emitter_t *emitter, int indent);
int yaml_emitter_emit(yaml_emitter_t *emitter, yaml_event_t *event);
int yaml_emitter_flush(yaml_emitter_t *emitter);
int yaml_stream_start_event_initialize(yaml_event_t *event, int encoding);
int yaml_stream_end_event_initialize(yaml_event_t *event);
int yaml_document_start_event_initialize(yaml_event_t *event, yaml_version_directive_t *version_directive,
  yaml_tag_directive_t *tag_directives_start, yaml_tag_directive_t *tag_directives_end, int implicit);
int yaml_document_end_event_initialize(yaml_event_t *event, int implicit);
int yaml_scalar_event_initialize(yaml_event_t *event, const yaml_char_t *anchor, const yaml_char_t *tag,
  const yaml_char_t *value, int length, int plain_implicit, int quoted_implicit, int style);
int yaml_sequence_start_event_initialize(yaml_event_t *event, const yaml_char_t *anchor, const yaml_char_t *tag,
  int implicit, int style);
int yaml_sequence_end_event_initialize(yaml_event_t *event);
int yaml_mapping_start_event_initialize(yaml_event_t *event, const yaml_char_t *anchor, const yaml_char_t *tag,
  int implicit, int style);
int yaml_mapping_end_event_initialize(yaml_event_t *event);
]]

-- enum values of yaml.h
local UTF8_ENCODING = 1
local ANY_SCALAR, PLAIN, DOUBLE_QUOTED, LITERAL = 0, 1, 3, 4
local BLOCK_SEQUENCE, BLOCK_MAPPING = 1, 1
local WRITER_ERROR = 6
M.SIZEOF = { yaml_event_t = 104, yaml_emitter_t = 432 }

-- The library: the executable's own symbols, else the shared libyaml.
local function library()
  local ok = pcall(function() return ffi.C.yaml_emitter_emit end)
  if ok then return ffi.C end
  for _, name in ipairs({ "yaml-0.so.2", "yaml" }) do
    local lok, lib = pcall(ffi.load, name)
    if lok then return lib end
  end
  error("libyaml's emitter is not reachable: neither this executable exports yaml_emitter_emit nor can " ..
    "libyaml-0.so.2 be loaded; install libyaml-0-2 (Debian) or run the moonspeed executable", 2)
end
local Y

-- Keys that come first in a mapping, in this order; the rest are sorted.
M.KEY_ORDER = { "apiVersion", "kind", "metadata", "name", "namespace", "labels", "image", "command", "args",
  "spec", "mlPolicy", "runtimeRef", "trainer", "template", "data" }
local rank = {}
for i, k in ipairs(M.KEY_ORDER) do rank[k] = i end

local List = {}
-- Marks a table as a sequence (an empty {} would otherwise be a mapping).
function M.list(t) return setmetatable(t or {}, List) end

local function is_list(t)
  if getmetatable(t) == List then return true end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end
M.is_list = is_list

-- Strings YAML 1.1 or 1.2 would read as something else.
local function needs_quotes(s)
  if s == "" or s == "~" then return true end
  local l = s:lower()
  for _, w in ipairs({ "true", "false", "yes", "no", "on", "off", "y", "n", "null" }) do
    if l == w then return true end
  end
  if s:match("^[-+]?[%d._]+$") or s:match("^[-+]?%.?%d[%d._]*[eE][-+]?%d+$") or s:match("^0[xXoObB]%x+$")
    or l:match("^[-+]?%.inf$") or l == ".nan" or s:match("^%d%d%d%d%-%d%d?%-%d%d?") or s:match("^%d+:%d") then
    return true
  end
  return false
end
M.needs_quotes = needs_quotes

local function number_text(x)
  if x ~= x or x == math.huge or x == -math.huge then
    error(("YAML: %s is not a number a manifest can hold"):format(tostring(x)), 0)
  end
  if x == math.floor(x) and math.abs(x) < 2 ^ 53 then return ("%d"):format(x) end
  return require("moonspeed.json").number(x)
end

local function sorted_keys(t, where)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error(("YAML: %s has a key %s that is not a string"):format(where, tostring(k)), 0)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    local ra, rb = rank[a] or math.huge, rank[b] or math.huge
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  return keys
end

-- Emits one value; `where` names it in errors ("document 2: spec.trainer").
local function emit_value(em, ev, v, where)
  local t = type(v)
  local ok
  if t == "table" then
    if is_list(v) then
      ok = Y.yaml_sequence_start_event_initialize(ev, nil, nil, 1, BLOCK_SEQUENCE) == 1 and Y.yaml_emitter_emit(em, ev) == 1
      if not ok then return false end
      for i = 1, #v do
        if not emit_value(em, ev, v[i], ("%s[%d]"):format(where, i - 1)) then return false end
      end
      return Y.yaml_sequence_end_event_initialize(ev) == 1 and Y.yaml_emitter_emit(em, ev) == 1
    end
    ok = Y.yaml_mapping_start_event_initialize(ev, nil, nil, 1, BLOCK_MAPPING) == 1 and Y.yaml_emitter_emit(em, ev) == 1
    if not ok then return false end
    for _, k in ipairs(sorted_keys(v, where)) do
      if not emit_value(em, ev, k, where) then return false end
      if not emit_value(em, ev, v[k], where == "" and k or (where .. "." .. k)) then return false end
    end
    return Y.yaml_mapping_end_event_initialize(ev) == 1 and Y.yaml_emitter_emit(em, ev) == 1
  end
  local text, style, plain_implicit, quoted_implicit
  if t == "string" then
    text, plain_implicit, quoted_implicit = v, 1, 1
    if v:find("\n", 1, true) then
      style = LITERAL
    elseif needs_quotes(v) then
      style, plain_implicit = DOUBLE_QUOTED, 0
    else
      style = ANY_SCALAR
    end
  elseif t == "number" then
    text, style, plain_implicit, quoted_implicit = number_text(v), PLAIN, 1, 0
  elseif t == "boolean" then
    text, style, plain_implicit, quoted_implicit = tostring(v), PLAIN, 1, 0
  else
    error(("YAML: %s is %s, which a manifest cannot hold"):format(where ~= "" and where or "a value", t), 0)
  end
  return Y.yaml_scalar_event_initialize(ev, nil, nil, text, #text, plain_implicit, quoted_implicit, style) == 1
    and Y.yaml_emitter_emit(em, ev) == 1
end

-- Emits into a buffer of `size` bytes: the text, or nil and (the problem, whether the buffer was too small).
local function emit_into(docs, size)
  local em = ffi.new("yaml_emitter_t")
  local ev = ffi.new("yaml_event_t")
  local buf = ffi.new("unsigned char[?]", size)
  local written = ffi.new("size_t[1]")
  if Y.yaml_emitter_initialize(em) ~= 1 then error("YAML: yaml_emitter_initialize failed (out of memory)", 0) end
  Y.yaml_emitter_set_output_string(em, buf, size, written)
  Y.yaml_emitter_set_unicode(em, 1)
  Y.yaml_emitter_set_width(em, 120)
  Y.yaml_emitter_set_indent(em, 2)
  local ok = Y.yaml_stream_start_event_initialize(ev, UTF8_ENCODING) == 1 and Y.yaml_emitter_emit(em, ev) == 1
  local emitted, err = pcall(function()
    for i, doc in ipairs(docs) do
      ok = ok and Y.yaml_document_start_event_initialize(ev, nil, nil, nil, 0) == 1 and Y.yaml_emitter_emit(em, ev) == 1
      if ok then
        local dok, derr = pcall(emit_value, em, ev, doc, "")
        if not dok then error(("document %d: %s"):format(i, tostring(derr):gsub("^YAML: ", "")), 0) end
        ok = derr
      end
      ok = ok and Y.yaml_document_end_event_initialize(ev, 1) == 1 and Y.yaml_emitter_emit(em, ev) == 1
    end
    ok = ok and Y.yaml_stream_end_event_initialize(ev) == 1 and Y.yaml_emitter_emit(em, ev) == 1
    ok = ok and Y.yaml_emitter_flush(em) == 1
  end)
  local code, problem = tonumber(em.error), em.problem ~= nil and ffi.string(em.problem) or "unknown problem"
  local text = ok and emitted and ffi.string(buf, written[0]) or nil
  Y.yaml_emitter_delete(em)
  if not emitted then error(err, 0) end
  if text then return text end
  return nil, problem, code == WRITER_ERROR
end

-- The YAML text of a list of documents (Lua tables).
function M.emit(docs)
  Y = Y or library()
  local size = 64 * 1024
  while true do
    local text, problem, too_small = emit_into(docs, size)
    if text then return text end
    if not too_small then error("YAML: libyaml's emitter failed: " .. problem, 0) end
    size = size * 4
  end
end

return M
