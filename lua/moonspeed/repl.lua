-- lua/moonspeed/repl.lua — `moonspeed repl`: LuaJIT with the engine loaded.
--
-- Line editing and history come from libedit's readline (linked into the
-- moonspeed executable and reached through the FFI); the history lives in
-- ~/.moonspeed_history. Without a terminal (or outside the executable) lines
-- are read with io.read. Input is tried first as an expression ("return " ..
-- line), then as statements; a chunk that ends too early ("<eof>") continues on
-- the next line with the ">> " prompt. Results print through moonspeed.pretty.
--
-- Preloaded: e (the engine of the recipe), recipe (the resolved recipe),
-- moonspeed (the module), help(), exit(). The engine calls are those of
-- `moonspeed run`, so stepping here gives the same numbers.

local ffi = require "ffi"
local pretty = require "moonspeed.pretty"
local sys = require "moonspeed.sys"

local M = {}

M.help = [[
  e:step()                       one optimizer step; returns its stats
  e:eval()                       held-out loss (nats/token)
  e:memory()                     bytes reserved and used, by purpose
  e:plan()                       the memory plan the engine was built from
  e:profile_start(), e:profile_stop()   time every op in between: { seconds, ops = {name, calls, seconds} }
  e:units()                      units (embed, block.N, head) and their tensors
  e:tensor(unit, i)              tensor i of a unit (1-based index or name)
  e:param("block.0.attn.wq")     a tensor by name: t.shape, t.dtype, t.values, t:stats()
  e:generate(text, {tokens = 200, temperature = 0.8, top_k = 40, seed = 1})
  e:save(path), e:load(path)     weights
  recipe                         the resolved recipe (a table)
  exit()                         leave (or Ctrl-D)]]

local READLINE = {
  "char *readline(const char *prompt);",
  "int add_history(const char *line);",
  "int read_history(const char *path);",
  "int write_history(const char *path);",
  "void using_history(void);",
  "void stifle_history(int n);",
  "void free(void *p);",
}

-- A line reader: readline on a terminal inside the executable, else io.read.
local function make_reader(input, output)
  output = output or io.stdout
  local interactive = not input and sys.isatty(0)
  if interactive then
    for _, d in ipairs(READLINE) do pcall(ffi.cdef, d) end
    local has = pcall(function() return ffi.C.readline, ffi.C.add_history, ffi.C.write_history end)
    if has then
      local C = ffi.C
      local home = os.getenv("HOME")
      local history = home and (home .. "/.moonspeed_history")
      C.using_history()
      C.stifle_history(1000)
      if history then C.read_history(history) end
      return {
        kind = "libedit",
        read = function(prompt)
          output:flush()
          local p = C.readline(prompt)
          if p == nil then return nil end
          local s = ffi.string(p)
          C.free(p)
          return s
        end,
        add = function(line) C.add_history(line) end,
        close = function() if history then C.write_history(history) end end,
      }
    end
  end
  input = input or io.stdin
  return {
    kind = "plain",
    read = function(prompt)
      output:write(prompt)
      output:flush()
      return input:read("*l")
    end,
    add = function() end,
    close = function() end,
  }
end

-- Also the line reader of `moonspeed attach`.
M.reader = make_reader

local function pack(...) return { n = select("#", ...), ... } end

-- Evaluates one complete chunk; prints its results or its error.
local function run_chunk(fn, out)
  local res = pack(xpcall(fn, function(err)
    if type(err) ~= "string" then err = pretty.show(err) end
    return err
  end))
  if not res[1] then
    out:write("error: ", tostring(res[2]), "\n")
    return
  end
  for i = 2, res.n do
    out:write(pretty.show(res[i]), "\n")
  end
end

-- Starts the REPL for a resolved recipe. opts.input / opts.output: files (specs).
function M.start(r, info, opts)
  opts = opts or {}
  local out = opts.output or io.stdout
  local moonspeed = require "moonspeed"
  local engine = require "moonspeed.engine"
  local fmt = require "moonspeed.fmt"
  local e = engine.new(r, nil, { info = info })
  local done = false
  local env = setmetatable({
    e = e, recipe = r, moonspeed = moonspeed,
    exit = function() done = true end,
    help = function() out:write(M.help, "\n") end,
  }, { __index = _G })
  env.quit = env.exit
  env.__repl_pack = pack
  local reader = make_reader(opts.input, out)
  out:write(("moonspeed repl: %s (%s parameters, %s on %s) from %s\n"):format(
    r.model.name, fmt.count(e:plan().n_params), r.precision, r.device, info and info.file or "a table"))
  out:write("preloaded: e (the engine), recipe, moonspeed. help() lists the methods; exit() or Ctrl-D leaves.\n")
  local buffer = nil
  while not done do
    local line = reader.read(buffer and ">> " or "> ")
    if line == nil then
      out:write("\n")
      break
    end
    local chunk = buffer and (buffer .. "\n" .. line) or line
    if chunk:match("^%s*$") then
      buffer = nil
    else
      -- as an argument, the user's call is not a tail call: errors keep "repl:1:"
      local fn, xerr = load("return __repl_pack(" .. chunk .. "\n)", "=repl", "t", env)
      if fn then
        local packed = fn
        fn = function() local r = packed() return unpack(r, 1, r.n) end
      end
      local err
      if not fn then fn, err = load(chunk, "=repl", "t", env) end
      if fn then
        buffer = nil
        reader.add(chunk)
        run_chunk(fn, out)
      elseif err:match("<eof>'?$") or xerr:match("<eof>'?$") then
        buffer = chunk
      else
        buffer = nil
        reader.add(chunk)
        -- "1 +* 2" fails as a statement at its first token; the expression's error says more
        local first = chunk:match("^%s*([%w_%.]+)") or chunk:match("^%s*(%S)")
        if first and err:find("unexpected symbol near '" .. first .. "'", 1, true) then err = xerr end
        out:write("error: ", err, "\n")
      end
    end
    out:flush()
  end
  reader.close()
  e:free()
  return 0
end

return M
