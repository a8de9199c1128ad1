-- Not a soak: a script that leaks on purpose, so that run.py --selftest can
-- show that the soaks' checks catch each kind of leak.
--   plua leaky.lua fd|memory|child|orphan
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local soak = require "soak"
local subprocess = require "subprocess"

local kind = arg[1]
local N = 200
local keep = {}
local samples = {soak.sample("before")}
local progress = soak.progress(N, samples)
for i = 1, N do
  if kind == "fd" then
    keep[i] = assert(io.open("/dev/null"))
  elseif kind == "memory" then
    keep[i] = string.rep("x", 64 * 1024) .. i  -- 12.5 MiB in all, over the 4 MiB slack
  elseif kind == "child" and i % 50 == 0 then
    keep[i] = subprocess.Popen{"sleep", "30"}  -- still running at the end
  elseif kind == "orphan" and i == N then
    subprocess.call{"sh", "-c", "sleep 30 &"}  -- outlives its parent, re-parented away from plua
  end
  progress(i)
end
samples[#samples + 1] = soak.sample("after")
soak.report("leaky_" .. kind, N, 0, samples)
soak.check("leaky_" .. kind, samples)
