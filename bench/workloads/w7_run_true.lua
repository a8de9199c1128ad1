-- W7: µs per subprocess.run{"true"} (spawn, exec, wait), 500 runs.
local subprocess = require "subprocess"
local time = require "time"
local runs = 500
subprocess.run{"true"}  -- warm-up: PATH lookup paths, page cache
local t0 = time.perf_counter()
for _ = 1, runs do
  local r = subprocess.run{"true"}
  if r.returncode ~= 0 then error("true failed: " .. r.returncode) end
end
print(("RESULT %.1f us lower"):format((time.perf_counter() - t0) * 1e6 / runs))
