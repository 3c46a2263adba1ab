-- lua/moonspeed/sys.lua — the few operating-system calls the Lua side needs.
--
-- Terminals, folders, the clock, cores, memory. libc through the FFI; declared
-- here once so no other module repeats a declaration.

local ffi = require "ffi"

local M = {}

local decls = {
  "int isatty(int fd);",
  "int mkdir(const char *path, uint32_t mode);",
  "long sysconf(int name);",
  "int getpid(void);",
  "struct ms_lua_timespec { long tv_sec; long tv_nsec; };",
  "int clock_gettime(int clk, struct ms_lua_timespec *ts);",
  "char *strerror(int errnum);",
  "int rmdir(const char *path);",
  "struct ms_lua_rlimit { uint64_t cur; uint64_t max; };",
  "int getrlimit(int resource, struct ms_lua_rlimit *rlim);",
  -- glibc's struct statvfs on 64-bit Linux (112 bytes; a spec checks it)
  "struct ms_lua_statvfs { unsigned long bsize, frsize; uint64_t blocks, bfree, bavail, files, ffree, favail; unsigned long fsid, flag, namemax; int spare[6]; };",
  "int statvfs(const char *path, struct ms_lua_statvfs *buf);",
  "typedef struct ms_lua_dir ms_lua_dir;",
  "struct ms_lua_dirent { uint64_t ino; int64_t off; uint16_t reclen; uint8_t type; char name[256]; };",
  "ms_lua_dir *opendir(const char *path);",
  "struct ms_lua_dirent *readdir(ms_lua_dir *dir);",
  "int closedir(ms_lua_dir *dir);",
}
for _, d in ipairs(decls) do pcall(ffi.cdef, d) end

local C = ffi.C
local EEXIST = 17
local SC_NPROCESSORS_ONLN = 84
local CLOCK_MONOTONIC = 1

function M.isatty(fd) return C.isatty(fd) == 1 end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- A folder exists at path (opening a folder for reading succeeds, reading it fails).
function M.is_dir(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local ok, err, code = f:read(1)
  f:close()
  return ok == nil and code == 21  -- EISDIR
end

-- mkdir -p; returns true or nil, message.
function M.mkdir_p(path)
  local sofar = path:sub(1, 1) == "/" and "/" or ""
  for part in path:gmatch("[^/]+") do
    sofar = sofar .. part
    if C.mkdir(sofar, tonumber("755", 8)) ~= 0 then
      local errno = ffi.errno()
      if errno ~= EEXIST then
        return nil, ("cannot create folder %s: %s"):format(sofar, ffi.string(C.strerror(errno)))
      end
    end
    sofar = sofar .. "/"
  end
  return true
end

-- Creates a new folder; fails if it exists already.
function M.mkdir_new(path)
  if C.mkdir(path, tonumber("755", 8)) ~= 0 then
    local errno = ffi.errno()
    return nil, ("cannot create folder %s: %s"):format(path, ffi.string(C.strerror(errno))), errno == EEXIST
  end
  return true
end

function M.rmdir(path) return C.rmdir(path) == 0 end

function M.nproc()
  local n = tonumber(C.sysconf(SC_NPROCESSORS_ONLN))
  return (n and n > 0) and n or 1
end

function M.getpid() return C.getpid() end

local ts = ffi.new("struct ms_lua_timespec")
-- Seconds on a monotonic clock.
function M.now()
  C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- { MemTotal = bytes, MemAvailable = bytes, ... } from /proc/meminfo.
function M.meminfo()
  local f = io.open("/proc/meminfo", "rb")
  if not f then return nil end
  local info = {}
  for line in f:lines() do
    local k, v, unit = line:match("^(%w+):%s*(%d+)%s*(%a*)")
    if k then info[k] = tonumber(v) * (unit == "kB" and 1024 or 1) end
  end
  f:close()
  return info
end

-- This process's peak resident memory in bytes: VmHWM of /proc/self/status
-- (nil where there is none).
function M.peak_rss()
  local f = io.open("/proc/self/status", "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  local kb = text:match("VmHWM:%s*(%d+)%s*kB")
  return kb and tonumber(kb) * 1024 or nil
end

-- The clock of the first CPU in MHz, from /proc/cpuinfo (nil when unknown).
function M.cpu_mhz()
  local f = io.open("/proc/cpuinfo", "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("cpu MHz%s*:%s*([%d%.]+)"))
end

local RLIMIT_MEMLOCK = 8
-- The soft limit on locked memory in bytes (math.huge when unlimited), or nil.
function M.memlock()
  local r = ffi.new("struct ms_lua_rlimit")
  if C.getrlimit(RLIMIT_MEMLOCK, r) ~= 0 then return nil end
  if r.cur == ffi.cast("uint64_t", -1) then return math.huge end
  return tonumber(r.cur)
end

local function statvfs(path)
  local st = ffi.new("struct ms_lua_statvfs")
  if C.statvfs(path, st) ~= 0 then return nil, ffi.string(C.strerror(ffi.errno())) end
  return st
end

-- The size in bytes of the file system holding path, or nil and a message.
function M.fs_size(path)
  local st, err = statvfs(path)
  if not st then return nil, err end
  return tonumber(st.blocks) * tonumber(st.frsize)
end

-- The bytes an unprivileged writer may still add to the file system holding
-- path, or nil and a message.
function M.fs_free(path)
  local st, err = statvfs(path)
  if not st then return nil, err end
  return tonumber(st.bavail) * tonumber(st.frsize)
end

-- The names in a folder (without . and ..), sorted; {} when it cannot be read.
function M.list_dir(path)
  local d = C.opendir(path)
  if d == nil then return {} end
  local out = {}
  while true do
    local e = C.readdir(d)
    if e == nil then break end
    local name = ffi.string(e.name)
    if name ~= "." and name ~= ".." then out[#out + 1] = name end
  end
  C.closedir(d)
  table.sort(out)
  return out
end

function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

-- Writes a file atomically (temp file + rename).
function M.write_file(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  f:write(text)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then return nil, rerr end
  return true
end

-- A command's output: written to path (atomically) when one is given, else to standard output.
function M.output(path, text)
  if not path then io.stdout:write(text) return end
  local ok, err = M.write_file(path, text)
  if not ok then error(("cannot write %s: %s"):format(path, tostring(err)), 0) end
end

return M
