-- W3 (baseline): the CPU loop s = s + (i*i) % 7 for i = 1..1e8 on the main thread, no thread at all (seconds).
local time = require "time"

local N = 100000000

local function loop(lo, hi)
  local s = 0
  for i = lo, hi do s = s + (i * i) % 7 end
  return s
end

local t0 = time.perf_counter()
local s = loop(1, N)
local elapsed = time.perf_counter() - t0
print("sum", s)
print(("RESULT %.2f s lower"):format(elapsed))
