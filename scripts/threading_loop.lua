-- The LoopThread program of the tutorial: a named thread counts to five, one
-- second apart, while the main thread waits for it.
local thread = require "thread"
local time = require "time"

-- The code the new thread runs.
function loop()
  print(("thread %s is running..."):format(thread.current_thread().name))
  local n = 0
  while n < 5 do
    n = n + 1
    print(("thread %s >>> %s"):format(thread.current_thread().name, n))
    time.sleep(1)
  end
  print(("thread %s is ended."):format(thread.current_thread().name))
end

print(("thread %s is running..."):format(thread.current_thread().name))
local t = thread.Thread{target = loop, name = "LoopThread"}
t:start()
t:join()
print(("thread %s ended."):format(thread.current_thread().name))
