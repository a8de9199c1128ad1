local T = require "testing"
local time = require "time"

T.test("time() is the epoch in seconds, with sub-second precision", function()
  local t = time.time()
  T.eq(math.type(t), "float")
  T.near(t, os.time(), 2)
end)

T.test("monotonic and perf_counter never go back", function()
  local a, b = time.monotonic(), time.perf_counter()
  local c, d = time.monotonic(), time.perf_counter()
  T.ok(c >= a and d >= b)
end)

T.test("sleep waits at least as long as asked", function()
  local t0 = time.monotonic()
  time.sleep(0.05)
  T.ok(time.monotonic() - t0 >= 0.049, "slept too short")
  time.sleep(0)
end)

T.test("sleep rejects bad lengths with an argument error", function()
  T.raises(function() time.sleep(-1) end, "bad argument #1 to 'sleep'")
  T.raises(function() time.sleep("x") end, "bad argument #1 to 'sleep'")
  T.raises(function() time.sleep() end, "bad argument #1 to 'sleep'")
end)

T.test("the module is preloaded", function()
  T.eq(package.preload.time ~= nil, true)
  T.eq(require "time", time)
end)

T.run()
