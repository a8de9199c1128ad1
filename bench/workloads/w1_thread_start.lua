-- W1: Thread create + start + join, 2,000 times one after another, empty body (microseconds per thread).
local thread = require "thread"
local time = require "time"

local N = 2000
local function body() end

local t0 = time.perf_counter()
for _ = 1, N do
  local t = thread.Thread{target = body}
  t:start()
  t:join()
end
local elapsed = time.perf_counter() - t0
print(("RESULT %.1f us lower"):format(elapsed / N * 1e6))
