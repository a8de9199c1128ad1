-- Serves one queue (maxsize 2) as get_queue with the key given, in the
-- foreground until a client sends the protocol's shutdown request:
--   plua serve.lua AUTHKEY PORT
local manager = require "manager"
local queue = require "queue"
local q = queue.Queue(2)
local m = manager.BaseManager{address = {"127.0.0.1", math.tointeger(tonumber(arg[2]))}, authkey = arg[1]}
m:register("get_queue", function() return q end)
m:serve_forever()
print("served; left in the queue: " .. q:qsize())
