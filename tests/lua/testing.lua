-- A small test harness for plua's Lua-level tests.
--   local T = require "testing"
--   T.test("name", function() T.eq(1 + 1, 2) end)
--   T.run()   -- prints "N passed, M failed" and exits non-zero on failure
local T = {}
local cases = {}

function T.test(name, fn) cases[#cases + 1] = { name = name, fn = fn } end

local function fail(msg, level) error(msg, (level or 1) + 2) end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

function T.eq(actual, expected, what)
  if actual ~= expected or math.type(actual) ~= math.type(expected) then
    fail(("%sexpected %s, got %s"):format(what and (what .. ": ") or "", show(expected), show(actual)))
  end
end

function T.ok(cond, what) if not cond then fail(what or "expected a true value") end end

function T.near(actual, expected, tolerance, what)
  if type(actual) ~= "number" or math.abs(actual - expected) > tolerance then
    fail(("%sexpected %s +- %s, got %s"):format(what and (what .. ": ") or "", expected, tolerance, show(actual)))
  end
end

-- Deep equality of plain data.
local function same(a, b, seen)
  if a == b then return math.type(a) == math.type(b) end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do if not same(v, b[k], seen) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
T.same = same

function T.deep(actual, expected, what)
  if not same(actual, expected) then
    fail(("%stables differ"):format(what and (what .. ": ") or ""))
  end
end

-- Calls fn and expects an error whose text (tostring) matches `pattern`
-- (plain find); returns the error value.
function T.raises(fn, pattern, ...)
  local ok, err = pcall(fn, ...)
  if ok then fail("expected an error matching " .. show(pattern)) end
  local text = tostring(err)
  if pattern and not text:find(pattern, 1, true) then
    fail(("error %s does not contain %s"):format(show(text), show(pattern)))
  end
  return err
end

-- Expects an error object of the given kind; returns it.
function T.raises_kind(fn, kind, ...)
  local ok, err = pcall(fn, ...)
  if ok then fail("expected an error of kind " .. kind) end
  if type(err) ~= "table" or err.kind ~= kind then
    fail(("expected kind %s, got %s"):format(kind, show(tostring(err))))
  end
  return err
end

function T.run()
  local passed, failed = 0, 0
  local filter = os.getenv("PLUA_TEST_FILTER")
  for _, case in ipairs(cases) do
    if not filter or case.name:find(filter, 1, true) then
      -- Named before it runs, so a test that hangs is named in the timeout's output.
      io.stdout:write("- ", case.name, "\n")
      io.stdout:flush()
      local ok, err = xpcall(case.fn, debug.traceback)
      if ok then
        passed = passed + 1
      else
        failed = failed + 1
        io.stderr:write(("FAIL %s\n  %s\n"):format(case.name, tostring(err)))
      end
    end
  end
  print(("%d passed, %d failed"):format(passed, failed))
  os.exit(failed == 0 and 0 or 1)
end

return T
