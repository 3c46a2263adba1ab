-- spec/lua/cdef_spec.lua — the FFI declarations against the C compiler.
--
-- The declarations are generated from engine/include/moonspeed.h, never typed
-- twice. Here a small C program, compiled at test time from the very same
-- header, prints sizeof and offsetof of every struct field and the value of
-- every enum constant; LuaJIT's view of the declarations must agree.

local ffi = require "ffi"
local gen = require "gen_cdef"
local support = require "support"

local HEADER = "engine/include/moonspeed.h"

local function header() return assert(support.read(HEADER)) end

-- { { name = "ms_config", fields = { "model", "train", ... } }, ... } from the header text.
local function structs(src)
  local out = {}
  src = src:gsub("/%*.-%*/", "")
  for name, body, tail in src:gmatch("typedef%s+struct%s+([%w_]+)%s*(%b{})%s*([%w_]+)%s*;") do
    assert(name == tail)
    local fields = {}
    for decl in body:sub(2, -2):gmatch("[^;]+") do
      local field = decl:match("([%w_]+)%s*%[[^%]]*%]%s*$") or decl:match("([%w_]+)%s*$")
      if field then fields[#fields + 1] = field end
    end
    out[#out + 1] = { name = name, fields = fields }
  end
  return out
end

local function enum_constants(src)
  local out = {}
  for name in src:gmatch("(MS_[%w_]+)%s*=") do out[#out + 1] = name end
  return out
end

describe("cdef generation", function()
  it("drops preprocessor lines and the extern \"C\" block, keeps declarations", function()
    local decls = gen.declarations(header())
    assert.is_nil(decls:match("\n%s*#"))
    assert.is_nil(decls:find('extern "C"', 1, true))
    assert.truthy(decls:find("ms_status ms_engine_step(ms_engine *e, ms_step_stats *out);", 1, true))
    assert.truthy(decls:find("typedef struct ms_config {", 1, true))
  end)

  it("handles nested conditionals and continued directives", function()
    local src = table.concat({
      "#ifndef X_H", "#define X_H", "#define LONG(a) \\", "    ((a) + 1)", "#ifdef __cplusplus",
      'extern "C" {', "#if 1", "int hidden;", "#endif", "#endif", "int visible(void);",
      "#ifdef __cplusplus", "}", "#endif", "#endif" }, "\n")
    assert.are.equal("int visible(void);\n", gen.declarations(src))
  end)

  it("wraps the declarations in a module with a safe long bracket", function()
    local mod = gen.module("int x; /* ]] ]=] */\n", "h.h")
    local f = assert(loadstring(mod))
    assert.are.equal("int x; /* ]] ]=] */\n", f())
  end)

  it("is what the build installed (build/lua/moonspeed/cdef.lua)", function()
    assert.is_nil(support.missing_build())
    local built = assert(loadfile(support.build .. "/lua/moonspeed/cdef.lua"))()
    assert.are.equal(gen.declarations(header()), built)
  end)

  it("fails the build for a header the FFI cannot parse", function()
    local dir = support.tmpdir()
    -- a macro in a declaration: the #define is dropped, so the FFI cannot size the array
    support.write(dir .. "/bad.h", "#define N_DIMS 4\ntypedef struct { long shape[N_DIMS]; } shape_t;\n")
    local res = support.sh(("luajit lua/gen_cdef.lua %s %s"):format(dir .. "/bad.h", dir .. "/out.lua"))
    assert.are.equal(1, res.code)
    assert.matches("is not FFI%-parseable", res.stderr)
    assert.is_false(support.exists(dir .. "/out.lua"))
    support.cleanup()
  end)
end)

describe("FFI layout", function()
  local src = header()
  local list = structs(src)

  if not pcall(ffi.typeof, "ms_config") then ffi.cdef(gen.declarations(src)) end

  it("finds every struct of the header", function()
    local names = {}
    for _, s in ipairs(list) do names[#names + 1] = s.name end
    for _, want in ipairs({ "ms_model_config", "ms_train_config", "ms_config", "ms_memory", "ms_plan",
                            "ms_step_stats", "ms_memory_report", "ms_unit_info", "ms_tensor_info", "ms_shard_info" }) do
      assert.truthy(table.concat(names, " "):find(want, 1, true), want)
    end
  end)

  it("matches sizeof, offsetof and enum values from the C compiler", function()
    local dir = support.tmpdir()
    local c = { "#include <stdio.h>", "#include <stddef.h>", '#include "moonspeed.h"', "int main(void) {" }
    local want = {}
    for _, s in ipairs(list) do
      c[#c + 1] = ('  printf("sizeof %s %%zu\\n", sizeof(%s));'):format(s.name, s.name)
      want[#want + 1] = ("sizeof %s %d"):format(s.name, ffi.sizeof(s.name))
      for _, f in ipairs(s.fields) do
        c[#c + 1] = ('  printf("offsetof %s.%s %%zu\\n", offsetof(%s, %s));'):format(s.name, f, s.name, f)
        want[#want + 1] = ("offsetof %s.%s %d"):format(s.name, f, ffi.offsetof(s.name, f))
      end
    end
    for _, e in ipairs(enum_constants(src)) do
      c[#c + 1] = ('  printf("enum %s %%d\\n", (int)%s);'):format(e, e)
      want[#want + 1] = ("enum %s %d"):format(e, tonumber(ffi.new("int", ffi.C[e])))
    end
    c[#c + 1] = "  return 0;\n}\n"
    support.write(dir .. "/layout.c", table.concat(c, "\n"))
    local res = support.sh(("cc -std=c11 -Wall -Werror -Iengine/include -o %s/layout %s/layout.c && %s/layout")
      :format(dir, dir, dir))
    assert.are.equal("", res.stderr)
    assert.are.equal(0, res.code)
    assert.are.equal(table.concat(want, "\n") .. "\n", res.stdout)
    assert.is_true(#want > 100)
    support.cleanup()
  end)
end)
