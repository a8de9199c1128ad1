-- W8: round trips/s of put + get of an integer through a manager-served queue,
-- from a client process (w8_manager_client.lua, started with io.popen) to this
-- process's manager server.
local manager = require "manager"
local queue = require "queue"
local q = queue.Queue()
local m = manager.BaseManager{address = {"127.0.0.1", 0}, authkey = "bench"}
m:register("get_queue", function() return q end)
m:start()
local plua = os.getenv("PLUA_BENCH_PLUA") or "plua"
local client = io.popen(("%q w8_manager_client.lua %d 3000"):format(plua, m.address[2]))
for line in client:lines() do print(line) end
local ok = client:close()
m:shutdown()
if not ok then error("the client failed") end
