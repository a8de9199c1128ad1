-- W5: 200,000 integers from one process to another through a queue.Queue (messages/s).
local process = require "process"
local queue = require "queue"
local time = require "time"

local N = 200000
local q = queue.Queue()
local done = queue.Queue()

local function consume(q, done, n)
  local get = q.get
  for _ = 1, n do get(q) end
  done:put(true)
end

local t0 = time.perf_counter()
local consumer = process.Process{target = consume, args = {q, done, N}}
consumer:start()
local put = q.put
for i = 1, N do put(q, i) end
done:get()
local elapsed = time.perf_counter() - t0
consumer:join()
print(("RESULT %.0f msg/s higher"):format(N / elapsed))
