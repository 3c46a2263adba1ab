-- spec/lua/plot_spec.lua — the SVG of a run's curves, from a fixture metrics.jsonl.

local plot = require "moonspeed.plot"
local metrics = require "moonspeed.metrics"
local support = require "support"

local FIXTURE = "spec/fixtures/runs/tiny"

-- A strict-enough XML check: every tag closes in order, attributes are quoted.
local function well_formed(svg)
  local stack = {}
  local body = svg:gsub("<style>.-</style>", "<style/>")
  for slash, name, attrs, selfclose in body:gmatch("<(/?)([%w:]+)([^>]-)(/?)>") do
    if slash == "/" then
      if stack[#stack] ~= name then return false, "closing " .. name .. " inside " .. tostring(stack[#stack]) end
      stack[#stack] = nil
    else
      local rest = attrs:gsub('%s+[%w:-]+="[^"]*"', "")
      if rest:match("%S") then return false, "bad attributes: " .. attrs end
      if selfclose == "" then stack[#stack + 1] = name end
    end
  end
  if #stack > 0 then return false, "unclosed " .. stack[#stack] end
  local text = body:gsub("<[^>]*>", "")
  if text:find("[<>]") or text:find("&[^#%w]") then return false, "unescaped text" end
  return true
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

describe("plot", function()
  local recs = assert(metrics.read(FIXTURE .. "/metrics.jsonl"))

  it("reads the fixture", function()
    assert.are.equal(300, #recs)
  end)

  it("draws loss, val loss and throughput with axes, labels and legends", function()
    local svg = plot.svg(recs, "tiny <run> & co")
    assert.is_true(well_formed(svg))
    assert.matches('^<svg xmlns="http://www.w3.org/2000/svg" width="960" height="680"', svg)
    -- one polyline per series, a point per record (val loss: one per evaluation)
    local lines = {}
    for pts in svg:gmatch('<polyline points="([^"]*)"') do lines[#lines + 1] = count(pts, "[%d.]+,[%d.]+") end
    local val = 0
    for _, r in ipairs(recs) do if r.val_loss then val = val + 1 end end
    assert.are.same({ 300, val, 300 }, lines)
    assert.are.equal(val + 1, count(svg, "<circle"))               -- markers + the legend's marker
    for _, label in ipairs({ "loss %(nats/token%)", "tokens/s", ">step<", ">train loss<", ">val loss<",
                             "tiny &lt;run&gt; &amp; co — loss", ">throughput<" }) do
      assert.matches(label, svg)
    end
    assert.is_true(count(svg, 'class="xtick"') >= 8)
    assert.is_true(count(svg, 'class="ytick"') >= 6)
    assert.are.equal(4, count(svg, 'class="axis"/>') - count(svg, 'class="xtick"'))
  end)

  it("keeps every point inside the plot area", function()
    local svg = plot.svg(recs, "x")
    for pts in svg:gmatch('<polyline points="([^"]*)"') do
      for x, y in pts:gmatch("([%d.]+),([%d.]+)") do
        x, y = tonumber(x), tonumber(y)
        assert.is_true(x >= 90 and x <= 930 and y >= 60 and y <= 620)
      end
    end
  end)

  it("chooses round ticks", function()
    local ticks = plot.ticks(0, 300, 8)
    assert.are.same({ 0, 50, 100, 150, 200, 250, 300 }, ticks)
    ticks = plot.ticks(1.52, 5.61, 5)
    assert.are.same({ 1, 2, 3, 4, 5, 6 }, ticks)
  end)

  it("is written by `moonspeed plot RUN_DIR -o FILE`", function()
    assert.is_nil(support.missing_build())
    local dir = support.tmpdir()
    local res = support.moonspeed({ "plot", FIXTURE, "-o", dir .. "/p.svg" })
    assert.are.equal(0, res.code)
    assert.are.equal(("wrote %s/p.svg (300 steps)\n"):format(dir), res.stdout)
    assert.are.equal(plot.svg(recs, "tiny"), support.read(dir .. "/p.svg"))
    res = support.moonspeed({ "plot", dir })
    assert.are.equal(1, res.code)
    assert.matches("^moonspeed: cannot read .*/metrics.jsonl", res.stderr)
    support.cleanup()
  end)
end)
