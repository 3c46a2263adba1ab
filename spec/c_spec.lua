-- spec/c_spec.lua — the C specs (spec/c/*.c), one busted test per C test.
--
-- build/spec-c (or $MS_BUILD/spec-c) --list names the tests; each runs in its own process, so a
-- crash is a failed test with its signal, not a dead runner. A failure shows
-- the test's stderr (the first mismatches, file:line).

package.path = "spec/lua/?.lua;" .. package.path
local support = require "support"

local EXE = support.build .. "/spec-c"

describe("C specs", function()
  if not support.exists(EXE) then
    it("are built", function()
      error(EXE .. " is missing: build it with `make " .. EXE .. "` (make test does; make test-asan for build-asan)")
    end)
    return
  end

  local list = support.sh(EXE .. " --list")
  local names = {}
  for name in list.stdout:gmatch("[^\n]+") do names[#names + 1] = name end

  it("are listed", function()
    assert.are.equal(0, list.code)
    assert.is_true(#names > 0)
  end)

  for _, name in ipairs(names) do
    it(name, function()
      local res = support.sh(EXE .. " " .. support.quote(name))
      support.cleanup()
      if res.code ~= 0 then
        local why = res.code > 128 and ("killed by signal %d"):format(res.code - 128) or ("exit status %d"):format(res.code)
        error(("%s failed (%s)\n%s%s"):format(name, why, res.stderr, res.stdout), 0)
      end
    end)
  end
end)
