-- lua/moonspeed/plot.lua — loss and throughput curves of a run, as SVG.
--
-- Two panels over the same step axis: training loss (and held-out loss where
-- evaluated) above, tokens/s below; each with axes, ticks, labels and a legend.
-- Plain SVG 1.1, no scripts or external fonts, so browsers and rsvg render it.

local M = {}

local W, H = 960, 680
local LEFT, RIGHT = 90, 30
local PANELS = { { top = 60, height = 330 }, { top = 470, height = 150 } }
local COLORS = { train = "#1f77b4", val = "#ff7f0e", tps = "#2ca02c" }

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

-- Round numbers covering [lo, hi]: about n ticks at 1, 2 or 5 x 10^k.
function M.ticks(lo, hi, n)
  n = n or 6
  if hi <= lo then
    local pad = lo == 0 and 1 or math.abs(lo) * 0.1
    lo, hi = lo - pad, hi + pad
  end
  local raw = (hi - lo) / n
  local mag = 10 ^ math.floor(math.log10(raw))
  local step
  for _, m in ipairs({ 1, 2, 2.5, 5, 10 }) do
    step = m * mag
    if raw <= step then break end
  end
  local first = math.floor(lo / step + 1e-9) * step
  local last = math.ceil(hi / step - 1e-9) * step
  local ticks = {}
  local v = first
  while v <= last + step * 1e-6 do
    ticks[#ticks + 1] = math.abs(v) < step * 1e-9 and 0 or v
    v = v + step
  end
  return ticks, first, last, step
end

local function label(v, step, top)
  if v == 0 then return "0" end
  if math.abs(top or v) >= 1e4 and step >= 100 then
    local k = v / 1000
    return (k == math.floor(k) and "%dk" or "%.1fk"):format(k)
  end
  local digits = 0
  while digits < 8 and math.abs(step * 10 ^ digits - math.floor(step * 10 ^ digits + 0.5)) > 1e-6 do
    digits = digits + 1
  end
  return ("%." .. ("%d"):format(digits) .. "f"):format(v)
end

local function panel(out, p, series, xr, ylabel, title, from_zero)
  local x0, x1 = LEFT, W - RIGHT
  local y0, y1 = p.top + p.height, p.top
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(series) do
    for _, pt in ipairs(s.points) do
      lo, hi = math.min(lo, pt[2]), math.max(hi, pt[2])
    end
  end
  if lo == math.huge then lo, hi = 0, 1 end
  if from_zero then lo = math.min(lo, 0) end
  local yt, ylo, yhi, ystep = M.ticks(lo, hi, 5)
  local function sx(v) return x0 + (v - xr.lo) / (xr.hi - xr.lo) * (x1 - x0) end
  local function sy(v) return y0 - (v - ylo) / (yhi - ylo) * (y0 - y1) end
  local add = function(s) out[#out + 1] = s end
  add(('<text x="%d" y="%d" class="title">%s</text>'):format(x0, y1 - 12, esc(title)))
  -- grid and y ticks
  for _, v in ipairs(yt) do
    add(('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>'):format(x0, sy(v), x1, sy(v)))
    add(('<text x="%.1f" y="%.1f" class="ytick">%s</text>'):format(x0 - 8, sy(v) + 4, label(v, ystep, yhi)))
  end
  for _, v in ipairs(xr.ticks) do
    add(('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>'):format(sx(v), y0, sx(v), y1))
    add(('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="axis"/>'):format(sx(v), y0, sx(v), y0 + 5))
    add(('<text x="%.1f" y="%.1f" class="xtick">%s</text>'):format(sx(v), y0 + 20, label(v, xr.step, xr.hi)))
  end
  -- axes
  add(('<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>'):format(x0, y0, x1, y0))
  add(('<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>'):format(x0, y0, x0, y1))
  add(('<text x="%d" y="%.1f" class="ylabel" transform="rotate(-90 %d %.1f)">%s</text>'):format(
    22, (y0 + y1) / 2, 22, (y0 + y1) / 2, esc(ylabel)))
  -- series
  for _, s in ipairs(series) do
    local pts = {}
    for i, pt in ipairs(s.points) do pts[i] = ("%.1f,%.1f"):format(sx(pt[1]), sy(pt[2])) end
    if #pts > 0 then
      add(('<polyline points="%s" fill="none" stroke="%s" stroke-width="%s"/>'):format(
        table.concat(pts, " "), s.color, s.width or 1.5))
      if s.markers then
        for _, pt in ipairs(s.points) do
          add(('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>'):format(sx(pt[1]), sy(pt[2]), s.color))
        end
      end
    end
  end
  -- legend: one row above the plot area, right-aligned, so it never covers data
  local lx = x1
  for i = #series, 1, -1 do
    local s = series[i]
    if s.nolegend then goto next end
    local w = 46 + 7.5 * #s.name
    lx = lx - w
    local yy = y1 - 17
    add(('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2.5"/>'):format(lx, yy, lx + 28, yy, s.color))
    if s.markers then add(('<circle cx="%.1f" cy="%d" r="3.5" fill="%s"/>'):format(lx + 14, yy, s.color)) end
    add(('<text x="%.1f" y="%d" class="legendtext">%s</text>'):format(lx + 34, yy + 4, esc(s.name)))
    ::next::
  end
end

-- The curves of metric records: train loss, val loss and tokens/s points, and the step range.
local function curves(recs, span)
  local train, val, tps = {}, {}, {}
  for _, r in ipairs(recs) do
    local s = tonumber(r.step)
    if s then
      span.lo, span.hi = math.min(span.lo, s), math.max(span.hi, s)
      if type(r.loss) == "number" then train[#train + 1] = { s, r.loss } end
      if type(r.val_loss) == "number" then val[#val + 1] = { s, r.val_loss } end
      if type(r.tokens_per_s) == "number" then tps[#tps + 1] = { s, r.tokens_per_s } end
    end
  end
  return train, val, tps
end

local function step_axis(span)
  if span.lo == math.huge then span.lo, span.hi = 0, 1 end
  local xt, xlo, xhi, xstep = M.ticks(math.min(0, span.lo), span.hi, 8)
  return { lo = xlo, hi = xhi, ticks = xt, step = xstep }
end

local function head()
  local out = {}
  out[#out + 1] = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">')
    :format(W, H, W, H)
  out[#out + 1] = [[<style>
  text { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; font-size: 13px; fill: #222; }
  .title { font-size: 16px; font-weight: bold; }
  .xtick { text-anchor: middle; } .ytick { text-anchor: end; }
  .ylabel { text-anchor: middle; font-size: 14px; } .xlabel { text-anchor: middle; font-size: 14px; }
  .grid { stroke: #e4e4e4; stroke-width: 1; } .axis { stroke: #444; stroke-width: 1.2; }
  .legend { fill: white; fill-opacity: 0.9; stroke: #bbb; } .legendtext { font-size: 13px; }
</style>]]
  out[#out + 1] = ('<rect width="%d" height="%d" fill="white"/>'):format(W, H)
  return out
end

local function tail(out)
  out[#out + 1] = ('<text x="%d" y="%d" class="xlabel">step</text>'):format((LEFT + W - RIGHT) / 2, H - 12)
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n") .. "\n"
end

-- SVG text for metric records (as metrics.read returns them).
function M.svg(recs, title)
  local span = { lo = math.huge, hi = -math.huge }
  local train, val, tps = curves(recs, span)
  local xr = step_axis(span)
  local out = head()
  panel(out, PANELS[1], {
    { name = "train loss", points = train, color = COLORS.train },
    { name = "val loss", points = val, color = COLORS.val, markers = true, width = 2 },
  }, xr, "loss (nats/token)", (title or "run") .. " — loss")
  panel(out, PANELS[2], {
    { name = "tokens/s", points = tps, color = COLORS.tps },
  }, xr, "tokens/s", "throughput", true)
  return tail(out)
end

-- Distinct colours for runs drawn together.
local PALETTE = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf" }

-- Several runs in one SVG: runs = { { name = ..., recs = ... }, ... }; each
-- run's training loss (and held-out loss, dotted with markers) above and its
-- tokens/s below, one colour per run.
function M.compare_svg(runs, title)
  local span = { lo = math.huge, hi = -math.huge }
  local loss, speed = {}, {}
  for i, run in ipairs(runs) do
    local color = PALETTE[(i - 1) % #PALETTE + 1]
    local train, val, tps = curves(run.recs, span)
    loss[#loss + 1] = { name = run.name, points = train, color = color }
    if #val > 0 then loss[#loss + 1] = { name = run.name .. " val", points = val, color = color, markers = true, width = 1,
                                     nolegend = true } end
    speed[#speed + 1] = { name = run.name, points = tps, color = color }
  end
  local xr = step_axis(span)
  local out = head()
  panel(out, PANELS[1], loss, xr, "loss (nats/token)", (title or "runs") .. " — loss")
  panel(out, PANELS[2], speed, xr, "tokens/s", "throughput", true)
  return tail(out)
end

return M
