-- The tutorial's os.fork program: one call, two returns. The child gets 0,
-- the parent gets the child's pid.
local process = require "process"

print(("Process (%d) start..."):format(process.getpid()))
local pid = process.fork()
if pid == 0 then
  print(("I am child process (%d) and my parent is %d."):format(process.getpid(), process.getppid()))
else
  print(("I (%d) just created a child process (%d)."):format(process.getpid(), pid))
end
