-- W7c: ms to push 10 MB through `cat` with Popen:communicate and get it back.
local subprocess = require "subprocess"
local time = require "time"
local data = ("0123456789abcdef"):rep(10 * 1024 * 1024 // 16)
local rounds = 5
local best = math.huge
for _ = 1, rounds do
  local t0 = time.perf_counter()
  local p = subprocess.Popen{"cat", stdin = subprocess.PIPE, stdout = subprocess.PIPE}
  local out = p:communicate(data)
  local elapsed = time.perf_counter() - t0
  if out ~= data or p.returncode ~= 0 then error("cat did not echo the data") end
  best = math.min(best, elapsed)
end
print(("RESULT %.2f ms lower"):format(best * 1000))
