local T = require "testing"
local shared = require "shared"
local lock = require "lock"
local process = require "process"

local PLUA = arg[-1]

-- Runs a Lua chunk in a fresh plua; returns its combined output and exit status.
local function run_plua(code)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local pipe = io.popen(("%q %q 2>&1"):format(PLUA, path))
  local out = pipe:read("a")
  local _, _, status = pipe:close()
  os.remove(path)
  return out, status
end

T.test("shared.table reads, writes, length, pairs, ipairs", function()
  local t = shared.table{10, 20, 30, x = "y", [2.5] = true}
  T.eq(#t, 3)
  T.eq(t[1], 10); T.eq(t.x, "y"); T.eq(t[2.5], true); T.eq(t[4], nil)
  t[4] = 40; T.eq(#t, 4)
  t[2.0] = 21; T.eq(t[2], 21)          -- integral float keys are integers, as in Lua
  local seen = {}
  for k, v in pairs(t) do seen[k] = v end
  T.deep(seen, {10, 21, 30, 40, x = "y", [2.5] = true})
  local sum = 0
  for _, v in ipairs(t) do sum = sum + v end
  T.eq(sum, 101)
  t[2] = nil; T.eq(#t, 1)
  t.x = nil; T.eq(t.x, nil)
end)

T.test("every key is data: no method names hide keys", function()
  local t = shared.table()
  T.eq(t.update, nil); T.eq(t.get, nil)
  t.update = 1; t.close = 2
  T.eq(t.update, 1); T.eq(t.close, 2)
end)

T.test("values are copies; plua objects inside stay usable on every read", function()
  local t = shared.table()
  t.list = {1, {2}}
  local a = t.list
  a[1] = 99
  T.eq(t.list[1], 1)
  T.eq(t.list[2][1], 2)
  t.l = lock.Lock()
  T.eq(t.l:acquire(), true)
  T.eq(t.l:locked(), true)          -- the same lock, read again
  t.l:release()
  t.inner = shared.table{z = 1}
  t.inner.z = 2
  T.eq(t.inner.z, 2)                -- a shared table inside is shared too
end)

T.test("bad keys and values are argument errors", function()
  local t = shared.table()
  T.raises(function() t[{}] = 1 end, "keys are numbers, strings or booleans")
  T.raises(function() t[0/0] = 1 end, "NaN")
  T.raises(function() t.co = coroutine.create(print) end, "cannot send")
  T.raises(function() shared.table(5) end, "bad argument #1 to 'table'")
end)

T.test("shared.update applies fn under the lock and returns the new value", function()
  local t = shared.table()
  T.eq(shared.update(t, "n", function(old) return (old or 0) + 5 end), 5)
  T.eq(shared.update(t, "n", function(old) return old * 2 end), 10)
  T.eq(t.n, 10)
  T.eq(shared.update(t, "n", function() return nil end), nil)
  T.eq(t.n, nil)
  T.raises(function() shared.update(t, "n", function() error("inside") end) end, "inside")
  -- The lock was released by the error: the table still works.
  t.n = 1
  T.eq(t.n, 1)
  T.raises(function() shared.update(t, "n") end, "bad argument #3 to 'update'")
end)

T.test("closing a shared.table twice is harmless", function()
  local t = shared.table()
  do local _ <close> = t end
  T.raises(function() return t.x end, "closed")
end)

T.test("Value: kinds, defaults, checks, get_lock", function()
  local i, f, b = shared.Value("int", 5), shared.Value("float"), shared.Value("bool", true)
  T.eq(i.value, 5); T.eq(f.value, 0.0); T.eq(b.value, true)
  i.value = i.value + 1; T.eq(i.value, 6)
  i.value = 3.0; T.eq(i.value, 3)
  f.value = 2; T.eq(f.value, 2.0)
  T.raises(function() i.value = 1.5 end, "integer expected")
  T.raises(function() b.value = 1 end, "boolean expected")
  T.raises(function() i.other = 1 end, "only the field 'value'")
  T.raises(function() shared.Value("string") end, "bad argument #1 to 'Value'")
  local l = i:get_lock()
  do
    local _ <close> = l:guard()
    T.eq(i:get_lock():acquire(false), true)   -- the same RLock, re-entered
    i:get_lock():release()
  end
  T.eq(l:locked(), false)
end)

T.test("Array: size or list, 1-based and bounds-checked", function()
  local a = shared.Array("int", 3)
  T.eq(#a, 3); T.eq(a[1], 0)
  a[3] = 7; T.eq(a[3], 7)
  T.raises_kind(function() return a[0] end, "IndexError")
  T.raises_kind(function() a[5] = 1 end, "IndexError")
  T.eq(a[4], nil)                               -- one past the end ends ipairs
  local f = shared.Array("float", {1, 2.5})
  local got = {}
  for k, v in ipairs(f) do got[k] = v end
  T.deep(got, {1.0, 2.5})
  T.raises(function() shared.Array("int", {1, "x"}) end, "integer expected")
  T.raises(function() shared.Array("int", -1) end, "bad argument #2 to 'Array'")
  local _ <close> = a:get_lock():guard()
end)

T.test("Value and Array between a parent and a forked child", function()
  local v, a, done = shared.Value("int", 1), shared.Array("float", 2), lock.Event()
  local p = process.Process{target = function(v, a, done)
    v.value = v.value + 41
    a[2] = 0.5
    done:set()
  end, args = {v, a, done}}
  p:start()
  T.eq(done:wait(10), true)
  p:join(10)
  T.eq(p.exitcode, 0)
  T.eq(v.value, 42)
  T.eq(a[2], 0.5)
end)

T.test("a fork child's writes to a shared.table stay in the child", function()
  local t = shared.table()
  local p = process.Process{target = function(t) t.x = 1 end, args = {t}}
  p:start()
  p:join(10)
  T.eq(p.exitcode, 0)
  T.eq(t.x, nil)
end)

T.test("a shared.table refuses to travel to a spawned process", function()
  process.set_start_method("spawn", true)
  local t = shared.table()
  local p = process.Process{target = function(t) t.x = 1 end, args = {t}}
  local ok, err = pcall(p.start, p)
  process.set_start_method("fork", true)
  T.eq(ok, false)
  T.ok(tostring(err):find("cannot send a plua.shared.table to another process at process[2][1]", 1, true),
       tostring(err))
  T.eq(t.x, nil)
end)

T.test("a spawned process sees nil for a global shared.table (left out of its globals)", function()
  process.set_start_method("spawn", true)
  g_shared_for_spawn = shared.table()
  local q = require("queue").Queue()
  local p = process.Process{target = function(q) q:put(g_shared_for_spawn == nil) end, args = {q}}
  p:start()
  local seen = q:get(true, 20)
  p:join(20)
  process.set_start_method("fork", true)
  g_shared_for_spawn = nil
  T.eq(seen, true)
  T.eq(p.exitcode, 0)
end)

T.test("Value, Lock and Event reach a spawned process by reference", function()
  process.set_start_method("spawn", true)
  local v, l, e = shared.Value("float", 1.5), lock.Lock(), lock.Event()
  l:acquire()
  local p = process.Process{target = function(v, l, e)
    v.value = v.value * 2
    l:release()              -- a Lock may be released by another process
    e:set()
  end, args = {v, l, e}}
  p:start()
  local ok = e:wait(20)
  p:join(20)
  process.set_start_method("fork", true)
  T.eq(ok, true)
  T.eq(p.exitcode, 0)
  T.eq(v.value, 3.0)
  T.eq(l:locked(), false)
end)

-- Fork children inherit the parent's Values and Arrays (and their locks):
-- dropping and collecting the copies must neither kill a child nor end the
-- parent's objects, whichever way the child leaves.
T.test("fork children that drop inherited Values and Arrays keep the parent's alive", function()
  -- Only the objects under test are inherited: earlier tests' garbage goes first
  -- (two cycles: what a finalized object held goes in the second).
  collectgarbage()
  collectgarbage()
  local v, a = shared.Value("int", 5), shared.Array("float", {1.5, 2.5})
  local vl, al = v:get_lock(), a:get_lock()
  for i = 1, 4 do
    local p = process.Process{target = function()
      if i % 2 == 0 then return end  -- leaves holding them: given back at its exit
      v, a, vl, al = nil, nil, nil, nil
      collectgarbage()
      collectgarbage()
    end}
    p:start()
    p:join(20)
    T.eq(p.exitcode, 0, "child " .. i)
  end
  T.eq(v.value, 5)
  v.value = 6
  T.eq(v.value, 6)
  T.eq(a[2], 2.5)
  T.eq(vl:acquire(false), true)
  vl:release()
  do
    local _ <close> = al:guard()
    a[1] = a[1] + 1
  end
  T.eq(a[1], 2.5)
end)

T.test("raw fork children that end their script normally keep the parent's objects", function()
  local out, status = run_plua([[
local lock, process, queue, shared, time = require "lock", require "process", require "queue", require "shared", require "time"
local lk, v, ev, q = lock.Lock(), shared.Value("int", 5), lock.Event(), queue.Queue()
local vl = v:get_lock()
local pids = {}
for i = 1, 4 do
  local pid = process.fork()
  if pid == 0 then
    lk, v, ev, q, vl = nil, nil, nil, nil, nil
    if i % 2 == 1 then collectgarbage() collectgarbage() end
    return  -- the end of the script: the state closes, the process exits
  end
  pids[i] = pid
end
local function exists(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if f then f:close() end
  return f ~= nil
end
for _, pid in ipairs(pids) do
  local deadline = time.monotonic() + 20
  while exists(pid) and time.monotonic() < deadline do
    process.active_children()
    time.sleep(0.01)
  end
  assert(not exists(pid), "a raw fork child did not end")
end
assert(lk:acquire(false)) lk:release()
assert(v.value == 5)
assert(vl:acquire(false)) vl:release()
ev:set()
q:put("x")
assert(q:get(true, 5) == "x")
local p = process.Process{target = function() lk, v, ev, q, vl = nil collectgarbage() collectgarbage() end}
p:start()
p:join(20)
print("last child", p.exitcode)
assert(ev:is_set() and v.value == 5)
print("ok")
]])
  T.eq(out, "last child\t0\nok\n")
  T.eq(status, 0)
end)

T.test("fork children never inherit a shared.table locked by another thread", function()
  -- A thread writes the table without pause while the main thread forks:
  -- each child must find the table unlocked (it hung on the copied mutex).
  local out, status = run_plua([[
local thread = require "thread"; local shared = require "shared"; local process = require "process"
local st = shared.table{x = 0}
thread.Thread{target = function(st) while true do st.x = 1; local _ = st.x; shared.update(st, "y", function(v) return (v or 0) + 1 end) end end,
              args = {st}, daemon = true}:start()
while st.y == nil do end
local ok = 0
for i = 1, 40 do
  local p = process.Process{target = function(st) local _ = st.x; st.z = #st; for _ in pairs(st) do end end, args = {st}}
  p:start()
  if p:join(5) then
    if p.exitcode == 0 then ok = ok + 1 end
  else
    p:kill(); p:join()
  end
end
print("ok", ok)
]])
  T.eq(out, "ok\t40\n")
  T.eq(status, 0)
end)

T.test("a fork started inside shared.update's fn does not wait for the table it holds", function()
  local t = shared.table{n = 1}
  local code
  shared.update(t, "n", function(old)
    local p = process.Process{target = function() end}
    p:start(); p:join(10)
    code = p.exitcode
    return old + 1
  end)
  T.eq(code, 0)
  T.eq(t.n, 2)
end)

T.test("plua objects read back are the same object (==, table keys)", function()
  local threadlocal = require "threadlocal"
  local t = shared.table()
  local lk, inner, loc, ev = lock.Lock(), shared.table(), threadlocal.new(), lock.Event()
  t.lk = lk; t.inner = inner; t.loc = loc; t.list = {ev, ev}
  T.eq(t.lk == lk, true); T.eq(t.inner == inner, true); T.eq(t.inner == t.inner, true)
  T.eq(t.loc == loc, true)
  local list = t.list
  T.eq(list[1] == ev and list[2] == ev, true)
  local seen = {}; seen[t.lk] = true
  T.eq(seen[t.lk], true); T.eq(seen[lk], true)
  local v = shared.Value("int")
  T.eq(v:get_lock() == v:get_lock(), true)
  local a = shared.Array("int", 2)
  T.eq(a:get_lock() == a:get_lock(), true)
  T.eq(v:get_lock() == a:get_lock(), false)
  -- A lock and an RLock are different objects.
  T.eq(rawequal(t.lk, lock.Lock()), false)
  -- A closed handle is not handed out again: the next read makes a new one.
  local i1 = t.inner
  do local _ <close> = i1 end
  local i2 = t.inner
  T.eq(rawequal(i1, i2), false)
  i2.k = 1
  T.eq(t.inner.k, 1)
  T.eq(t.inner == i2, true)
end)

T.test("identity holds across a thread's result and a queue", function()
  local thread = require "thread"
  local queue = require "queue"
  local lk, st = lock.RLock(), shared.table()
  local th = thread.Thread{target = function(lk, st) return lk, st, lk end, args = {lk, st}}
  th:start(); th:join()
  local a, b, c = th:result()
  T.eq(a == lk, true); T.eq(b == st, true); T.eq(c == lk, true)
  local q = queue.Queue()
  q:put(lk); q:put(st)
  T.eq(q:get() == lk, true); T.eq(q:get() == st, true)
end)

T.test("a collected handle is never returned; counts are not leaked", function()
  local t = shared.table()
  t.lk = lock.Lock()
  for _ = 1, 200 do
    local l = t.lk
    T.eq(l:acquire(false), true); l:release()
    if _ % 50 == 0 then collectgarbage(); collectgarbage() end
  end
  T.eq(t.lk:locked(), false)
end)

T.test("cannot-travel errors name the key; a bad initializer key is argument #1", function()
  local t = shared.table()
  T.raises(function() t.job = {x = {co = coroutine.create(print)}} end, "value at t.job.x.co")
  T.raises(function() t[3] = {co = coroutine.create(print)} end, "value at t[3].co")
  T.raises(function() shared.table{a = {co = coroutine.create(print)}} end, "value at init.a.co")
  T.raises(function() shared.update(t, "k", function() return {co = coroutine.create(print)} end) end,
           "value at t.k.co")
  T.raises(function() shared.table{[{}] = 1} end,
           "bad argument #1 to 'table' (shared.table keys are numbers, strings or booleans, not table)")
end)

T.test("a cycle of shared tables is freed once its link is cleared (README)", function()
  local function rss()
    for l in io.lines("/proc/self/status") do
      local v = l:match("^VmRSS:%s+(%d+)")
      if v then return tonumber(v) end
    end
  end
  collectgarbage(); collectgarbage()
  local r0 = rss()
  for i = 1, 60 do
    local parent, child = shared.table(), shared.table()
    parent.child = child; child.parent = parent; child.data = string.rep("x", 1 << 20) .. i
    child.parent = nil    -- the documented way out of a cycle
  end
  collectgarbage(); collectgarbage()
  -- AddressSanitizer keeps freed memory in quarantine: RSS tells nothing there.
  local maps = io.open("/proc/self/maps"):read("a")
  if not maps:find("libasan", 1, true) then T.eq((rss() - r0) // 1024 < 30, true) end
end)

T.test("collected shared tables release what they hold", function()
  -- Runs the finalizers of the tables above (os.exit in T.run does not close the state).
  collectgarbage()
  collectgarbage()
end)

T.run()
