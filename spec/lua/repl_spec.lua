-- spec/lua/repl_spec.lua — `moonspeed repl` as a new user meets it.
--
-- Driven through a pseudo-terminal (script(1) runs the REPL on a pty and
-- forwards what we type), so libedit's readline and the history are the real
-- ones; and once more through a pipe, where it falls back to io.read.

local support = require "support"
local json = require "moonspeed.json"

local TINY = "spec/fixtures/recipes/tiny.lua"

local SESSION = table.concat({
  "1 + 1",
  "x =",
  "  40 + 2",
  "x",
  "for i = 1, 3 do",
  "  io.write(i, ';')",
  "end",
  "print()",
  "s1 = e:step()",
  "s2 = e:step()",
  'string.format("losses %.9g %.9g", s1.loss, s2.loss)',
  "e:step()",
  "e:units()",
  'e:param("block.0.attn.wq")',
  "e:tensor(1, 1).shape",
  "e:memory()",
  "e:plan()",
  "recipe.train.steps, recipe.model.name",
  'e:generate("And", { tokens = 5, temperature = 0 }) == e:generate("And", { tokens = 5, temperature = 0 })',
  "nosuch()",
  "1 +* 2",
  "e:tensor(9, 1)",
  "{ a = 1, list = { 1, 2, 3 } }",
  "help()",
  "exit()",
  "",
}, "\n")

local function check_session(out)
  assert.truthy(out:find("moonspeed repl: spec-tiny (", 1, true), out)
  assert.truthy(out:find("[\n ]2\r?\n"))                                -- 1 + 1
  assert.truthy(out:find("[\n ]42\r?\n"))                               -- a statement over two lines
  assert.truthy(out:find("1;2;3;", 1, true))                            -- a loop over three lines
  assert.truthy(out:find("[\n ]step 3  loss %d%.%d+  lr [%d.e+-]+  grad_norm [%d.]+ "))
  assert.truthy(out:find("block.1", 1, true))
  assert.truthy(out:find("tensor block.0.attn.wq (32, 32) f32  mean", 1, true))
  assert.truthy(out:find("{ 258, 32 }", 1, true))
  assert.truthy(out:find("memory (", 1, true))
  assert.truthy(out:find("\nfits: the plan needs", 1, true))
  assert.truthy(out:find("[\n ]6\r?\nspec%-tiny\r?\n"))
  assert.truthy(out:find("[\n ]true\r?\n"))
  assert.truthy(out:find("error: repl:1: attempt to call global 'nosuch' (a nil value)", 1, true))
  assert.truthy(out:find("error: repl:1: unexpected symbol near '*'", 1, true))
  assert.truthy(out:find("error: repl:1: e:tensor(unit, i): unit 9 does not exist; units are 1..4", 1, true))
  assert.truthy(out:find("{ a = 1, list = { 1, 2, 3 } }", 1, true))
  assert.truthy(out:find("e:generate(text, {tokens = 200", 1, true))
  return out:match("losses ([%d.]+) ([%d.]+)")
end

describe("moonspeed repl", function()
  assert.is_nil(support.missing_build())
  assert.is_nil(support.missing_data())

  local dir, run_losses
  setup(function()
    dir = support.tmpdir()
    local res = support.moonspeed({ "run", TINY, "train.steps=2", "log.sample_tokens=0", "--run-dir", dir .. "/run" })
    assert(res.code == 0, res.stderr)
    run_losses = {}
    for line in support.read(dir .. "/run/metrics.jsonl"):gmatch("[^\n]+") do
      run_losses[#run_losses + 1] = json.decode(line).loss
    end
  end)
  teardown(function() support.cleanup() end)

  it("works on a terminal: line editing, multi-line input, pretty printing, history", function()
    local home = dir .. "/home"
    os.execute("mkdir -p " .. support.quote(home))
    local cmd = ("script -qfec %s /dev/null"):format(support.quote(support.exe .. " repl " .. TINY))
    local res = support.sh(cmd, { stdin = SESSION, env = { HOME = home, TERM = "xterm" } })
    assert.are.equal(0, res.code, res.stdout .. res.stderr)
    local a, b = check_session(res.stdout)
    -- the continuation prompt on multi-line input
    assert.truthy(res.stdout:find(">> ", 1, true))
    -- stepping here gives the numbers `moonspeed run` wrote
    assert.are.same(run_losses, { tonumber(a), tonumber(b) })
    -- history: one entry per complete input, multi-line chunks kept whole
    local hist = support.read(home .. "/.moonspeed_history")
    assert.is_not_nil(hist, "no history file")
    assert.truthy(hist:find("e:step()", 1, true))
    assert.truthy(hist:find("for\\040i\\040=\\0401,\\0403\\040do", 1, true) or hist:find("for i = 1, 3 do", 1, true))
    assert.truthy(hist:find("exit()", 1, true))
  end)

  it("reads plain lines from a pipe", function()
    local res = support.moonspeed({ "repl", TINY }, { stdin = SESSION })
    assert.are.equal(0, res.code, res.stderr)
    local a, b = check_session(res.stdout)
    assert.are.same(run_losses, { tonumber(a), tonumber(b) })
    assert.truthy(res.stdout:find("\n> >> > 42\n", 1, true))
  end)

  it("leaves on end of input", function()
    local res = support.moonspeed({ "repl", TINY }, { stdin = "e:step().step\n" })
    assert.are.equal(0, res.code)
    assert.truthy(res.stdout:find("\n> 1\n> \n$"))
  end)

  it("checks its recipe first", function()
    local res = support.moonspeed({ "repl", TINY, "train.lrr=1" })
    assert.are.equal(1, res.code)
    assert.are.equal("moonspeed: override train.lrr=1: unknown key train.lrr; did you mean train.lr?\n", res.stderr)
  end)
end)
