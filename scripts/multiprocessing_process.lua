-- The tutorial's Process program: start a child process that runs a function,
-- and wait for it to end.
local process = require "process"

-- What the child process runs.
local function run_proc(name)
  print(("Run child process %s (%d)..."):format(name, process.getpid()))
end

print(("Parent process %d."):format(process.getpid()))
local p = process.Process{target = run_proc, args = {"test"}}
print("Child process will start.")
p:start()
p:join()
print("Child process end.")
