local T = require "testing"
local lock = require "lock"
local time = require "time"
local process = require "process"

-- Polls cond() until true or `seconds` pass.
local function eventually(cond, seconds)
  local deadline = time.monotonic() + (seconds or 10)
  while not cond() do
    if time.monotonic() > deadline then return false end
    time.sleep(0.005)
  end
  return true
end

-- Runs fn in a forked child that exits 0 when fn returns true; returns the Process.
local function in_child(fn, ...)
  local p = process.Process{target = function(...) if not fn(...) then os.exit(3) end end, args = {...}}
  p:start()
  return p
end

T.test("kinds are exported as strings", function()
  T.eq(lock.BrokenBarrierError, "BrokenBarrierError")
  T.eq(lock.RuntimeError, "RuntimeError")
  T.eq(lock.ValueError, "ValueError")
  T.eq(lock.TimeoutError, "TimeoutError")
end)

T.test("Lock acquire/release/locked as Python", function()
  local l = lock.Lock()
  T.eq(l:locked(), false)
  T.eq(l:acquire(), true)
  T.eq(l:locked(), true)
  T.eq(l:acquire(false), false)
  local t0 = time.monotonic()
  T.eq(l:acquire(true, 0.05), false)
  T.ok(time.monotonic() - t0 >= 0.049, "timed out too early")
  T.ok(time.monotonic() - t0 < 2, "timed out too late")
  l:release()
  local err = T.raises_kind(function() l:release() end, "RuntimeError")
  T.ok(tostring(err):find("Lock:release: release unlocked lock", 1, true))
end)

T.test("acquire argument errors", function()
  local l = lock.Lock()
  T.raises(function() l:acquire(false, 1) end, "bad argument #2 to 'acquire'")
  T.raises(function() l:acquire(true, -1) end, "bad argument #2 to 'acquire'")
  T.raises(function() l:acquire("yes") end, "bad argument #1 to 'acquire'")
  T.raises(function() l.acquire(42) end, "plua.lock.Lock expected")
end)

T.test("guard releases at scope exit, and on error", function()
  local l = lock.Lock()
  do
    local _ <close> = l:guard()
    T.eq(l:locked(), true)
  end
  T.eq(l:locked(), false)
  local ok = pcall(function()
    local _ <close> = l:guard()
    error("boom")
  end)
  T.eq(ok, false)
  T.eq(l:locked(), false)
  l:acquire()
  T.raises_kind(function() l:guard(0.02) end, "TimeoutError")
  l:release()
end)

T.test("closing twice is harmless; a closed object says so", function()
  local l = lock.Lock()
  do local _ <close> = l end
  l:close()
  T.raises(function() l:acquire() end, "Lock:acquire: the object is closed")
  local e = lock.Event()
  e:close(); e:close()
end)

T.test("RLock is re-entrant and owned", function()
  local r = lock.RLock()
  T.eq(r:acquire(), true)
  T.eq(r:acquire(false), true)
  r:release()
  T.eq(r:locked(), true)
  r:release()
  T.eq(r:locked(), false)
  T.raises_kind(function() r:release() end, "RuntimeError")
  do
    local _ <close> = r:guard()
    local _ <close> = r:guard()
  end
  T.eq(r:locked(), false)
end)

T.test("Condition wait times out and keeps the lock; misuse is RuntimeError", function()
  local c = lock.Condition()
  T.raises_kind(function() c:wait(0) end, "RuntimeError")
  T.raises_kind(function() c:notify() end, "RuntimeError")
  local _ <close> = c:guard()
  local t0 = time.monotonic()
  T.eq(c:wait(0.05), false)
  T.ok(time.monotonic() - t0 >= 0.049)
  c:notify(); c:notify(3); c:notify_all()
  T.raises(function() c:notify(-1) end, "bad argument #1 to 'notify'")
end)

T.test("Condition over a given Lock; wait_for calls the predicate with the lock held", function()
  local l = lock.Lock()
  local c = lock.Condition(l)
  local calls = 0
  c:acquire()
  local r = c:wait_for(function() calls = calls + 1; T.eq(l:locked(), true); return calls >= 3 and "done" end, 1)
  -- Nobody notifies: each wait times out at the deadline, so only the first call or the last can succeed.
  T.ok(r == false or r == "done")
  T.eq(c:wait_for(function() return 7 end), 7)
  T.eq(c:wait_for(function() return false end, 0.03), false)
  c:release()
  T.raises(function() lock.Condition(42) end, "bad argument #1 to 'Condition'")
end)

T.test("Semaphore and BoundedSemaphore", function()
  local s = lock.Semaphore(2)
  T.eq(s:acquire(), true)
  T.eq(s:acquire(false), true)
  T.eq(s:acquire(true, 0.02), false)
  s:release(2)
  T.eq(s:acquire(false), true)
  local b = lock.BoundedSemaphore()
  T.eq(b:acquire(), true)
  b:release()
  local err = T.raises_kind(function() b:release() end, "ValueError")
  T.ok(tostring(err):find("released too many times", 1, true))
  T.raises(function() lock.Semaphore(-1) end, "bad argument #1 to 'Semaphore'")
  T.raises(function() s:release(0) end, "bad argument #1 to 'release'")
  do local _ <close> = b:guard() T.eq(b:acquire(false), false) end
  T.eq(b:acquire(false), true)
end)

T.test("Event set/clear/is_set/wait", function()
  local e = lock.Event()
  T.eq(e:is_set(), false)
  T.eq(e:wait(0.02), false)
  e:set()
  T.eq(e:is_set(), true)
  T.eq(e:wait(), true)
  e:clear()
  T.eq(e:wait(0), false)
  T.raises(function() e:wait(-1) end, "bad argument #1 to 'wait'")
end)

T.test("Barrier of one runs its action; attributes; abort and reset", function()
  local ran = 0
  local b = lock.Barrier(1, function() ran = ran + 1 end)
  T.eq(b.parties, 1)
  T.eq(b:wait(), 0)
  T.eq(ran, 1)
  T.eq(b.n_waiting, 0)
  T.eq(b.broken, false)
  b:abort()
  T.eq(b.broken, true)
  T.raises_kind(function() b:wait() end, "BrokenBarrierError")
  b:reset()
  T.eq(b.broken, false)
  local bad = lock.Barrier(1, function() error("action failed") end)
  T.raises(function() bad:wait() end, "action failed")
  T.eq(bad.broken, true)
  local two = lock.Barrier(2, nil, 0.03)
  T.raises_kind(function() two:wait() end, "BrokenBarrierError")
  T.raises(function() lock.Barrier(0) end, "bad argument #1 to 'Barrier'")
end)

T.test("Semaphore counts near math.maxinteger refuse to overflow", function()
  local s = lock.Semaphore(math.maxinteger - 1)
  s:release()                                   -- reaches maxinteger exactly
  T.eq(s:acquire(false), true)
  s:release()
  local e = T.raises_kind(function() s:release() end, "ValueError")
  T.eq(tostring(e):find("overflow", 1, true) ~= nil, true)
  T.eq(s:acquire(false), true)                  -- still alive and counting
  local one = lock.Semaphore(1)
  T.raises_kind(function() one:release(math.maxinteger) end, "ValueError")
  T.eq(one:acquire(false), true)
  T.eq(one:acquire(false), false)
  local b = lock.BoundedSemaphore(math.maxinteger)
  T.eq(b:acquire(), true)
  T.raises_kind(function() b:release(2) end, "ValueError")
  T.eq(b:acquire(false), true)
  b:release(2)
  T.raises_kind(function() b:release() end, "ValueError")
end)

T.test("between fork children: Lock, Event, Semaphore", function()
  local l, e, s = lock.Lock(), lock.Event(), lock.Semaphore(0)
  l:acquire()
  local p = in_child(function(l, e, s)
    if l:acquire(false) then return false end  -- the parent holds it
    s:release()                                 -- tell the parent we run
    if not l:acquire(true, 10) then return false end  -- the parent releases it
    l:release()
    return e:wait(10)
  end, l, e, s)
  T.eq(s:acquire(true, 10), true)
  l:release()
  e:set()
  p:join(10)
  T.eq(p.exitcode, 0)
end)

T.test("a child SIGKILLed while holding a Lock does not wedge the parent", function()
  local l, held = lock.Lock(), lock.Event()
  local p = in_child(function(l, held)
    l:acquire()
    held:set()
    time.sleep(60)
    return true
  end, l, held)
  T.eq(held:wait(10), true)
  T.eq(l:acquire(false), false)
  p:kill()
  local ok, how = l:acquire(true, 10)
  T.eq(ok, true)
  T.eq(how, "abandoned")
  l:release()
  p:join(10)
  T.eq(p.exitcode, -9)
  -- guard says the same thing.
  held:clear()
  local p2 = in_child(function(l, held) l:acquire(); held:set(); time.sleep(60) return true end, l, held)
  T.eq(held:wait(10), true)
  p2:kill()
  do
    local g <close>, how2 = l:guard(10)
    T.eq(how2, "abandoned")
  end
  T.eq(l:locked(), false)
  p2:join(10)
end)

T.test("Condition and Barrier between a parent and a fork child", function()
  local c, b = lock.Condition(), lock.Barrier(2)
  local p = in_child(function(c, b)
    local _ <close> = c:guard()
    b:wait(10)                  -- the parent now waits for the lock
    c:wait(0)                   -- let the parent in (releases and re-takes)
    return true
  end, c, b)
  b:wait(10)
  T.eq(eventually(function()
    local got = c:acquire(false)
    if got then c:release() end
    return got
  end), true)
  p:join(10)
  T.eq(p.exitcode, 0)
end)

-- Fork children inherit the parent's objects: whatever way a child leaves,
-- dropping and collecting its copies must neither kill it nor end the
-- parent's objects (each child used to release a count it never took).
local function every_lock()
  return {lock.Lock(), lock.RLock(), lock.Condition(), lock.Condition(lock.Lock()), lock.Semaphore(2),
          lock.BoundedSemaphore(1), lock.Event(), lock.Barrier(1)}
end

-- The parent's objects still work, and a guard the children dropped still holds its lock.
local function check_locks(objs, held, g)
  T.eq(objs[1]:acquire(false), true)
  objs[1]:release()
  T.eq(objs[2]:acquire(false), true)
  objs[2]:release()
  for i = 3, 4 do
    T.eq(objs[i]:acquire(false), true)
    objs[i]:notify_all()
    objs[i]:release()
  end
  T.eq(objs[5]:acquire(false), true)
  objs[5]:release()
  T.eq(objs[6]:acquire(false), true)
  objs[6]:release()
  objs[7]:set()
  T.eq(objs[7]:is_set(), true)
  objs[7]:clear()
  T.eq(objs[8]:wait(5), 0)
  T.eq(held:locked(), true, "a child's collection of an inherited guard released the parent's lock")
  do local _ <close> = g end
  T.eq(held:locked(), false)
end

T.test("fork children that drop inherited lock objects and collect leave the parent's alive", function()
  -- Only the objects under test are inherited: earlier tests' garbage goes first
  -- (two cycles: what a finalized object held goes in the second).
  collectgarbage()
  collectgarbage()
  local objs, held = every_lock(), lock.Lock()
  local g = held:guard()
  for i = 1, 3 do
    local p = process.Process{target = function()
      objs, held, g = nil, nil, nil
      collectgarbage()
      collectgarbage()
    end}
    p:start()
    p:join(20)
    T.eq(p.exitcode, 0, "child " .. i)
  end
  check_locks(objs, held, g)
end)

T.test("fork children leaving by os.exit, before or after collecting, keep the counts right", function()
  -- Only the objects under test are inherited: earlier tests' garbage goes first
  -- (two cycles: what a finalized object held goes in the second).
  collectgarbage()
  collectgarbage()
  local objs, held = every_lock(), lock.Lock()
  local g = held:guard()
  for i = 1, 4 do
    local p = process.Process{target = function()
      if i % 2 == 0 then
        objs, held, g = nil, nil, nil
        collectgarbage()
        collectgarbage()
      end
      os.exit(0)
    end}
    p:start()
    p:join(20)
    T.eq(p.exitcode, 0, "child " .. i)
  end
  -- A count given back twice would fail here: this child drops the last ones the parent lent it.
  local p = process.Process{target = function() objs = nil collectgarbage() collectgarbage() end}
  p:start()
  p:join(20)
  T.eq(p.exitcode, 0)
  check_locks(objs, held, g)
end)

T.test("raw process.fork children that drop inherited lock objects keep the parent's alive", function()
  -- Only the objects under test are inherited: earlier tests' garbage goes first
  -- (two cycles: what a finalized object held goes in the second).
  collectgarbage()
  collectgarbage()
  local objs, held = every_lock(), lock.Lock()
  local g = held:guard()
  local done = lock.Semaphore(0)
  for _ = 1, 3 do
    local pid = process.fork()
    if pid == 0 then
      local sem = done
      objs, held, g, done = nil, nil, nil, nil
      collectgarbage()
      collectgarbage()
      sem:release()
      os.exit(0)
    end
    T.eq(done:acquire(true, 20), true, "the child collected and reported")
  end
  check_locks(objs, held, g)
end)

T.run()
