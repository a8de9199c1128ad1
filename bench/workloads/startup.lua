-- Process start-up: ms per `plua -e ""`, started 50 times through system(3)
-- (os.execute), the same way startup.py starts `python3 -c ""`.
local time = require "time"
local starts = 50
local plua = os.getenv("PLUA_BENCH_PLUA") or arg[-1]
local command = "exec '" .. plua:gsub("'", "'\\''") .. "' -e ''"
local t0 = time.perf_counter()
for _ = 1, starts do
  local ok, how, code = os.execute(command)
  if not ok then error(("start %s failed: %s %s"):format(plua, how, code)) end
end
print(("RESULT %.3f ms lower"):format((time.perf_counter() - t0) * 1000 / starts))
