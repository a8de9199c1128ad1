-- W6: Process start + join, 200 times one after another (microseconds per process).
local process = require "process"
local time = require "time"

local N = 200
local function body() end

local t0 = time.perf_counter()
for _ = 1, N do
  local p = process.Process{target = body}
  p:start()
  p:join()
end
local elapsed = time.perf_counter() - t0
print(("RESULT %.0f us lower"):format(elapsed / N * 1e6))
