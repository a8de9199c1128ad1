-- The tutorial's Queue program: the parent makes a queue and two children,
-- one writes to it, the other reads from it forever and is terminated at the end.
local process = require "process"
local queue = require "queue"
local time = require "time"

-- What the writer runs.
local function write(q)
  print(("Process to write: %d"):format(process.getpid()))
  for _, value in ipairs{"A", "B", "C"} do
    print(("Put %s to queue..."):format(value))
    q:put(value)
    time.sleep(math.random())
  end
end

-- What the reader runs.
local function read(q)
  print(("Process to read: %d"):format(process.getpid()))
  while true do
    local value = q:get(true)
    print(("Get %s from queue."):format(value))
  end
end

-- The parent makes the queue and hands it to both children.
local q = queue.Queue()
local pw = process.Process{target = write, args = {q}}
local pr = process.Process{target = read, args = {q}}
pw:start()   -- start the writer
pr:start()   -- start the reader
pw:join()    -- wait for the writer to end
pr:terminate()  -- the reader loops forever: it can only be stopped
