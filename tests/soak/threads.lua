-- Soak: N threads started and joined (waves of 8 running at once), each
-- putting a value computed from its argument into a queue of its own and
-- returning another; every result is checked, and this process's resources
-- do not grow (the queues, dropped once read, would show as arena growth if
-- a thread kept a reference). OS threads parked for reuse must
-- leave on their own (within 10 s) so the thread count is back to the start.
--   plua threads.lua   (10,000 threads, times PLUA_SOAK_SCALE)
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local soak = require "soak"
local queue = require "queue"
local thread = require "thread"
local time = require "time"

local N = soak.size(10000)
local WAVE = 8
local name = "threads"

local function work(q, i, tag)
  q:put(i * 3)
  return i * 2, tag .. i
end

-- One thread first, so that lazily made state is in the baseline; then wait
-- until its parked OS thread has left.
local warm = thread.Thread{target = work, args = {queue.Queue(), 0, "t"}}
warm:start()
assert(warm:join(60), "warm-up thread did not end")
warm = nil
local samples = {soak.sample_until("before", function(s) return s.threads == 1 end, 10)}
local progress = soak.progress(N, samples)

local started, sum = 0, 0
local t0 = time.monotonic()
while started < N do
  local wave = {}
  for _ = 1, math.min(WAVE, N - started) do
    started = started + 1
    local q = queue.Queue()
    local t = thread.Thread{target = work, args = {q, started, "t"}}
    t:start()
    wave[#wave + 1] = {t, q, started}
  end
  for _, w in ipairs(wave) do
    local t, q, i = w[1], w[2], w[3]
    if not t:join(60) then error(("%s: %s did not end within 60 s"):format(name, t.name)) end
    local doubled, text = t:result()
    if doubled ~= i * 2 or text ~= "t" .. i then
      error(("%s: thread %d returned %s, %s"):format(name, i, tostring(doubled), tostring(text)))
    end
    local tripled = q:get(true, 30)
    if tripled ~= i * 3 then error(("%s: thread %d put %s"):format(name, i, tostring(tripled))) end
    sum = sum + doubled
  end
  wave = nil
  progress(started)
end
local seconds = time.monotonic() - t0
samples[#samples + 1] = soak.sample_until("after", function(s) return s.threads == samples[1].threads end, 10)

assert(sum == N * (N + 1), ("%s: checksum %d, expected %d"):format(name, sum, N * (N + 1)))
soak.report(name, N, seconds, samples, {rate = ("%.0f/s"):format(N / seconds), checksum = sum})
if samples[#samples].threads ~= samples[1].threads then
  error(("%s: %d OS threads at the start, %d 10 s after the end"):format(name, samples[1].threads,
    samples[#samples].threads), 0)
end
soak.check(name, samples)
