-- task_master.lua: the tutorial's distributed master. It serves two queues
-- over the network (Python's multiprocessing.managers protocol, so the
-- tutorial's Python task_worker.py works with it too), puts 10 tasks and
-- collects 10 results.
--   plua task_master.lua [port]     (port: argument, $PLUA_MANAGER_PORT, or 5000)
local manager = require "manager"
local queue = require "queue"

-- The queues tasks go out on and results come back on.
local task_queue = queue.Queue()
local result_queue = queue.Queue()

local port = math.tointeger(tonumber(arg[1] or os.getenv("PLUA_MANAGER_PORT") or "5000"))

-- Register both queues on the network; the callables return the queues served.
local m = manager.BaseManager{address = {"127.0.0.1", port}, authkey = "abc"}
m:register("get_task_queue", function() return task_queue end)
m:register("get_result_queue", function() return result_queue end)
-- Serve from a background thread, so this script goes on.
m:start()
-- The queues as the network sees them.
local task = m:get_task_queue()
local result = m:get_result_queue()
-- Put some tasks in.
for _ = 1, 10 do
  local n = math.random(0, 10000)
  print(("Put task %d..."):format(n))
  task:put(n)
end
-- Read the results.
print("Try get results...")
for _ = 1, 10 do
  local r = result:get(true, 10)
  print(("Result: %s"):format(r))
end
m:shutdown()
print("master exit.")
