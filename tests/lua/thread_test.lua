local T = require "testing"
local thread = require "thread"
local lock = require "lock"
local queue = require "queue"

local PLUA = arg[-1]

-- Runs Lua code in a child plua; returns its output (stdout and stderr) and exit code.
local function run_child(code, shell_suffix)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen(("%q %q %s 2>&1"):format(PLUA, path, shell_suffix or "")))
  local out = p:read("a")
  local _, _, code_ = p:close()
  os.remove(path)
  return out, code_
end

-- Global helpers the threads below call: globals travel with start().
function add(a, b) return a + b end
counter = 1

T.test("a thread runs its target with its arguments and keeps the results", function()
  local t = thread.Thread{target = function(a, b, c) return add(a, b), c, nil, {x = c} end, args = {1, 2, "three"}}
  t:start()
  T.eq(t:join(), true)
  local r1, r2, r3, r4 = t:result()
  T.eq(r1, 3)
  T.eq(r2, "three")
  T.eq(r3, nil)
  T.deep(r4, {x = "three"})
  T.eq(select("#", t:result()), 4)
end)

T.test("args with holes use args.n", function()
  local t = thread.Thread{target = function(...) return select("#", ...), (select(3, ...)) end,
                          args = table.pack(nil, nil, 3)}
  t:start()
  t:join()
  local n, third = t:result()
  T.eq(n, 3)
  T.eq(third, 3)
end)

T.test("a thread with no target runs nothing and returns nothing", function()
  local t = thread.Thread{}
  t:start()
  T.eq(t:join(10), true)
  T.eq(select("#", t:result()), 0)
end)

T.test("default names count up as Python's; name and daemon options", function()
  local a, b = thread.Thread{}, thread.Thread{}
  local na, nb = a.name:match("^Thread%-(%d+)$"), b.name:match("^Thread%-(%d+)$")
  T.ok(na and nb, "Thread-N names")
  T.eq(tonumber(nb), tonumber(na) + 1)
  local c = thread.Thread{name = "worker", daemon = true}
  T.eq(c.name, "worker")
  T.eq(c.daemon, true)
  T.eq(a.daemon, false)
  c.name = "renamed"
  T.eq(c.name, "renamed")
  c.daemon = false  -- before start, as Python's Thread.daemon
  T.eq(c.daemon, false)
  T.raises(function() c.daemon = 1 end, "boolean expected")
  c:start()
  c:join()
  local err = T.raises_kind(function() c.daemon = true end, "RuntimeError")
  T.ok(err.message:find("cannot set daemon status of active thread", 1, true), err.message)
  T.raises(function() c.ident = 1 end, "field 'ident' is read-only")
  T.raises(function() c.join = 1 end, "cannot replace method 'join'")
end)

T.test("a script's own fields on a Thread stay on that object", function()
  local t = thread.Thread{}
  T.eq(t.tag, nil)
  t.tag = {1, 2}
  t[1] = "x"
  T.eq(t.tag[2], 2)
  T.eq(t[1], "x")
  t.tag = nil
  T.eq(t.tag, nil)
end)

T.test("ident and native_id are nil before start, integers after", function()
  local t = thread.Thread{target = function() return thread.get_ident(), thread.get_native_id() end}
  T.eq(t.ident, nil)
  T.eq(t.native_id, nil)
  t:start()
  t:join()
  local ident, native = t:result()
  T.eq(math.type(t.ident), "integer")
  T.eq(t.ident, ident)
  T.eq(t.native_id, native)
  T.ok(native ~= thread.get_native_id(), "a different OS thread")
  T.ok(thread.get_ident() ~= ident)
end)

T.test("inside a new thread its own ident is set, even on a fresh OS thread", function()
  for _ = 1, 3 do
    local ts = {}
    for i = 1, 16 do  -- more than the parked OS threads, so some start on new ones
      ts[i] = thread.Thread{target = function()
        local me = thread.current_thread()
        return me.ident == thread.get_ident() and me.ident ~= 0
      end}
      ts[i]:start()
    end
    for i = 1, 16 do
      ts[i]:join()
      T.eq(ts[i]:result(), true, "thread " .. i)
    end
  end
end)

T.test("is_alive follows the thread, join times out while it runs", function()
  local go = lock.Event()
  local t = thread.Thread{target = function(ev) ev:wait() end, args = {go}}
  T.eq(t:is_alive(), false)
  t:start()
  T.eq(t:is_alive(), true)
  T.eq(t:join(0.05), false)
  T.eq(t:join(0), false)
  T.eq(t:is_alive(), true)
  go:set()
  T.eq(t:join(10), true)
  T.eq(t:is_alive(), false)
end)

T.test("the main thread", function()
  local m = thread.current_thread()
  T.eq(m.name, "MainThread")
  T.eq(thread.main_thread(), m)
  T.eq(m:is_alive(), true)
  T.eq(m.ident, thread.get_ident())
  T.eq(m.daemon, false)
  T.raises_kind(function() m:join(0) end, thread.RuntimeError)
  T.eq(tostring(m):match("^<MainThread%(MainThread, started %d+%)>$") ~= nil, true)
end)

T.test("current_thread inside a thread is that thread's object, by reference", function()
  local t = thread.Thread{target = function()
    local me = thread.current_thread()
    return me.ident, me.name, thread.main_thread().name, me == thread.current_thread()
  end, name = "Inner"}
  t:start()
  t:join()
  local ident, name, main_name, same = t:result()
  T.eq(ident, t.ident)
  T.eq(name, "Inner")
  T.eq(main_name, "MainThread")
  T.eq(same, true)
  -- A Thread object sent to a thread and back is the same object.
  local back = thread.Thread{target = function(x) return x end, args = {t}}
  back:start()
  back:join()
  T.eq(back:result(), t)
end)

T.test("enumerate and active_count list the alive threads, main first", function()
  local go = lock.Event()
  local before = thread.active_count()
  local t = thread.Thread{target = function(ev) ev:wait() end, args = {go}}
  t:start()
  local all = thread.enumerate()
  T.eq(all[1], thread.main_thread())
  local found = false
  for _, x in ipairs(all) do found = found or x == t end
  T.ok(found, "the running thread is listed")
  T.eq(thread.active_count(), before + 1)
  T.eq(#all, before + 1)
  go:set()
  t:join()
  T.eq(thread.active_count(), before)
end)

T.test("tostring reads like Python's repr", function()
  local t = thread.Thread{name = "R", daemon = true}
  T.eq(tostring(t), "<Thread(R, initial daemon)>")
  t:start()
  t:join()
  T.ok(tostring(t):match("^<Thread%(R, stopped %d+ daemon%)>$"), tostring(t))
end)

T.test("start twice, join or result before start are RuntimeErrors", function()
  local t = thread.Thread{}
  T.raises_kind(function() t:join() end, thread.RuntimeError)
  T.raises_kind(function() t:result() end, thread.RuntimeError)
  t:start()
  local err = T.raises_kind(function() t:start() end, "RuntimeError")
  T.ok(tostring(err):find("threads can only be started once", 1, true))
  t:join()
end)

T.test("result before the end is a RuntimeError", function()
  local go = lock.Event()
  local t = thread.Thread{target = function(ev) ev:wait() end, args = {go}}
  t:start()
  T.raises_kind(function() t:result() end, thread.RuntimeError)
  go:set()
  t:join()
end)

T.test("a thread cannot join itself", function()
  local t = thread.Thread{target = function()
    local ok, err = pcall(function() thread.current_thread():join(1) end)
    return ok, err.kind
  end}
  t:start()
  t:join()
  local ok, kind = t:result()
  T.eq(ok, false)
  T.eq(kind, "RuntimeError")
end)

T.test("result re-raises a string error with the thread's traceback", function()
  local t = thread.Thread{target = function() local x; return x.field end}
  t:start()
  t:join()
  local err = T.raises(function() t:result() end, "attempt to index a nil value")
  T.ok(err:find("stack traceback:", 1, true), "traceback appended")
  T.ok(err:find("thread_test.lua:%d+"), "traceback names the line")
  -- Every call raises the same error.
  T.raises(function() t:result() end, "attempt to index a nil value")
end)

T.test("result re-raises an error object, with traceback and __tostring", function()
  local t = thread.Thread{target = function()
    local q = queue.Queue()
    q:get(false)  -- raises Empty
  end}
  t:start()
  t:join()
  local err = T.raises_kind(function() t:result() end, queue.Empty)
  T.eq(type(err.traceback), "string")
  T.ok(err.traceback:find("stack traceback:", 1, true))
  T.eq(tostring(err):sub(1, 6), "Empty:")
  local plain = thread.Thread{target = function() error({code = 7}) end}
  plain:start()
  plain:join()
  local e2 = T.raises(function() plain:result() end)
  T.eq(e2.code, 7)
  local n = thread.Thread{target = function() error(42) end}
  n:start()
  n:join()
  local ok, e3 = pcall(n.result, n)
  T.eq(ok, false)
  T.eq(e3, 42)
end)

T.test("results that cannot travel are the thread's error", function()
  local t = thread.Thread{target = function() return coroutine.create(print) end}
  t:start()
  t:join()
  T.raises(function() t:result() end, "cannot send a thread")
end)

T.test("an uncaught error prints 'Exception in thread NAME:' and a traceback", function()
  local out, code = run_child([[
    local thread = require "thread"
    local function inner() error("boom") end
    local t = thread.Thread{target = function() inner() end, name = "Worker"}
    t:start()
    t:join()
    io.write("main goes on\n")
  ]])
  T.eq(code, 0)
  T.ok(out:find("Exception in thread Worker:\n", 1, true), out)
  T.ok(out:find(": boom\nstack traceback:\n", 1, true), out)
  T.ok(out:find("'inner'", 1, true), out)
  T.ok(out:find("main goes on", 1, true), out)
end)

T.test("an uncaught error object is printed as kind: message", function()
  local out, code = run_child([[
    local thread = require "thread"
    local t = thread.Thread{target = function() error({kind = "ValueError", message = "bad value"}) end, name = "W"}
    t:start()
    t:join()
  ]])
  T.eq(code, 0)
  T.ok(out:find("Exception in thread W:\nValueError: bad value\nstack traceback:\n", 1, true), out)
end)

T.test("globals are a copy taken at start()", function()
  counter = 1
  local go = lock.Event()
  local t = thread.Thread{target = function(ev)
    ev:wait()
    local seen = counter
    counter = 100
    return seen, counter, add(2, 3)
  end, args = {go}}
  t:start()
  counter = 2  -- after start: the thread keeps the value it started with
  go:set()
  t:join()
  local seen, theirs, sum = t:result()
  T.eq(seen, 1)
  T.eq(theirs, 100)
  T.eq(sum, 5)
  T.eq(counter, 2)
end)

T.test("a global function using modules as upvalues runs in a thread (the tutorial's shape)", function()
  local out, code = run_child([[
    local thread = require "thread"
    local time = require "time"
    function loop() return thread.current_thread().name, time.monotonic() > 0 end
    local t = thread.Thread{target = loop, name = "LoopThread"}
    t:start()
    t:join()
    io.write(table.concat({tostring(select(1, t:result())), tostring(select(2, t:result()))}, " "), "\n")
  ]])
  T.eq(out, "LoopThread true\n")
  T.eq(code, 0)
end)

T.test("threads have the standard library and the plua modules", function()
  local t = thread.Thread{target = function()
    local time = require "time"
    return math.floor(2.5), ("ab"):upper(), table.concat({1, 2}, ","), type(os.time()),
      utf8.char(65), coroutine.wrap(function() return "co" end)(), type(io.write), type(debug.traceback),
      type(time.monotonic()), "10" + 1
  end}
  t:start()
  t:join()
  T.deep({t:result()}, {2, "AB", "1,2", "number", "A", "co", "function", "function", "number", 11})
end)

T.test("each thread starts from a fresh state, even on a reused OS thread", function()
  -- What one thread leaves in its state (globals, library tables, loaded
  -- modules, the string metatable) is never seen by the threads after it.
  for i = 1, 20 do
    local t = thread.Thread{target = function(k)
      local seen = 0
      for _, v in pairs({leftover, string.leftover, package.loaded.leftover, ("x").leftover, math.leftover}) do
        seen = seen + 1
      end
      leftover = k
      string.leftover = k
      package.loaded.leftover = k
      math.leftover = k
      return seen, package.preload.thread ~= nil, ("ab"):upper()
    end, args = {i}}
    t:start()
    t:join()
    T.deep({t:result()}, {0, true, "AB"})
  end
end)

T.test("strings behave as in lua before and after the string library opens in a thread", function()
  -- Each target is the first string use of a fresh state (the library opens lazily).
  local cases = {
    {function() return ("ab"):upper() end, {"AB"}},
    {function() return "10" + 1, "3" * "4", -"2", "7" // 2, "7" % 4, "2" ^ 3, "9" / 3, "5" - 1 end,
     {11, 12, -2, 3, 3, 8.0, 3.0, 4}},
    {function() return getmetatable("").__index == string end, {true}},
    {function() return debug.getmetatable("").__index == string end, {true}},
    {function() return require("debug").getmetatable("").__index == string end, {true}},
    {function()
      getmetatable("").__index.twice = function(x) return x .. x end
      return ("ab"):twice()
    end, {"abab"}},
    {function() package.loaded.string = {}; return ("ab"):len(), "1" + 1 end, {2, 2}},
    {function() return require("string").format("%d", 5), rawget(_G, "string") ~= nil end, {"5", true}},
  }
  for i, case in ipairs(cases) do
    local t = thread.Thread{target = case[1]}
    t:start()
    t:join()
    T.deep({t:result()}, case[2], "case " .. i)
  end
  local bad = thread.Thread{target = function() return "abc" + 1 end}
  bad:start()
  bad:join()
  local ok, err = pcall(bad.result, bad)
  T.eq(ok, false)
  T.ok(tostring(err):find("thread_test.lua:%d+: attempt to add a 'string' with a 'number'"), tostring(err))
end)

T.test("warnings in a thread start off and follow @on and @off, as in lua", function()
  local out, code = run_child([[
    local thread = require "thread"
    local t = thread.Thread{target = function()
      warn("unheard")
      warn("@on")
      warn("heard ", "in ", "parts")
      warn("@off")
      warn("unheard again")
    end}
    t:start()
    t:join()
    t:result()
  ]])
  T.eq(out, "Lua warning: heard in parts\n")
  T.eq(code, 0)
end)

T.test("replacing _G's metatable in a thread keeps the libraries", function()
  local t = thread.Thread{target = function()
    setmetatable(_G, {__index = function(_, k) return "missing " .. k end})
    return math.pi, nothing
  end}
  t:start()
  t:join()
  local pi, nothing = t:result()
  T.eq(pi, math.pi)
  T.eq(nothing, "missing nothing")
end)

T.test("threads start threads, and Thread objects travel by reference", function()
  local inner = thread.Thread{target = function() return "inner done" end, name = "Inner2"}
  inner:start()
  local outer = thread.Thread{target = function(t)
    t:join()
    local nested = thread.Thread{target = function(x) return x * 2 end, args = {21}}
    nested:start()
    nested:join()
    return t:result(), nested:result(), t.name
  end, args = {inner}}
  outer:start()
  outer:join()
  T.deep({outer:result()}, {"inner done", 42, "Inner2"})
  T.eq(inner:is_alive(), false)
  T.eq(inner:result(), "inner done")
end)

T.test("a Thread object from another thread cannot be started here", function()
  local t = thread.Thread{target = function() return thread.Thread{target = print} end}
  t:start()
  t:join()
  local foreign = t:result()
  T.raises(function() foreign:start() end, "created in another thread")
end)

T.test("threads run at the same time", function()
  -- Each thread waits for the other: only concurrent threads can both finish.
  local a_ready, b_ready = lock.Event(), lock.Event()
  local function meet(mine, other) mine:set(); return other:wait(10) end
  local a = thread.Thread{target = meet, args = {a_ready, b_ready}}
  local b = thread.Thread{target = meet, args = {b_ready, a_ready}}
  a:start()
  b:start()
  a:join()
  b:join()
  T.eq(a:result(), true)
  T.eq(b:result(), true)
end)

T.test("many threads one after another", function()
  local sum = 0
  for i = 1, 200 do
    local t = thread.Thread{target = function(x) return x end, args = {i}}
    t:start()
    t:join()
    sum = sum + t:result()
  end
  T.eq(sum, 200 * 201 // 2)
end)

T.test("Timer runs its function after the interval", function()
  local q = queue.Queue()
  local tm = thread.Timer(0.05, function(qq, v) qq:put(v) end, {q, "fired"})
  T.ok(tostring(tm):find("^<Timer%("), tostring(tm))
  tm:start()
  T.eq(q:get(true, 10), "fired")
  T.eq(tm:join(10), true)
end)

T.test("a cancelled Timer never runs", function()
  local q = queue.Queue()
  local tm = thread.Timer(30, function(qq) qq:put("fired") end, {q})
  tm:start()
  tm:cancel()
  T.eq(tm:join(10), true)
  T.eq(q:empty(), true)
  T.eq(select("#", tm:result()), 0)
  local before = thread.Timer(0, function(qq) qq:put("fired") end, {q})
  before:cancel()
  before:start()
  T.eq(before:join(10), true)
  T.eq(q:empty(), true)
  T.raises(function() thread.Thread{}:cancel() end, "not a Timer")
end)

T.test("sleep waits and rejects bad lengths", function()
  local time = require "time"
  local t0 = time.monotonic()
  thread.sleep(0.03)
  T.ok(time.monotonic() - t0 >= 0.029)
  thread.sleep(0)
  T.raises(function() thread.sleep(-1) end, "bad argument #1 to 'sleep'")
  T.raises(function() thread.sleep("x") end, "bad argument #1 to 'sleep'")
end)

T.test("misuse is an argument error", function()
  T.raises(function() thread.Thread(print) end, "bad argument #1 to 'Thread'")
  T.raises(function() thread.Thread{target = 1} end, "'target' must be a function")
  T.raises(function() thread.Thread{args = 1} end, "'args' must be a table")
  T.raises(function() thread.Thread{name = {}} end, "'name' must be a string")
  T.raises(function() thread.Thread{daemon = 1} end, "'daemon' must be a boolean")
  T.raises(function() thread.Thread{targte = print} end, "unknown option 'targte'")
  local t = thread.Thread{}
  T.raises(function() t:join(-1) end, "bad argument #1 to 'join'")
  T.raises(function() t.join(nil) end, "bad argument #1 to 'join'")
  T.raises(function() thread.Timer(-1, print) end, "bad argument #1 to 'Timer'")
  T.raises(function() thread.Timer(1, 2) end, "bad argument #2 to 'Timer'")
  T.raises(function() thread.Timer(1, print, 3) end, "bad argument #3 to 'Timer'")
  T.raises(function() thread.Thread{target = print, args = {coroutine.create(print)}}:start() end,
    "cannot send a thread")
end)

T.test("at exit non-daemon threads are joined, daemon threads (by option or field) are not waited for", function()
  local time = require "time"
  local t0 = time.monotonic()
  local out, code = run_child([[
    local thread = require "thread"
    local lock = require "lock"
    local never = lock.Event()
    local d = thread.Thread{target = function(ev) ev:wait() end, args = {never}, daemon = true}
    d:start()
    local d2 = thread.Thread{target = function(ev) ev:wait() end, args = {never}}
    d2.daemon = true  -- set before start, as in Python
    d2:start()
    local t = thread.Thread{target = function() thread.sleep(0.2); io.write("worker done\n") end}
    t:start()
    io.write("main done\n")
  ]])
  T.eq(code, 0)
  T.eq(out, "main done\nworker done\n")
  T.ok(time.monotonic() - t0 < 20, "exited promptly")
end)

T.test("Ctrl-C interrupts a main thread blocked in join", function()
  local out, code = run_child([[
    local thread = require "thread"
    local lock = require "lock"
    local never, ready = lock.Event(), lock.Event()
    local blocker = thread.Thread{target = function(ev) ev:wait() end, args = {never}, daemon = true}
    blocker:start()
    -- Sends SIGINT to the process once the main thread is about to block.
    local killer = thread.Thread{daemon = true, args = {ready}, target = function(r)
      r:wait()
      local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
      -- Not os.execute: system() ignores SIGINT in the whole process while it waits.
      io.popen("kill -INT " .. pid):close()
    end}
    killer:start()
    local ok, err = pcall(function() ready:set(); return blocker:join() end)
    io.write(tostring(ok), " ", tostring(err and err.kind), "\n")
    killer:join(10)
  ]])
  T.eq(out, "false KeyboardInterrupt\n")
  T.eq(code, 0)
end)

T.test("the module is preloaded and exports its kinds", function()
  T.ok(package.preload.thread ~= nil)
  T.eq(thread.RuntimeError, "RuntimeError")
end)

T.test("results read through result() are released with their Thread", function()
  -- Collected handles release the references their outcomes kept (checked by LeakSanitizer).
  collectgarbage()
  collectgarbage()
end)

T.run()
