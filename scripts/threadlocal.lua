-- The ThreadLocal program of the tutorial: one global thread-local object,
-- and each thread sees only the student it bound to it.
local thread = require "thread"
local threadlocal = require "threadlocal"

-- The global ThreadLocal object.
local_school = threadlocal()

function process_student()
  -- The student bound to the current thread.
  local std = local_school.student
  print(("Hello, %s (in %s)"):format(std, thread.current_thread().name))
end

function process_thread(name)
  -- Bind this thread's student.
  local_school.student = name
  process_student()
end

local t1 = thread.Thread{target = process_thread, args = {"Alice"}, name = "Thread-A"}
local t2 = thread.Thread{target = process_thread, args = {"Bob"}, name = "Thread-B"}
t1:start()
t2:start()
t1:join()
t2:join()
