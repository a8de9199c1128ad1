-- W2: a producer thread sends 200,000 integers to a consumer thread through a queue.Queue (messages/s).
local thread = require "thread"
local queue = require "queue"
local time = require "time"

local N = 200000
local q = queue.Queue()

local function consume(q, n)
  local get = q.get
  for _ = 1, n do get(q) end
end

local function produce(q, n)
  local put = q.put
  for i = 1, n do put(q, i) end
end

local t0 = time.perf_counter()
local consumer = thread.Thread{target = consume, args = {q, N}}
local producer = thread.Thread{target = produce, args = {q, N}}
consumer:start()
producer:start()
producer:join()
consumer:join()
local elapsed = time.perf_counter() - t0
print(("RESULT %.0f msg/s higher"):format(N / elapsed))
