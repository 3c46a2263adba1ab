-- lua/gen_cdef.lua — generate the FFI declarations from the public header.
--
--   luajit lua/gen_cdef.lua engine/include/moonspeed.h build/lua/moonspeed/cdef.lua
--
-- The header is written in the subset of C that LuaJIT's FFI parses, so the
-- declarations are the header minus its preprocessor lines (#include, the
-- include guard) and minus whatever sits inside `#ifdef __cplusplus` blocks
-- (the `extern "C" {` and its closing `}`). Comments are kept: ffi.cdef skips
-- them, and they make the generated file readable. The output is a Lua module
-- returning one string, for `ffi.cdef(require "moonspeed.cdef")`.
--
-- This is the only place the declarations come from: nothing is typed twice.

local M = {}

-- Returns the declarations of header text `src` as a string.
function M.declarations(src)
  local out = {}
  local skip = {}        -- stack of booleans: is this #if block dropped entirely?
  local dropping = false
  local continued = false
  for line in (src .. "\n"):gmatch("([^\n]*)\n") do
    local directive = continued or line:match("^%s*#")
    if directive then
      continued = line:match("\\%s*$") ~= nil
      local word, rest = line:match("^%s*#%s*(%a+)%s*(.-)%s*$")
      if word == "if" or word == "ifdef" or word == "ifndef" then
        skip[#skip + 1] = dropping
        if word == "ifdef" and rest == "__cplusplus" then dropping = true end
      elseif word == "endif" then
        dropping = table.remove(skip) or false
      elseif word == "else" or word == "elif" then
        -- the other side of a dropped __cplusplus block is kept (there is none in practice)
        if dropping and skip[#skip] == false then dropping = false end
      end
    elseif not dropping then
      out[#out + 1] = line
    end
  end
  -- trim blank lines at both ends
  while out[1] and out[1]:match("^%s*$") do table.remove(out, 1) end
  while out[#out] and out[#out]:match("^%s*$") do table.remove(out) end
  return table.concat(out, "\n") .. "\n"
end

-- Wraps the declarations in a Lua module, with a long bracket that cannot clash.
function M.module(decls, source_name)
  local level = 0
  while decls:find("]" .. ("="):rep(level) .. "]", 1, true) do level = level + 1 end
  local eq = ("="):rep(level)
  return ("-- Generated from %s by lua/gen_cdef.lua; do not edit.\nreturn [%s[\n%s]%s]\n")
    :format(source_name, eq, decls, eq)
end

local function main(args)
  local input, output = args[1], args[2]
  if not input or not output then
    io.stderr:write("usage: luajit lua/gen_cdef.lua HEADER OUT.lua\n")
    return 2
  end
  local f, err = io.open(input, "rb")
  if not f then
    io.stderr:write("gen_cdef: cannot read ", err, "\n")
    return 1
  end
  local src = f:read("*a")
  f:close()
  local decls = M.declarations(src)
  local ok, ffi = pcall(require, "ffi")
  if ok then  -- fail the build, not the first run, when the header leaves the FFI subset
    local parsed, perr = pcall(ffi.cdef, decls)
    if not parsed then
      io.stderr:write("gen_cdef: ", input, " is not FFI-parseable: ", tostring(perr), "\n")
      return 1
    end
  end
  local tmp = output .. ".tmp"
  local g, gerr = io.open(tmp, "wb")
  if not g then
    io.stderr:write("gen_cdef: cannot write ", gerr, "\n")
    return 1
  end
  g:write(M.module(decls, input))
  g:close()
  local renamed, rerr = os.rename(tmp, output)
  if not renamed then
    io.stderr:write("gen_cdef: cannot rename ", tmp, ": ", rerr, "\n")
    return 1
  end
  return 0
end

if arg and arg[0] and arg[0]:match("gen_cdef%.lua$") and ... ~= "gen_cdef" then
  os.exit(main(arg))
end
return M
