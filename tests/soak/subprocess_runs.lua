-- Soak: N subprocess.run calls of `echo` with stdout and stderr captured
-- (three pipes and a pidfd each), one in ten with a timeout that expires
-- (`sleep`, killed and reaped), each result checked; this process's
-- descriptors, children and memory do not grow.
--   plua subprocess_runs.lua   (2,000 runs, times PLUA_SOAK_SCALE)
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local soak = require "soak"
local subprocess = require "subprocess"
local time = require "time"

local N = soak.size(2000)
local name = "subprocess_runs"

local function one(i)
  if i % 10 == 0 then
    local ok, err = pcall(subprocess.run, {"sleep", "30", capture_output = true, timeout = 0.01})
    if ok or err.kind ~= subprocess.TimeoutExpired then
      error(("%s: run %d: expected TimeoutExpired, got %s"):format(name, i, tostring(err)))
    end
    return
  end
  local r = subprocess.run{"echo", tostring(i), capture_output = true, input = "x"}
  if r.returncode ~= 0 or r.stdout ~= i .. "\n" or r.stderr ~= "" then
    error(("%s: run %d: returncode %s, stdout %q"):format(name, i, tostring(r.returncode), tostring(r.stdout)))
  end
end

one(1)  -- lazily made state (the reaper, the spawner) is in the baseline
local samples = {soak.sample("before")}
local progress = soak.progress(N, samples)
local t0 = time.monotonic()
for i = 1, N do
  one(i)
  progress(i)
end
local seconds = time.monotonic() - t0
samples[#samples + 1] = soak.sample("after")
soak.report(name, N, seconds, samples, {rate = ("%.0f/s"):format(N / seconds)})
soak.check(name, samples)
