-- Soak: a process Pool whose workers are replaced every 10 tasks
-- (maxtasksperchild), N tasks in all (so N / 10 worker processes started,
-- ended and reaped), sent in batches of apply_async; every result is checked
-- and the pool is terminated at the end. This process's descriptors, children
-- and memory do not grow.
--   plua pool_workers.lua   (20,000 tasks, times PLUA_SOAK_SCALE)
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local soak = require "soak"
local pool = require "pool"
local time = require "time"

local N = soak.size(20000, 100)
local BATCH = 100
local name = "pool_workers"

local function square(x) return x * x end

-- A first pool, so that lazily made state is in the baseline.
do
  local p <close> = pool.Pool(2)
  assert(p:apply(square, {3}) == 9)
end
local samples = {soak.sample("before")}
local progress = soak.progress(N, samples)
local t0 = time.monotonic()
local p = pool.Pool{processes = 2, maxtasksperchild = 10}
local done, sum = 0, 0
while done < N do
  local batch = {}
  for i = done + 1, math.min(done + BATCH, N) do batch[#batch + 1] = {i, p:apply_async(square, {i})} end
  for _, b in ipairs(batch) do
    local v = b[2]:get(60)
    if v ~= b[1] * b[1] then error(("%s: task %d gave %s"):format(name, b[1], tostring(v))) end
    sum = sum + v
  end
  done = done + #batch
  progress(done)
end
p:close()
p:join()
p = nil
local seconds = time.monotonic() - t0
samples[#samples + 1] = soak.sample("after")
local expected = N * (N + 1) * (2 * N + 1) // 6
assert(sum == expected, ("%s: checksum %d, expected %d"):format(name, sum, expected))
soak.report(name, N, seconds, samples, {rate = ("%.0f/s"):format(N / seconds), checksum = sum})
soak.check(name, samples)
