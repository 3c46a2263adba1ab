-- lua/moonspeed/fmt.lua — numbers for humans: bytes, durations, SI prefixes, tables, profiles.

local M = {}

-- 1536 -> "1.50 KiB"; exact byte counts stay available to whoever needs them.
function M.bytes(n)
  n = tonumber(n)
  if n < 1024 then return ("%d B"):format(n) end
  local units = { "KiB", "MiB", "GiB", "TiB", "PiB" }
  local x, u = n / 1024, 1
  while x >= 1024 and u < #units do x, u = x / 1024, u + 1 end
  return ("%.2f %s"):format(x, units[u])
end

-- 151 -> "2m31s"; 3725 -> "1h02m"; 4.2 -> "4.2s".
function M.duration(s)
  if s ~= s or s == math.huge then return "?" end
  if s < 60 then return ("%.1fs"):format(s) end
  s = math.floor(s + 0.5)
  if s < 3600 then return ("%dm%02ds"):format(math.floor(s / 60), s % 60) end
  return ("%dh%02dm"):format(math.floor(s / 3600), math.floor(s / 60) % 60)
end

-- 4100 -> "4.10k"; 2.5e9 -> "2.50G".
function M.si(x)
  x = tonumber(x)
  local a = math.abs(x)
  for _, p in ipairs({ { 1e12, "T" }, { 1e9, "G" }, { 1e6, "M" }, { 1e3, "k" } }) do
    if a >= p[1] then return ("%.2f%s"):format(x / p[1], p[2]) end
  end
  if x == math.floor(x) then return ("%d"):format(x) end
  return ("%.3g"):format(x)
end

-- 8030261248 -> "8.03 B" (parameter counts).
function M.count(n)
  n = tonumber(n)
  if n >= 1e9 then return ("%.2f B"):format(n / 1e9) end
  if n >= 1e6 then return ("%.2f M"):format(n / 1e6) end
  if n >= 1e3 then return ("%.1f K"):format(n / 1e3) end
  return ("%d"):format(n)
end

-- A table of rows (lists of strings), columns padded; `right` = set of
-- column indices to align right.
function M.columns(rows, right, indent)
  right = right or {}
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do
      widths[i] = math.max(widths[i] or 0, #tostring(cell))
    end
  end
  local out = {}
  for _, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      cell = tostring(cell)
      local pad = (" "):rep(widths[i] - #cell)
      cells[i] = right[i] and (pad .. cell) or (i < #row and (cell .. pad) or cell)
    end
    out[#out + 1] = ((indent or "") .. table.concat(cells, "  ")):gsub("%s+$", "")
  end
  return table.concat(out, "\n")
end

-- A profile window (e:profile_stop() with from, to, rank and device) as
-- lines: the step's time, its ops' and the device idle, then per op ms a
-- step, share of the window and calls a step, the largest first.
function M.profile(p)
  local steps = math.max(p.to - p.from + 1, 1)
  local per, busy = 1e3 / steps, 0
  for _, op in ipairs(p.ops) do busy = busy + op.seconds end
  local idle = math.max(p.seconds - busy, 0)
  local window = math.max(p.seconds, 1e-12)
  local out = {
    ("profile: %s on rank %d, timed by the %s device: %.1f ms a step; its ops %.1f ms, the device idle %.1f ms "
      .. "(%.1f%%)"):format(p.from == p.to and ("step %d"):format(p.to) or ("steps %d-%d"):format(p.from, p.to),
      p.rank, p.device, p.seconds * per, busy * per, idle * per, 100 * idle / window),
    "profile:    ms/step   share  calls/step  op",
  }
  for _, op in ipairs(p.ops) do
    out[#out + 1] = ("profile: %10.2f %6.1f%% %11.1f  %s"):format(op.seconds * per, 100 * op.seconds / window,
      op.calls / steps, op.name)
  end
  return out
end

return M
