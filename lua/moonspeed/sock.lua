-- lua/moonspeed/sock.lua — UNIX stream sockets through the FFI, for `moonspeed attach`.
--
-- A listening socket is created with mode 0600 (the umask is narrowed around
-- bind, so there is no moment when others could connect) and accepts only
-- peers of the same user (SO_PEERCRED). Everything on the serving side is
-- non-blocking: poll with a zero timeout, accept and read what is there, so the
-- training loop never waits on a client. Lines end with "\n".

local ffi = require "ffi"

local M = {}

local decls = {
  "struct ms_lua_sockaddr_un { uint16_t family; char path[108]; };",
  "struct ms_lua_pollfd { int fd; short events; short revents; };",
  "struct ms_lua_ucred { int32_t pid; uint32_t uid; uint32_t gid; };",
  "int socket(int domain, int type, int protocol);",
  "int bind(int fd, const struct ms_lua_sockaddr_un *addr, uint32_t len);",
  "int listen(int fd, int backlog);",
  "int accept4(int fd, void *addr, void *len, int flags);",
  "int connect(int fd, const struct ms_lua_sockaddr_un *addr, uint32_t len);",
  "int poll(struct ms_lua_pollfd *fds, unsigned long n, int timeout);",
  "long read(int fd, void *buf, size_t n);",
  "long send(int fd, const void *buf, size_t n, int flags);",
  "int close(int fd);",
  "int unlink(const char *path);",
  "uint32_t umask(uint32_t mask);",
  "int getsockopt(int fd, int level, int name, void *value, uint32_t *len);",
  "uint32_t getuid(void);",
  "char *strerror(int errnum);",
}
for _, d in ipairs(decls) do pcall(ffi.cdef, d) end

local C = ffi.C
local AF_UNIX, SOCK_STREAM, SOCK_NONBLOCK, SOCK_CLOEXEC = 1, 1, 0x800, 0x80000
local POLLIN, POLLOUT = 1, 4
local EAGAIN, EINTR = 11, 4
local SOL_SOCKET, SO_PEERCRED = 1, 17
local MSG_NOSIGNAL = 0x4000
local MAX_PATH = 107

local function errmsg() return ffi.string(C.strerror(ffi.errno())) end

local function address(path)
  if #path > MAX_PATH then
    return nil, ("the socket path %s has %d bytes; a UNIX socket path holds at most %d (use a shorter run directory)")
      :format(path, #path, MAX_PATH)
  end
  local a = ffi.new("struct ms_lua_sockaddr_un")
  a.family = AF_UNIX
  ffi.copy(a.path, path)
  return a
end

local Conn = {}
Conn.__index = Conn

local function new_conn(fd) return setmetatable({ fd = fd, buf = "", closed = false }, Conn) end

-- Reads what is there without waiting into the buffer (the socket is non-blocking).
function Conn:fill()
  if self.closed then return end
  local buf = ffi.new("char[4096]")
  while true do
    local n = tonumber(C.read(self.fd, buf, 4096))
    if n > 0 then
      self.buf = self.buf .. ffi.string(buf, n)
      if #self.buf > 65536 then self.closed = true return end   -- not a line protocol client
    elseif n == 0 then
      self.closed = true
      return
    else
      local e = ffi.errno()
      if e ~= EINTR then
        if e ~= EAGAIN then self.closed = true end
        return
      end
    end
  end
end

-- The next complete line in the buffer, or nil.
function Conn:take_line()
  local line, rest = self.buf:match("^([^\n]*)\n(.*)$")
  if not line then return nil end
  self.buf = rest
  return (line:gsub("\r$", ""))
end

-- Reads what is there without waiting; returns the complete lines received.
function Conn:poll_lines()
  self:fill()
  local lines = {}
  for line in function() return self:take_line() end do lines[#lines + 1] = line end
  return lines
end

-- Writes all of text, waiting at most timeout_ms for room; false when the peer is gone.
function Conn:send(text, timeout_ms)
  local sent, pfd = 0, ffi.new("struct ms_lua_pollfd")
  while sent < #text do
    local n = tonumber(C.send(self.fd, ffi.cast("const char *", text) + sent, #text - sent, MSG_NOSIGNAL))
    if n > 0 then
      sent = sent + n
    else
      local e = ffi.errno()
      if e ~= EAGAIN and e ~= EINTR then self.closed = true return false end
      pfd.fd, pfd.events = self.fd, POLLOUT
      if C.poll(pfd, 1, timeout_ms or 1000) <= 0 then self.closed = true return false end
    end
  end
  return true
end

-- Waits up to timeout_ms (nil: forever) for one line; returns it, or nil and "closed" or "timeout".
function Conn:read_line(timeout_ms)
  local pfd = ffi.new("struct ms_lua_pollfd")
  local waited = 0
  while true do
    local line = self:take_line()
    if line then return line end
    if self.closed then return nil, "closed" end
    pfd.fd, pfd.events, pfd.revents = self.fd, POLLIN, 0
    if C.poll(pfd, 1, 100) > 0 then
      self:fill()
    else
      waited = waited + 100
      if timeout_ms and waited >= timeout_ms then return nil, "timeout" end
    end
  end
end

function Conn:close()
  if self.fd >= 0 then C.close(self.fd) self.fd = -1 end
  self.closed = true
end

local Server = {}
Server.__index = Server

-- Listens at path (mode 0600); returns a server, or nil and a message.
function M.listen(path)
  local addr, err = address(path)
  if not addr then return nil, err end
  local fd = C.socket(AF_UNIX, SOCK_STREAM + SOCK_NONBLOCK + SOCK_CLOEXEC, 0)
  if fd < 0 then return nil, "socket: " .. errmsg() end
  C.unlink(path)   -- a socket left by a process that died
  local old = C.umask(tonumber("177", 8))
  local rc = C.bind(fd, addr, ffi.sizeof(addr))
  local bind_err = rc ~= 0 and errmsg()
  C.umask(old)
  if rc ~= 0 then C.close(fd) return nil, ("cannot listen at %s: %s"):format(path, bind_err) end
  if C.listen(fd, 8) ~= 0 then
    local lerr = errmsg()
    C.close(fd)
    C.unlink(path)
    return nil, ("cannot listen at %s: %s"):format(path, lerr)
  end
  return setmetatable({ fd = fd, path = path, uid = C.getuid() }, Server)
end

-- One poll without waiting over the listening socket and conns: returns
-- whether a client waits to be accepted, and the conns with something to read
-- (or a hang-up).
function Server:ready(conns)
  local n = #conns + 1
  local pfds = ffi.new("struct ms_lua_pollfd[?]", n)
  pfds[0].fd, pfds[0].events = self.fd, POLLIN
  for i, c in ipairs(conns) do pfds[i].fd, pfds[i].events = c.fd, POLLIN end
  local readable = {}
  if C.poll(pfds, n, 0) <= 0 then return false, readable end
  for i, c in ipairs(conns) do
    if pfds[i].revents ~= 0 then readable[#readable + 1] = c end
  end
  return pfds[0].revents ~= 0, readable
end

-- Accepts every waiting client of the same user; returns the new connections.
function Server:accept()
  local out = {}
  while self.fd >= 0 do
    local fd = C.accept4(self.fd, nil, nil, SOCK_NONBLOCK + SOCK_CLOEXEC)
    if fd < 0 then break end
    local cred, len = ffi.new("struct ms_lua_ucred"), ffi.new("uint32_t[1]", ffi.sizeof("struct ms_lua_ucred"))
    if C.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) ~= 0 or cred.uid ~= self.uid then
      local c = new_conn(fd)
      c:send('{"ok":false,"error":"another user may not attach to this run"}\n', 100)
      c:close()
    else
      out[#out + 1] = new_conn(fd)
    end
  end
  return out
end

function Server:close()
  if self.fd >= 0 then
    C.close(self.fd)
    C.unlink(self.path)
    self.fd = -1
  end
end

-- Connects to the socket at path; returns a connection, or nil and a message.
function M.connect(path)
  local addr, err = address(path)
  if not addr then return nil, err end
  local fd = C.socket(AF_UNIX, SOCK_STREAM + SOCK_NONBLOCK + SOCK_CLOEXEC, 0)
  if fd < 0 then return nil, "socket: " .. errmsg() end
  for _ = 1, 50 do   -- a full backlog says EAGAIN: the server accepts between steps
    if C.connect(fd, addr, ffi.sizeof(addr)) == 0 then return new_conn(fd) end
    if ffi.errno() ~= EAGAIN then break end
    C.poll(nil, 0, 100)
  end
  local cerr = errmsg()
  C.close(fd)
  return nil, cerr
end

return M
