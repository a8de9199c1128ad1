-- W4c Pool(2):map of a squaring function over 100,000 integers with chunksize=1 (one task per item) (tasks/s).
-- The pool is started and warmed up first; the map is timed, best of 3.
local pool = require "pool"
local time = require "time"

local N = 100000
local function square(x) return x * x end

local p = pool.Pool(2)
local xs = {}
for i = 1, N do xs[i] = i end
p:map(square, {1, 2, 3, 4})
local best = math.huge
for _ = 1, 3 do
  local t0 = time.perf_counter()
  local r = p:map(square, xs, 1)
  local elapsed = time.perf_counter() - t0
  assert(#r == N and r[N] == N * N)
  best = math.min(best, elapsed)
end
p:close()
p:join()
print(("RESULT %.0f tasks/s higher"):format(N / best))
