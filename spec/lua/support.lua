-- spec/lua/support.lua — helpers shared by the specs: subprocesses, temp folders, files.
--
-- Specs run from the repository root (busted's working directory). Anything
-- that could crash (the engine) runs in a child process, so a segfault is a
-- failed test, not a dead runner.

local M = {}

M.root = os.getenv("PWD") or "."
-- The build folder under test: build/, or $MS_BUILD (make test-asan sets build-asan).
M.build = os.getenv("MS_BUILD") or "build"
M.exe = M.root .. "/" .. M.build .. "/moonspeed"

-- The error fn(...) raises; the spec fails when it raises none.
function M.fails(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error, and none was raised", 2) end
  return err
end

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local tmps = {}

-- A fresh temporary folder (removed by M.cleanup()).
function M.tmpdir()
  local p = io.popen("mktemp -d -t moonspeed-spec.XXXXXX")
  local dir = p:read("*l")
  p:close()
  tmps[#tmps + 1] = dir
  return dir
end

-- Removes one folder made by tmpdir().
function M.remove(dir)
  for i, d in ipairs(tmps) do
    if d == dir then
      table.remove(tmps, i)
      os.execute("rm -rf " .. M.quote(d))
      return
    end
  end
end

function M.cleanup()
  for _, d in ipairs(tmps) do os.execute("rm -rf " .. M.quote(d)) end
  tmps = {}
end

-- Lists a folder's entries (sorted), or {} when it does not exist.
function M.ls(dir)
  local p = io.popen("ls -A " .. M.quote(dir) .. " 2>/dev/null")
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

-- Runs a shell command; returns { code, stdout, stderr }.
-- opts.cwd: working directory; opts.env: table of variables; opts.stdin: text.
function M.sh(cmd, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local pre = {}
  if opts.cwd then pre[#pre + 1] = "cd " .. M.quote(opts.cwd) .. " &&" end
  for k, v in pairs(opts.env or {}) do pre[#pre + 1] = ("%s=%s"):format(k, M.quote(v)) end
  local stdin = "/dev/null"
  if opts.stdin then stdin = M.write(dir .. "/stdin", opts.stdin) end
  local full = ("%s %s <%s >%s 2>%s; echo $? >%s"):format(table.concat(pre, " "), cmd, M.quote(stdin),
    M.quote(dir .. "/out"), M.quote(dir .. "/err"), M.quote(dir .. "/rc"))
  if opts.cwd then full = "(" .. full .. ")" end
  os.execute(full)
  local res = {
    code = tonumber(M.read(dir .. "/rc")),
    stdout = M.read(dir .. "/out") or "",
    stderr = M.read(dir .. "/err") or "",
  }
  M.remove(dir)
  return res
end

-- Runs the moonspeed executable with arguments (a list, quoted for the shell).
function M.moonspeed(args, opts)
  local q = {}
  for i, a in ipairs(args) do q[i] = M.quote(a) end
  return M.sh(M.quote(M.exe) .. " " .. table.concat(q, " "), opts)
end

-- Runs Lua code under luajit in a child process with the moonspeed modules on
-- the path (the engine comes from build/libmoonspeed.so, or $MOONSPEED_LIB).
function M.luajit(code, opts)
  local dir = M.tmpdir()
  local file = M.write(dir .. "/child.lua", code)
  opts = opts or {}
  opts.env = opts.env or {}
  opts.env.LUA_PATH = ("%s/lua/?.lua;%s/lua/?/init.lua;%s/%s/lua/?.lua;%s/spec/lua/?.lua;;"):format(
    M.root, M.root, M.root, M.build, M.root)
  local res = M.sh("luajit " .. M.quote(file), opts)
  M.remove(dir)
  return res
end

-- Decodes the last line of a child's stdout as JSON.
function M.json_result(res)
  local json = require "moonspeed.json"
  local last
  for line in res.stdout:gmatch("[^\n]+") do last = line end
  if not last then return nil, "no output; stderr: " .. res.stderr end
  local v, err = json.decode(last)
  if v == nil then return nil, err .. " in: " .. last .. "; stderr: " .. res.stderr end
  return v
end

-- The built pieces the specs need; nil when present, else a message.
function M.missing_build()
  for _, p in ipairs({ "moonspeed", "libmoonspeed.so", "lua/moonspeed/cdef.lua" }) do
    p = M.build .. "/" .. p
    if not M.exists(M.root .. "/" .. p) then return p .. " is missing: run `make` first" end
  end
end

function M.missing_data()
  for _, p in ipairs({ "data/kjv/train.bin", "data/kjv/val.bin" }) do
    if not M.exists(M.root .. "/" .. p) then return p .. " is missing: run `make data` first" end
  end
end

return M
