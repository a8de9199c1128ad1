-- The tutorial's process pool: Pool(4) runs five tasks of random length; four
-- start at once and the fifth waits for a free worker.
local pool = require "pool"
local process = require "process"
local time = require "time"

local function long_time_task(name)
  print(("Run task %s (%s)..."):format(name, process.getpid()))
  local start = time.time()
  time.sleep(math.random() * 3)
  local finish = time.time()
  print(("Task %s runs %0.2f seconds."):format(name, finish - start))
end

print(("Parent process %s."):format(process.getpid()))
local p = pool.Pool(4)
for i = 0, 4 do
  p:apply_async(long_time_task, {i})
end
print("Waiting for all subprocesses done...")
p:close()
p:join()
print("All subprocesses done.")
