local T = require "testing"
local thread = require "thread"
local threadlocal = require "threadlocal"
local lock = require "lock"

-- Runs fn(...) in a new thread and returns its results.
local function in_thread(fn, ...)
  local t = thread.Thread{target = fn, args = table.pack(...)}
  t:start()
  t:join()
  return t:result()
end

T.test("calling the module and new() both make a thread-local", function()
  local a, b = threadlocal(), threadlocal.new()
  a.x = 1
  b.x = 2
  T.eq(a.x, 1)
  T.eq(b.x, 2)
  T.ok(a ~= b)
  T.ok(tostring(a):find("^<threadlocal %d+>$"), tostring(a))
end)

T.test("each thread reads and writes its own fields", function()
  local loc = threadlocal()
  loc.student = "main"
  local before, after = in_thread(function(l)
    local seen = l.student
    l.student = "thread"
    return seen, l.student
  end, loc)
  T.eq(before, nil)
  T.eq(after, "thread")
  T.eq(loc.student, "main")
end)

T.test("a thread-local in a global travels by reference", function()
  shared_local = threadlocal()
  shared_local.v = "main"
  local same, v = in_thread(function(l) shared_local.v = "t"; return rawequal(l, shared_local), shared_local.v end,
    shared_local)
  T.eq(same, true)
  T.eq(v, "t")
  T.eq(shared_local.v, "main")
  T.eq(in_thread(function(l) return l end, shared_local), shared_local)
end)

T.test("two threads at once keep separate values", function()
  local loc = threadlocal()
  local a_set, b_set = lock.Event(), lock.Event()
  local function work(l, name, mine, other)
    l.name = name
    mine:set()
    other:wait(10)  -- both have written before either reads
    return l.name
  end
  local a = thread.Thread{target = work, args = {loc, "A", a_set, b_set}}
  local b = thread.Thread{target = work, args = {loc, "B", b_set, a_set}}
  a:start()
  b:start()
  a:join()
  b:join()
  T.eq(a:result(), "A")
  T.eq(b:result(), "B")
  T.eq(loc.name, nil)
end)

T.test("every key is data; pairs lists this thread's fields", function()
  local loc = threadlocal()
  loc.new = "not a method"
  loc[1] = "one"
  T.eq(loc.new, "not a method")
  T.eq(loc[1], "one")
  local keys = {}
  for k, v in pairs(loc) do keys[#keys + 1] = tostring(k) .. "=" .. v end
  table.sort(keys)
  T.deep(keys, {"1=one", "new=not a method"})
  loc.new = nil
  T.eq(loc.new, nil)
  T.raises(function() loc[nil] = 1 end, "index is nil")
end)

T.test("the module is preloaded", function()
  T.ok(package.preload.threadlocal ~= nil)
end)

T.test("results read through result() are released with their Thread", function()
  -- Collected handles release the references their outcomes kept (checked by LeakSanitizer).
  collectgarbage()
  collectgarbage()
end)

T.run()
