-- Soak: N processes started and joined (waves of 8 running at once), each
-- given a queue of its own into which it puts its number; every exit code is
-- checked, every number arrives, and this process's resources do not grow.
-- The queues (4 KiB and more of shared arena each) are dropped once read, so
-- a reference a child failed to give back would show as arena growth.
--   plua processes.lua [fork|spawn]   (10,000 fork / 1,000 spawn children, times PLUA_SOAK_SCALE)
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local soak = require "soak"
local process = require "process"
local queue = require "queue"
local time = require "time"

local method = arg[1] or "fork"
assert(method == "fork" or method == "spawn", "start method: fork or spawn")
process.set_start_method(method, true)
local N = soak.size(method == "fork" and 10000 or 1000)
local WAVE = 8
local name = "processes_" .. method

local function child(results, i) results:put(i) end

-- One process first, so that lazily made state (the arena, the child registry) is in the baseline.
local warm = process.Process{target = child, args = {queue.Queue(), 0}}
warm:start()
assert(warm:join(60), "warm-up child did not end")
warm = nil

local samples = {soak.sample("before")}
local started, got, sum = 0, 0, 0
local progress = soak.progress(N, samples)
local t0 = time.monotonic()
while started < N do
  local wave = {}
  for _ = 1, math.min(WAVE, N - started) do
    started = started + 1
    local results = queue.Queue()
    local p = process.Process{target = child, args = {results, started}}
    p:start()
    wave[#wave + 1] = {p, results, started}
  end
  for _, w in ipairs(wave) do
    local p, results, i = w[1], w[2], w[3]
    if not p:join(60) then error(("%s: %s did not end within 60 s"):format(name, p.name)) end
    if p.exitcode ~= 0 then error(("%s: %s exited with %s"):format(name, p.name, p.exitcode)) end
    local v = results:get(true, 30)
    if v ~= i then error(("%s: child %d put %s"):format(name, i, tostring(v))) end
    if not results:empty() then error(("%s: child %d put more than one item"):format(name, i)) end
    sum = sum + v
    got = got + 1
  end
  wave = nil
  progress(started)
end
local seconds = time.monotonic() - t0
samples[#samples + 1] = soak.sample("after")

assert(got == N, ("%s: %d numbers arrived, expected %d"):format(name, got, N))
assert(sum == N * (N + 1) // 2, ("%s: checksum %d, expected %d"):format(name, sum, N * (N + 1) // 2))
soak.report(name, N, seconds, samples, {rate = ("%.0f/s"):format(N / seconds), checksum = sum})
soak.check(name, samples)
