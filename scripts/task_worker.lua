-- task_worker.lua: the tutorial's distributed worker. It connects to a
-- task master (plua's task_master.lua or the tutorial's Python task_master.py),
-- takes tasks, and puts results back.
--   plua task_worker.lua [port] [host]   (port: argument, $PLUA_MANAGER_PORT, or 5000)
local manager = require "manager"
local time = require "time"

local server_addr = arg[2] or "127.0.0.1"
local port = math.tointeger(tonumber(arg[1] or os.getenv("PLUA_MANAGER_PORT") or "5000"))

-- This manager only uses queues from the network, so it registers names only.
local m = manager.BaseManager{address = {server_addr, port}, authkey = "abc"}
m:register("get_task_queue")
m:register("get_result_queue")

print(("Connect to server %s..."):format(server_addr))
-- Unlike the tutorial, give a master that is still starting a few seconds.
local give_up = time.monotonic() + 10
while true do
  local ok, err = pcall(m.connect, m)
  if ok then break end
  if (type(err) == "table" and err.kind == manager.AuthenticationError) or time.monotonic() > give_up then
    error(err, 0)
  end
  time.sleep(0.05)
end
local task = m:get_task_queue()
local result = m:get_result_queue()
-- Take tasks from the task queue and write results to the result queue.
for _ = 1, 10 do
  local ok, err = pcall(function()
    local n = task:get(true, 1)
    print(("run task %d * %d..."):format(n, n))
    local r = ("%d * %d = %d"):format(n, n, n * n)
    time.sleep(1)
    result:put(r)
  end)
  if not ok then
    if type(err) == "table" and err.kind == manager.Empty then
      print("task queue is empty.")
    else
      error(err, 0)
    end
  end
end
print("worker exit.")
