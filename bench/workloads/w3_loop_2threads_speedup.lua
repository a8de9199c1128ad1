-- W3: the CPU loop s = s + (i*i) % 7 for i = 1..1e8 on one thread, then split over two
-- threads; the result is the speedup (one-thread time / two-thread time).
local thread = require "thread"
local time = require "time"

local N = 100000000

local function loop(lo, hi)
  local s = 0
  for i = lo, hi do s = s + (i * i) % 7 end
  return s
end

-- Runs the loop over 1..N split into `parts` threads; returns seconds and the sum.
local function run(parts)
  local t0 = time.perf_counter()
  local threads = {}
  for k = 1, parts do
    local lo = (k - 1) * (N // parts) + 1
    local hi = k == parts and N or k * (N // parts)
    threads[k] = thread.Thread{target = loop, args = {lo, hi}}
    threads[k]:start()
  end
  local s = 0
  for _, t in ipairs(threads) do
    t:join()
    s = s + t:result()
  end
  return time.perf_counter() - t0, s
end

local one, s1 = run(1)
local two, s2 = run(2)
assert(s1 == s2, "the split loop sums differently")
print(("1 thread %.2f s, 2 threads %.2f s"):format(one, two))
print(("RESULT %.2f x higher"):format(one / two))
