-- The misuse table: every public function and method of the plua modules,
-- called wrongly, and the error each must give (issue 8, item 5).
--
--   plua misuse_test.lua              runs every row (the lua.misuse_test ctest)
--   plua misuse_test.lua --markdown   prints the table as markdown (docs/misuse.md
--                                     is this output; tests/lua/misuse_table.py checks it)
--
-- A row is {module, code, expected error, [afterwards]}. `code` is Lua run in
-- a fresh environment whose fixtures (below) are made on first use, so rows
-- never see each other's objects. The expected error is either an argument
-- error's text (E"...", found as plain text in the message) or a Python-kind
-- error object (K("Kind", "text"): err.kind must equal Kind and its message
-- contain the text). `afterwards`, when given, must return true in the same
-- environment: the object is still usable and nothing was lost.
local T = require "testing"
local thread = require "thread"
local queue = require "queue"

local function E(text) return { text = text } end
local function K(kind, text) return { kind = kind, text = text or "" } end

local rows = {}
local function row(module, code, expect, after)
  rows[#rows + 1] = { module = module, code = code, expect = expect, after = after }
end

-- ---------------------------------------------------------------- fixtures

-- Each fixture is made when a row's code first names it; `cleanup` entries run
-- after the row (pools terminated, servers shut down, children reaped).
local fixture = {}
local modules = {}
local function make_env()
  local env, cleanups = {}, {}
  local function on_cleanup(fn) cleanups[#cleanups + 1] = fn end
  setmetatable(env, { __index = function(t, k)
    local make = fixture[k]
    if make == nil then
      if modules[k] ~= nil then return modules[k] end
      return _G[k]
    end
    local v = make(t, on_cleanup)
    rawset(t, k, v)
    return v
  end })
  return env, function()
    for i = #cleanups, 1, -1 do pcall(cleanups[i]) end
  end
end

local lock, shared, process = require "lock", require "shared", require "process"
local pool, subprocess, manager = require "pool", require "subprocess", require "manager"
local threadlocal, time = require "threadlocal", require "time"
modules = { time = time, thread = thread, threadlocal = threadlocal, lock = lock, shared = shared,
  process = process, queue = queue, pool = pool, subprocess = subprocess, manager = manager }

-- Values that cannot travel.
fixture.co = function() return coroutine.create(function() end) end
fixture.cfn = function() return string.gmatch("a", "a") end  -- a C function with upvalues
fixture.file = function(_, cleanup)
  local f = io.tmpfile()
  cleanup(function() f:close() end)
  return f
end
fixture.badfn = function(env)  -- a Lua function whose upvalue cannot travel
  local c = env.co
  return function() return c end
end
fixture.f = function() return function(x) return x end end

-- thread
fixture.fresh = function() return thread.Thread { target = function() end } end
fixture.done = function()
  local t = thread.Thread { target = function() return 1 end }
  t:start()
  t:join()
  return t
end

-- threadlocal
fixture.loc = function() return threadlocal.new() end

-- lock
fixture.lk = function() return lock.Lock() end
fixture.held = function()
  local l = lock.Lock()
  l:acquire()
  return l
end
fixture.rl = function() return lock.RLock() end
fixture.rl_other = function()  -- an RLock held by a thread that has ended
  local l = lock.RLock()
  local t = thread.Thread { target = function(x) x:acquire() end, args = { l } }
  t:start()
  t:join()
  return l
end
fixture.closed_lock = function()
  local l = lock.Lock()
  l:close()
  return l
end
fixture.cond = function() return lock.Condition() end
fixture.sem = function() return lock.Semaphore(1) end
fixture.bsem = function() return lock.BoundedSemaphore(1) end
fixture.ev = function() return lock.Event() end
fixture.bar = function() return lock.Barrier(2) end

-- shared
fixture.st = function() return shared.table { n = 1, k = "old" } end
fixture.closed_st = function()
  local t = shared.table()
  getmetatable(t).__close(t)
  return t
end
fixture.iv = function() return shared.Value("int", 7) end
fixture.arr = function() return shared.Array("int", { 1, 2, 3 }) end
fixture.closed_arr = function()
  local a = shared.Array("int", 3)
  getmetatable(a).__close(a)
  return a
end

-- queue
fixture.q = function()  -- holds 1 and 2
  local q = queue.Queue()
  q:put(1)
  q:put(2)
  return q
end
fixture.eq = function() return queue.Queue() end
fixture.fq = function()  -- Queue(1), full
  local q = queue.Queue(1)
  q:put("only")
  return q
end
fixture.jq = function() return queue.JoinableQueue() end
fixture.closedq = function()  -- closed, still holding "x"
  local q = queue.Queue()
  q:put("x")
  q:close()
  return q
end
fixture.released = function()
  local q = queue.Queue()
  getmetatable(q).__close(q)
  return q
end
fixture.a = function(env)  -- one end of a duplex Pipe; the other is env.b
  local a, b = queue.Pipe()
  rawset(env, "b", b)
  return a
end
fixture.b = function(env) return env.a and rawget(env, "b") end
fixture.ra = function(env)  -- the receiving end of a simplex Pipe; the sending end is env.wb
  local r, w = queue.Pipe(false)
  rawset(env, "wb", w)
  return r
end
fixture.wb = function(env) return env.ra and rawget(env, "wb") end

-- process
fixture.p = function() return process.Process { target = function() end } end
fixture.done_p = function()
  local p = process.Process { target = function() end }
  p:start()
  p:join()
  return p
end
fixture.closed_p = function(env)
  local p = env.done_p
  p:close()
  return p
end
fixture.use_spawn = function(_, cleanup)
  local old = process.get_start_method()
  cleanup(function() process.set_start_method(old, true) end)
  return function() process.set_start_method("spawn", true) end
end

-- pool
fixture.tp = function(_, cleanup)
  local p = pool.ThreadPool(1)
  cleanup(function() p:terminate() end)
  return p
end
fixture.pp = function(_, cleanup)
  local p = pool.Pool(1)
  cleanup(function() p:terminate() end)
  return p
end
fixture.closed_pool = function(env)
  env.tp:close()
  return env.tp
end
fixture.terminated_pool = function(env)
  env.tp:terminate()
  return env.tp
end
fixture.pending = function(env, cleanup)  -- an AsyncResult that is not ready until gate is set
  local gate = lock.Event()
  cleanup(function() gate:set() end)
  return env.tp:apply_async(function(g) g:wait(30) end, { gate })
end
fixture.it = function(env) return env.tp:imap(function(x) return x end, { 1 }) end

-- subprocess
fixture.sleeper = function(_, cleanup)
  local p = subprocess.Popen { "sleep", "30" }
  cleanup(function() p:kill(); p:wait() end)
  return p
end

-- manager: a server on a free loopback port serving env.served, and a proxy of it.
fixture.served = function() return queue.Queue() end
fixture.m = function() return manager.BaseManager { address = { "127.0.0.1", 0 }, authkey = "key" } end
fixture.srv = function(env, cleanup)
  local m = manager.BaseManager { address = { "127.0.0.1", 0 }, authkey = "key" }
  local served = env.served
  m:register("get_queue", function() return served end)
  m:start()
  cleanup(function() m:shutdown() end)
  return m
end
fixture.px = function(env, cleanup)
  local addr = env.srv.address
  local c = manager.BaseManager { address = addr, authkey = "key" }
  c:register("get_queue")
  local px = c:get_queue()
  cleanup(function() px:close() end)
  return px
end
fixture.wrong_key = function(env)
  local c = manager.BaseManager { address = env.srv.address, authkey = "not the key" }
  return c
end

-- What each fixture is, for the generated table (every fixture must be here).
local fixture_doc = {
  { "co", "a coroutine" },
  { "cfn", "a C function with upvalues (`string.gmatch(\"a\", \"a\")`)" },
  { "file", "an open `io.tmpfile()`" },
  { "badfn", "a Lua function whose upvalue `c` is a coroutine" },
  { "f", "`function(x) return x end`" },
  { "fresh", "a Thread not started" },
  { "done", "a Thread that ran `function() return 1 end` and was joined" },
  { "loc", "`threadlocal.new()`" },
  { "lk", "a free `lock.Lock()`" },
  { "held", "a Lock the main thread holds" },
  { "rl", "a free `lock.RLock()`" },
  { "rl_other", "an RLock acquired by a thread that has ended" },
  { "closed_lock", "a Lock after `:close()`" },
  { "cond", "`lock.Condition()`, not held" },
  { "sem", "`lock.Semaphore(1)`" },
  { "bsem", "`lock.BoundedSemaphore(1)`" },
  { "ev", "`lock.Event()`" },
  { "bar", "`lock.Barrier(2)`" },
  { "st", "`shared.table{n = 1, k = \"old\"}`" },
  { "closed_st", "a shared.table after `__close`" },
  { "iv", "`shared.Value(\"int\", 7)`" },
  { "arr", "`shared.Array(\"int\", {1, 2, 3})`" },
  { "closed_arr", "a shared.Array after `__close`" },
  { "q", "a `queue.Queue()` holding 1 and 2" },
  { "eq", "an empty `queue.Queue()`" },
  { "fq", "a full `queue.Queue(1)` holding `\"only\"`" },
  { "jq", "an empty `queue.JoinableQueue()`" },
  { "closedq", "a Queue holding `\"x\"`, then `:close()`d" },
  { "released", "a Queue handle after `__close` (a `<close>` variable that went out of scope)" },
  { "a", "one end of a duplex `queue.Pipe()`; `b` is the other" },
  { "b", "the other end of `a`" },
  { "ra", "the receiving end of `queue.Pipe(false)`; `wb` is its sending end" },
  { "wb", "the sending end of `ra`'s pipe" },
  { "p", "a Process not started" },
  { "done_p", "a Process that ran and was joined (exit code 0)" },
  { "closed_p", "`done_p` after `:close()`" },
  { "use_spawn", "a function that sets the start method to `\"spawn\"` (the old one is restored after the row)" },
  { "tp", "`pool.ThreadPool(1)`" },
  { "pp", "`pool.Pool(1)` (a worker process)" },
  { "closed_pool", "`tp` after `:close()`" },
  { "terminated_pool", "`tp` after `:terminate()`" },
  { "pending", "an AsyncResult of `tp` whose task waits for an Event (set after the row)" },
  { "it", "`tp:imap(f, {1})`" },
  { "sleeper", "`subprocess.Popen{\"sleep\", \"30\"}` (killed and reaped after the row)" },
  { "served", "the `queue.Queue()` that `srv` serves" },
  { "m", "`manager.BaseManager{address = {\"127.0.0.1\", 0}, authkey = \"key\"}`, not started" },
  { "srv", "a started BaseManager on a free loopback port serving `served` as `get_queue`" },
  { "px", "a client's proxy of `srv`'s `get_queue`" },
  { "wrong_key", "a client BaseManager for `srv` with the wrong authkey" },
}

-- ---------------------------------------------------------------- time

row("time", [[time.sleep()]], E"bad argument #1 to 'sleep' (number expected, got no value)")
row("time", [[time.sleep("soon")]], E"bad argument #1 to 'sleep' (number expected, got string)")
row("time", [[time.sleep(-1)]], E"bad argument #1 to 'sleep' (sleep length must be non-negative)")
row("time", [[time.sleep(0/0)]], E"bad argument #1 to 'sleep' (sleep length must be non-negative)")
row("time", [[time.sleep(math.huge)]], E"bad argument #1 to 'sleep' (sleep length must be finite)")

-- ---------------------------------------------------------------- thread

row("thread", [[thread.Thread()]], E"bad argument #1 to 'Thread' (table expected, got no value)")
row("thread", [[thread.Thread(print)]], E"bad argument #1 to 'Thread' (table expected, got function)")
row("thread", [[thread.Thread{target = 42}]], E"bad argument #1 to 'Thread' ('target' must be a function)")
row("thread", [[thread.Thread{target = f, args = 1}]], E"bad argument #1 to 'Thread' ('args' must be a table)")
row("thread", [[thread.Thread{name = 1}]], E"bad argument #1 to 'Thread' ('name' must be a string)")
row("thread", [[thread.Thread{daemon = "yes"}]], E"bad argument #1 to 'Thread' ('daemon' must be a boolean)")
row("thread", [[thread.Thread{tagret = f}]], E"bad argument #1 to 'Thread' (unknown option 'tagret')")
row("thread", [[thread.Thread{target = f, args = {1, co}}:start()]],
  E"cannot send a thread (coroutine) value at args[2]")
row("thread", [[thread.Thread{target = badfn}:start()]],
  E"cannot send a thread (coroutine) value at target[1]<upvalue c>")
row("thread", [[thread.Thread{target = f, args = {{out = file}}}:start()]],
  E"cannot send a userdata (FILE*) value at args[1].out")
row("thread", [[thread.Thread{target = f, args = {cfn}}:start()]],
  E"cannot send a C function (with upvalues, not a field of a loaded module) value at args[1]")
row("thread", [[done:start()]], K("RuntimeError", "thread:start: threads can only be started once"),
  [[return done:result() == 1]])
row("thread", [[local w = thread.Thread{target = function(t) t:start() end, args = {fresh}}
  w:start(); w:join(); w:result()]], E"thread:start: this thread was created in another thread; start it there",
  [[fresh:start(); return fresh:join(10)]])
row("thread", [[fresh:join()]], K("RuntimeError", "thread:join:"), [[fresh:start(); return fresh:join(10)]])
row("thread", [[thread.current_thread():join()]], K("RuntimeError", "thread:join:"))
row("thread", [[fresh:result()]], K("RuntimeError", "was not started"))
row("thread", [[done:join(-1)]], E"bad argument #1 to 'join' (timeout must be a non-negative number)")
row("thread", [[done:join(0/0)]], E"bad argument #1 to 'join' (timeout must be a non-negative number)")
row("thread", [[done:join(math.huge)]], E"bad argument #1 to 'join' (timeout must be finite; nil waits forever)")
row("thread", [[done:join("soon")]], E"bad argument #1 to 'join' (number expected, got string)")
row("thread", [[fresh:cancel()]], E"calling 'cancel' on bad self (not a Timer)")
row("thread", [[done.ident = 5]], E"thread: field 'ident' is read-only")
row("thread", [[done.name = {}]], E"bad argument #3 to 'newindex' (string expected, got table)")
row("thread", [[done.start(42)]], E"bad argument #1 to 'start' (plua.thread.Thread expected, got number)")
row("thread", [[thread.Timer()]], E"bad argument #1 to 'Timer' (number expected, got no value)")
row("thread", [[thread.Timer(-1, f)]], E"bad argument #1 to 'Timer' (interval must be a non-negative number)")
row("thread", [[thread.Timer(0/0, f)]], E"bad argument #1 to 'Timer' (interval must be a non-negative number)")
row("thread", [[thread.Timer(math.huge, f)]], E"bad argument #1 to 'Timer' (interval must be finite)")
row("thread", [[thread.Timer(1, 42)]], E"bad argument #2 to 'Timer' (function expected, got number)")
row("thread", [[thread.Timer(1, f, 5)]], E"bad argument #3 to 'Timer' (table expected, got number)")
row("thread", [[thread.sleep(-1)]], E"bad argument #1 to 'sleep' (sleep length must be non-negative)")
row("thread", [[thread.sleep(math.huge)]], E"bad argument #1 to 'sleep' (sleep length must be finite)")
row("thread", [[thread.sleep({})]], E"bad argument #1 to 'sleep' (number expected, got table)")

-- ---------------------------------------------------------------- threadlocal

row("threadlocal", [[loc[nil] = 1]], E"index is nil", [[loc.x = 1; return loc.x == 1]])
row("threadlocal", [[loc[0/0] = 1]], E"index is NaN", [[loc.x = 1; return loc.x == 1]])

-- ---------------------------------------------------------------- lock

row("lock", [[lk:release()]], K("RuntimeError", "Lock:release:"), [[return lk:acquire(false) == true]])
row("lock", [[lk:acquire("yes")]], E"bad argument #1 to 'acquire' (boolean expected, got string)")
row("lock", [[lk:acquire(false, 1)]], E"bad argument #2 to 'acquire' (cannot specify a timeout for a non-blocking call)")
row("lock", [[lk:acquire(true, -1)]], E"bad argument #2 to 'acquire' (timeout must be a non-negative number)",
  [[return lk:locked() == false]])
row("lock", [[lk:acquire(true, 0/0)]], E"bad argument #2 to 'acquire' (timeout must be a non-negative number)")
row("lock", [[lk:acquire(true, math.huge)]], E"bad argument #2 to 'acquire' (timeout must be finite; nil waits forever)")
row("lock", [[lk:guard(-1)]], E"bad argument #1 to 'guard' (timeout must be a non-negative number)",
  [[return lk:locked() == false]])
row("lock", [[held:guard(0)]], K("TimeoutError", "Lock:guard: timed out"),
  [[held:release(); return held:locked() == false]])
row("lock", [[closed_lock:acquire()]], E"Lock:acquire: the object is closed")
row("lock", [[closed_lock:release()]], E"Lock:release: the object is closed")
row("lock", [[lk.acquire(42)]], E"bad argument #1 to 'acquire' (plua.lock.Lock expected, got number)")
row("lock", [[rl:release()]], K("RuntimeError", "RLock:release:"), [[return rl:acquire() and rl:locked()]])
row("lock", [[rl_other:release()]], K("RuntimeError", "RLock:release:"), [[return rl_other:locked()]])
row("lock", [[rl:acquire(true, -1)]], E"bad argument #2 to 'acquire' (timeout must be a non-negative number)")
row("lock", [[lock.Condition(42)]], E"bad argument #1 to 'Condition' (Lock or RLock expected)")
row("lock", [[lock.Condition(closed_lock)]], E"bad argument #1 to 'Condition' (Lock or RLock expected)")
row("lock", [[cond:wait()]], K("RuntimeError", "Condition:wait:"),
  [[local ok = cond:acquire(); cond:release(); return ok]])
row("lock", [[cond:wait(-1)]], E"bad argument #1 to 'wait' (timeout must be a non-negative number)")
row("lock", [[cond:acquire(); cond:wait_for(function() return false end, -1)]],
  E"bad argument #2 to 'wait_for' (timeout must be a non-negative number)", [[cond:release(); return true]])
row("lock", [[cond:wait_for(42)]], E"bad argument #1 to 'wait_for' (function expected, got number)")
row("lock", [[cond:notify()]], K("RuntimeError", "Condition:notify:"))
row("lock", [[cond:notify_all()]], K("RuntimeError", "Condition:notify_all:"))
row("lock", [[cond:acquire(); cond:notify(-1)]], E"bad argument #1 to 'notify' (count must be non-negative)",
  [[cond:notify(1); cond:release(); return true]])
row("lock", [[cond:close(); cond:notify()]], E"Condition:notify: the object is closed")
row("lock", [[lock.Semaphore(-1)]], E"bad argument #1 to 'Semaphore' (semaphore initial value must be >= 0)")
row("lock", [[lock.Semaphore(1.5)]], E"bad argument #1 to 'Semaphore' (number has no integer representation)")
row("lock", [[lock.BoundedSemaphore("x")]], E"bad argument #1 to 'BoundedSemaphore' (number expected, got string)")
row("lock", [[sem:release(0)]], E"bad argument #1 to 'release' (n must be one or more)")
row("lock", [[sem:acquire(false, 1)]], E"bad argument #2 to 'acquire' (cannot specify a timeout for a non-blocking call)")
row("lock", [[bsem:release()]], K("ValueError", "Semaphore:release:"),
  [[return bsem:acquire(false) and not bsem:acquire(false)]])
row("lock", [[sem:close(); sem:acquire()]], E"Semaphore:acquire: the object is closed")
row("lock", [[ev:close(); ev:set()]], E"Event:set: the object is closed")
row("lock", [[ev:wait(-1)]], E"bad argument #1 to 'wait' (timeout must be a non-negative number)")
row("lock", [[ev:wait("x")]], E"bad argument #1 to 'wait' (number expected, got string)")
row("lock", [[lock.Barrier(0)]], E"bad argument #1 to 'Barrier' (parties must be one or more)")
row("lock", [[lock.Barrier(1.5)]], E"bad argument #1 to 'Barrier' (number has no integer representation)")
row("lock", [[lock.Barrier(2, 42)]], E"bad argument #2 to 'Barrier' (function expected, got number)")
row("lock", [[lock.Barrier(2, nil, -1)]], E"bad argument #3 to 'Barrier' (timeout must be a non-negative number)")
row("lock", [[bar:wait(-1)]], E"bad argument #1 to 'wait' (timeout must be a non-negative number)",
  [[return bar.n_waiting == 0 and not bar.broken]])
row("lock", [[bar:abort(); bar:wait()]], K("BrokenBarrierError", "Barrier:wait:"),
  [[bar:reset(); return bar.broken == false]])
row("lock", [[bar:close(); return bar.parties]], E"Barrier.parties: the object is closed")
row("lock", [[bar:wait(0.01)]], K("BrokenBarrierError", "Barrier:wait:"), [[return bar.broken]])

-- ---------------------------------------------------------------- shared

row("shared", [[shared.table(42)]], E"bad argument #1 to 'table' (table expected, got number)")
row("shared", [[shared.table{[{}] = 1}]], E"shared.table keys are numbers, strings or booleans, not table")
row("shared", [[st[{}] = 1]], E"shared.table keys are numbers, strings or booleans, not table")
row("shared", [[st[0/0] = 1]], E"shared.table index is NaN")
row("shared", [[shared.table({[{}] = 1})]], E"bad argument #1 to 'table' (shared.table keys are numbers, strings or booleans, not table)")
row("shared", [[st.k = co]], E"cannot send a thread (coroutine) value at t.k", [[return st.k == "old"]])
row("shared", [[st.k = {file}]], E"cannot send a userdata (FILE*) value at t.k[1]", [[return st.k == "old"]])
row("shared", [[shared.update(42, "k", f)]], E"bad argument #1 to 'update' (plua.shared.table expected, got number)")
row("shared", [[shared.update(st, "k", 42)]], E"bad argument #3 to 'update' (function expected, got number)")
row("shared", [[shared.update(st, {}, f)]], E"bad argument #2 to 'update' (shared.table keys are numbers, strings or booleans, not table)")
row("shared", [[shared.update(st, "n", function(v) error("boom") end)]], E"boom",
  [[return st.n == 1 and shared.update(st, "n", function(v) return v + 1 end) == 2]])
row("shared", [[shared.update(st, "n", function(v) return co end)]], E"cannot send a thread (coroutine) value at t.n",
  [[return st.n == 1 and shared.update(st, "n", function(v) return v + 1 end) == 2]])
row("shared", [[return closed_st.k]], E"the shared table is closed")
row("shared", [[shared.Value("double")]], E"bad argument #1 to 'Value' (invalid option 'double')")
row("shared", [[shared.Value()]], E"bad argument #1 to 'Value' (string expected, got no value)")
row("shared", [[shared.Value("int", 1.5)]], E"bad argument #2 to 'Value' (integer expected, got non-integral number)")
row("shared", [[shared.Value("int", "7")]], E"bad argument #2 to 'Value' (integer expected, got string)")
row("shared", [[shared.Value("bool", 1)]], E"bad argument #2 to 'Value' (boolean expected, got number)")
row("shared", [[shared.Value("float", "x")]], E"bad argument #2 to 'Value' (number expected, got string)")
row("shared", [[iv.value = "x"]], E"bad argument #3 to 'newindex' (integer expected, got string)", [[return iv.value == 7]])
row("shared", [[iv.other = 1]], E"bad argument #2 to 'newindex' (a Value has only the field 'value')")
row("shared", [[shared.Array("int")]], E"bad argument #2 to 'Array' (number expected, got nil)")
row("shared", [[shared.Array("int", -1)]], E"bad argument #2 to 'Array' (size must be non-negative)")
row("shared", [[shared.Array("int", 1.5)]], E"bad argument #2 to 'Array' (number has no integer representation)")
row("shared", [[shared.Array("int", math.maxinteger)]], E"shared.Array: ")
row("shared", [[shared.Array("int", {1, "x"})]], E"bad argument #2 to 'Array' (item 2: integer expected, got string)")
row("shared", [[shared.Array("float", {1.5, {}})]], E"bad argument #2 to 'Array' (item 2: number expected, got table)")
row("shared", [[shared.Array("bool", 2)[1] = 1]], E"bad argument #3 to 'newindex' (boolean expected, got number)")
row("shared", [[return arr[0] ]], K("IndexError", "shared.Array: index 0 out of range 1..3"))
row("shared", [[arr[5] = 1]], K("IndexError", "shared.Array: index 5 out of range 1..3"),
  [[return arr[1] == 1 and arr[3] == 3 and #arr == 3]])
row("shared", [[return arr[1.5] ]], E"bad argument #2 to 'index' (integer index expected)")
row("shared", [[arr.x = 1]], E"bad argument #2 to 'newindex' (integer index expected)")
row("shared", [[arr[1] = true]], E"bad argument #3 to 'newindex' (integer expected, got boolean)", [[return arr[1] == 1]])
row("shared", [[return closed_arr[1] ]], E"Array: the object is closed")
row("shared", [[local v = shared.Value("int"); getmetatable(v).__close(v); return v.value]], E"Value: the object is closed")

-- ---------------------------------------------------------------- queue

row("queue", [[queue.Queue("big")]], E"bad argument #1 to 'Queue' (number expected, got string)")
row("queue", [[queue.Queue(1.5)]], E"bad argument #1 to 'Queue' (number has no integer representation)")
row("queue", [[queue.JoinableQueue({})]], E"bad argument #1 to 'JoinableQueue' (number expected, got table)")
row("queue", [[q:put()]], E"bad argument #1 to 'put' (value expected)", [[return q:qsize() == 2]])
row("queue", [[q:put(co)]], E"cannot send a thread (coroutine) value at item[1]",
  [[return q:qsize() == 2 and q:get() == 1 and q:get() == 2]])
row("queue", [[q:put({1, {co}})]], E"cannot send a thread (coroutine) value at item[1][2][1]",
  [[return q:qsize() == 2 and q:get() == 1 and q:get() == 2]])
row("queue", [[q:put({job = badfn})]], E"cannot send a thread (coroutine) value at item[1].job<upvalue c>",
  [[return q:qsize() == 2 and q:get() == 1]])
row("queue", [[q:put(file)]], E"cannot send a userdata (FILE*) value at item[1]", [[return q:qsize() == 2]])
row("queue", [[q:put(cfn)]], E"cannot send a C function (with upvalues, not a field of a loaded module) value at item[1]", [[return q:qsize() == 2]])
row("queue", [[q:put({lock.Lock(), co})]], E"cannot send a thread (coroutine) value at item[1][2]",
  [[return q:qsize() == 2 and q:get() == 1 and q:get() == 2]])
row("queue", [[q:put(3, "yes")]], E"bad argument #2 to 'put' (boolean expected, got string)", [[return q:qsize() == 2]])
row("queue", [[q:put(3, true, -1)]], E"bad argument #3 to 'put' (timeout must be a non-negative number)",
  [[return q:qsize() == 2]])
row("queue", [[q:put(3, true, 0/0)]], E"bad argument #3 to 'put' (timeout must be a non-negative number)")
row("queue", [[q:put(3, true, math.huge)]], E"bad argument #3 to 'put' (timeout must be finite; nil waits forever)")
row("queue", [[q:get("yes")]], E"bad argument #1 to 'get' (boolean expected, got string)",
  [[return q:qsize() == 2 and q:get() == 1]])
row("queue", [[q:get(true, -1)]], E"bad argument #2 to 'get' (timeout must be a non-negative number)",
  [[return q:qsize() == 2 and q:get() == 1]])
row("queue", [[q:get(true, "soon")]], E"bad argument #2 to 'get' (number expected, got string)")
row("queue", [[q:get(true, math.huge)]], E"bad argument #2 to 'get' (timeout must be finite; nil waits forever)")
row("queue", [[q.put(42, 1)]], E"bad argument #1 to 'put' (plua.Queue expected, got number)")
row("queue", [[fq:put(2, false)]], K("Full", "queue is full"), [[return fq:qsize() == 1 and fq:get() == "only"]])
row("queue", [[fq:put(2, true, 0)]], K("Full", "queue is full"), [[return fq:qsize() == 1 and fq:get() == "only"]])
row("queue", [[fq:put_nowait(2)]], K("Full", "queue is full"), [[return fq:get() == "only"]])
row("queue", [[eq:get(false)]], K("Empty", "queue is empty"), [[eq:put(1); return eq:get() == 1]])
row("queue", [[eq:get(true, 0)]], K("Empty", "queue is empty"), [[eq:put(1); return eq:get() == 1]])
row("queue", [[eq:get_nowait()]], K("Empty", "queue is empty"))
row("queue", [[closedq:put(1)]], K("ValueError", "closed"), [[return closedq:get() == "x"]])
row("queue", [[closedq:get(); closedq:get()]], K("Empty", "queue is closed and empty"))
row("queue", [[released:put(1)]], E"calling 'put' on bad self (queue handle was released)")
row("queue", [[released:qsize()]], E"calling 'qsize' on bad self (queue handle was released)")
row("queue", [[q:task_done()]], E"queue:task_done: not a JoinableQueue", [[return q:qsize() == 2]])
row("queue", [[jq:task_done()]], K("ValueError", "task_done"), [[jq:put(1); jq:get(); jq:task_done(); return jq:join(1)]])
row("queue", [[jq:join(-1)]], E"bad argument #1 to 'join' (timeout must be a non-negative number)")
row("queue", [[queue.Pipe("yes")]], E"bad argument #1 to 'Pipe' (boolean expected, got string)")
row("queue", [[a:send()]], E"bad argument #1 to 'send' (value expected)", [[a:send(1); return b:recv() == 1]])
row("queue", [[a:send({co})]], E"cannot send a thread (coroutine) value at obj[1]",
  [[a:send(1); return b:poll(5) and b:recv() == 1 and not b:poll()]])
row("queue", [[a:send(file)]], E"cannot send a userdata (FILE*) value at obj", [[a:send(1); return b:recv() == 1]])
row("queue", [[a:send_bytes({})]], E"bad argument #1 to 'send_bytes' (string expected, got table)")
row("queue", [[a:poll(-1)]], E"bad argument #1 to 'poll' (timeout must be a non-negative number)")
row("queue", [[a:poll("x")]], E"bad argument #1 to 'poll' (number expected, got string)")
row("queue", [[a:close(); a:send(1)]], K("OSError", "closed"))
row("queue", [[a:close(); a:recv()]], K("OSError", "closed"))
row("queue", [[a:close(); a:fileno()]], K("OSError", "connection is closed"))
row("queue", [[a:close(); b:recv()]], K("EOFError", "the other end of the pipe is closed"))
row("queue", [[a:send(1); a:close(); b:recv(); b:recv()]], K("EOFError", "the other end of the pipe is closed"))
row("queue", [[a:close(); b:send(1)]], K("BrokenPipeError", ""))
row("queue", [[ra:send(1)]], K("OSError", ""), [[wb:send(2); return ra:recv() == 2]])
row("queue", [[wb:recv()]], K("OSError", ""), [[wb:send(2); return ra:recv() == 2]])
row("queue", [[queue.wait(42)]], E"bad argument #1 to 'wait' (table expected, got number)")
row("queue", [[queue.wait({42})]], E"bad argument #1 to 'wait' (objects must be Connections, Queues or started child Processes)")
row("queue", [[queue.wait({p})]], E"bad argument #1 to 'wait' (objects must be Connections, Queues or started child Processes)")
row("queue", [[queue.wait({q}, -1)]], E"bad argument #2 to 'wait' (timeout must be a non-negative number)")
row("queue", [[queue.wait({released})]], E"bad argument #1 to 'wait' (a queue handle was released)")
row("queue", [[b:close(); queue.wait({a, b}, 0)]], K("OSError", "queue.wait: objects[2] is a closed connection"))

-- ---------------------------------------------------------------- process

row("process", [[process.Process()]], E"bad argument #1 to 'Process' (table expected, got no value)")
row("process", [[process.Process{target = 42}]], E"bad argument #1 to 'Process' (target must be a function)")
row("process", [[process.Process{target = f, args = 1}]], E"bad argument #1 to 'Process' (args must be a table)")
row("process", [[process.Process{name = 1}]], E"bad argument #1 to 'Process' (name must be a string)")
row("process", [[process.Process{daemon = "yes"}]], E"bad argument #1 to 'Process' (daemon must be a boolean)")
row("process", [[process.Process{tagret = f}]], E"bad argument #1 to 'Process' (unknown option 'tagret')")
row("process", [[local w = thread.Thread{target = function(x) x:start() end, args = {p}}
  w:start(); w:join(); w:result()]], E"process:start: a process can only be started by the thread that created it",
  [[p:start(); return p:join(10) and p.exitcode == 0]])
row("process", [[p:join()]], E"process:join: can only join a started process")
row("process", [[p:terminate()]], E"process:terminate: can only terminate a started process")
row("process", [[p:kill()]], E"process:kill: can only kill a started process")
row("process", [[done_p:start()]], E"process:start: cannot start a process twice", [[return done_p.exitcode == 0]])
row("process", [[done_p:join(-1)]], E"bad argument #1 to 'join' (timeout must be a non-negative number)")
row("process", [[done_p:join(math.huge)]], E"bad argument #1 to 'join' (timeout must be finite; nil waits forever)")
row("process", [[closed_p:join()]], K("ValueError", "process object is closed"), [[return closed_p.exitcode == 0 and closed_p.pid ~= nil]])
row("process", [[closed_p:start()]], K("ValueError", "process object is closed"))
row("process", [[p.pid = 5]], E"process.pid is read-only")
row("process", [[done_p.daemon = true]], E"process.daemon: cannot set daemon status of an active process")
row("process", [[p.daemon = "yes"]], E"bad argument #3 to 'newindex' (boolean expected, got string)")
row("process", [[p.start(42)]], E"bad argument #1 to 'start' (plua.Process expected, got number)")
row("process", [[process.set_start_method("thread")]], E"bad argument #1 to 'set_start_method' (invalid option 'thread')")
row("process", [[process.set_start_method("fork", "yes")]], E"bad argument #2 to 'set_start_method' (boolean expected, got string)")
row("process", [[use_spawn(); process.set_start_method("fork")]], K("RuntimeError", "context has already been set"),
  [[return process.get_start_method() == "spawn"]])
row("process", [[use_spawn(); process.Process{target = f, args = {co}}:start()]],
  E"cannot send a thread (coroutine) value at process[2][1]")
row("process", [[use_spawn(); process.Process{target = badfn}:start()]],
  E"cannot send a thread (coroutine) value at process[1]<upvalue c>")
row("process", [[use_spawn(); process.Process{target = f, args = {st}}:start()]],
  E"cannot send a plua.shared.table to another process at process[2][1]")
row("process", [[use_spawn(); process.Process{target = f, args = {loc}}:start()]],
  E"to another process at process[2][1]")
row("process", [[use_spawn(); process.Process{target = f, args = {tp}}:start()]],
  E"cannot send a plua.Pool to another process at process[2][1]", [[return tp:apply(f, {5}) == 5]])

-- ---------------------------------------------------------------- pool

row("pool", [[pool.Pool(0)]], E"bad argument #1 to 'Pool' (Number of processes must be at least 1)")
row("pool", [[pool.ThreadPool(-2)]], E"bad argument #1 to 'ThreadPool' (Number of processes must be at least 1)")
row("pool", [[pool.ThreadPool(5000)]], E"bad argument #1 to 'ThreadPool' (Number of processes must be at most 4096)")
row("pool", [[pool.ThreadPool("four")]], E"bad argument #1 to 'ThreadPool' (number expected, got string)")
row("pool", [[pool.Pool(1.5)]], E"bad argument #1 to 'Pool' (number has no integer representation)")
row("pool", [[pool.Pool{processes = 1.5}]], E"bad argument #1 to 'Pool' (processes must be an integer)")
row("pool", [[pool.Pool{initializer = 42}]], E"bad argument #1 to 'Pool' (initializer must be a function)")
row("pool", [[pool.Pool{initargs = 1}]], E"bad argument #1 to 'Pool' (initargs must be a table)")
row("pool", [[pool.Pool{maxtasksperchild = 0}]], E"bad argument #1 to 'Pool' (maxtasksperchild must be a positive integer or nil)")
row("pool", [[pool.ThreadPool{procesess = 2}]], E"bad argument #1 to 'ThreadPool' (unknown option 'procesess')")
row("pool", [[pool.ThreadPool{processes = 1, initargs = {co}}]], E"cannot send a thread (coroutine) value at kit")
row("pool", [[tp:apply()]], E"bad argument #1 to 'apply' (function expected, got nil)",
  [[return tp:apply(f, {5}) == 5]])
row("pool", [[tp:apply(42)]], E"bad argument #1 to 'apply' (function expected, got number)",
  [[return tp:apply(f, {5}) == 5]])
row("pool", [[tp:apply(f, 42)]], E"bad argument #2 to 'apply' (table expected, got number)")
row("pool", [[tp:apply(f, {co})]], E"cannot send a thread (coroutine) value at args[1]", [[return tp:apply(f, {5}) == 5]])
row("pool", [[tp:apply(badfn)]], E"cannot send a thread (coroutine) value at f[1]<upvalue c>", [[return tp:apply(f, {5}) == 5]])
row("pool", [[pp:apply(f, {file})]], E"cannot send a userdata (FILE*) value at args[1]", [[return pp:apply(f, {5}) == 5]])
row("pool", [[pp:apply(f, {{conn = a}})]], E"cannot send a plua.Connection to another process at args[1].conn",
  [[return pp:apply(f, {5}) == 5]])
row("pool", [[pp:map(f, {1, st})]], E"cannot send a plua.shared.table to another process at list[2]",
  [[return pp:map(f, {5})[1] == 5]])
row("pool", [[tp:apply(setmetatable({}, {__call = 42}))]], E"bad argument #1 to 'apply' (function expected, got table)",
  [[return tp:apply(setmetatable({}, {__call = function(_, x) return x end}), {5}) == 5]])
row("pool", [[tp:apply_async(f, {}, 42)]], E"bad argument #3 to 'apply_async' (table expected, got number)")
row("pool", [[tp:apply_async(f, {}, {callback = 42})]], E"bad argument #3 to 'apply_async' (callback must be a function)")
row("pool", [[tp:apply_async(f, {}, {error_callback = "x"})]], E"bad argument #3 to 'apply_async' (error_callback must be a function)")
row("pool", [[tp:apply_async(f, {}, {callbak = f})]], E"bad argument #3 to 'apply_async' (unknown option 'callbak')")
row("pool", [[tp:map(f, 42)]], E"bad argument #2 to 'map' (table expected, got number)")
row("pool", [[tp:map(42, {1})]], E"bad argument #1 to 'map' (function expected, got number)")
row("pool", [[tp:map(f, {1}, 0)]], E"bad argument #3 to 'map' (chunksize must be a positive integer)")
row("pool", [[tp:map(f, {1}, 1.5)]], E"bad argument #3 to 'map' (number has no integer representation)")
row("pool", [[tp:map(f, {1, co})]], E"cannot send a thread (coroutine) value at list[2]",
  [[return tp:map(f, {1, 2})[2] == 2]])
row("pool", [[tp:map_async(f, {1}, nil, {callback = 1})]], E"bad argument #4 to 'map_async' (callback must be a function)")
row("pool", [[tp:map_async(f, {1}, nil, {error_calback = f})]], E"bad argument #4 to 'map_async' (unknown option 'error_calback')")
row("pool", [[tp:map_async(f, {1}, {calback = f})]], E"bad argument #3 to 'map_async' (unknown option 'calback')")
row("pool", [[tp:starmap(f, {1, 2})]], E"bad argument #2 to 'starmap' (every element must be a table of arguments; [1] is a number)")
row("pool", [[tp:starmap_async(f, {{1}, "x"})]], E"bad argument #2 to 'starmap_async' (every element must be a table of arguments; [2] is a string)")
row("pool", [[tp:imap(f, 42)]], E"bad argument #2 to 'imap' (table expected, got number)")
row("pool", [[tp:imap_unordered(f, {1}, 0)]], E"bad argument #3 to 'imap_unordered' (chunksize must be a positive integer)")
row("pool", [[it:next(-1)]], E"bad argument #1 to 'next' (timeout must be a non-negative number)", [[return it:next(10) == 1]])
row("pool", [[pending:get(-1)]], E"bad argument #1 to 'get' (timeout must be a non-negative number)")
row("pool", [[pending:get(0)]], K("TimeoutError", "AsyncResult:get: timed out"), [[return pending:ready() == false]])
row("pool", [[pending:get(math.huge)]], E"bad argument #1 to 'get' (timeout must be finite; nil waits forever)")
row("pool", [[pending:wait("x")]], E"bad argument #1 to 'wait' (number expected, got string)")
row("pool", [[pending:successful()]], K("ValueError", "AsyncResult:successful: the result is not ready"))
row("pool", [[closed_pool:apply(f, {1})]], K("ValueError", "pool:apply: Pool not running"))
row("pool", [[terminated_pool:map(f, {1})]], K("ValueError", "pool:map: Pool not running"))
row("pool", [[closed_pool:imap(f, {1})]], K("ValueError", "pool:imap: Pool not running"))
row("pool", [[tp:join()]], K("ValueError", "pool:join: Pool is still running"), [[return tp:apply(f, {5}) == 5]])
row("pool", [[tp.apply(42, f)]], E"bad argument #1 to 'apply' (plua.Pool expected, got number)")

-- ---------------------------------------------------------------- subprocess

row("subprocess", [[subprocess.run()]], E"bad argument #1 to 'run' (table expected, got no value)")
row("subprocess", [[subprocess.run{}]], E"bad argument #1 to 'run' (args must list at least the program)")
row("subprocess", [[subprocess.call(42)]], E"bad argument #1 to 'call' (table expected, got number)")
row("subprocess", [[subprocess.run{"true", {}}]], E"bad argument #1 to 'run' (args[2] must be a string, got table)")
row("subprocess", [[subprocess.run{"tr\0ue"}]], E"bad argument #1 to 'run' (embedded null byte in args[1])")
row("subprocess", [[subprocess.run{"true", [5] = "x"}]], E"bad argument #1 to 'run' (args must be a list (no holes) plus named options)")
row("subprocess", [[subprocess.run{"true", tiemout = 1}]], E"bad argument #1 to 'run' (unknown option 'tiemout')")
row("subprocess", [[subprocess.call{"true", input = "x"}]], E"bad argument #1 to 'call' (unknown option 'input')")
row("subprocess", [[subprocess.run{"true", timeout = -1}]], E"bad argument #1 to 'run' (timeout must be a non-negative number)")
row("subprocess", [[subprocess.run{"true", timeout = 0/0}]], E"bad argument #1 to 'run' (timeout must be a non-negative number)")
row("subprocess", [[subprocess.run{"true", timeout = math.huge}]], E"bad argument #1 to 'run' (timeout must be finite; nil waits forever)")
row("subprocess", [[subprocess.run{"true", timeout = "soon"}]], E"bad argument #1 to 'run' (timeout must be a number, got string)")
row("subprocess", [[subprocess.run{"true", stdout = "pipe"}]], E"bad argument #1 to 'run' (stdout must be PIPE, STDOUT, DEVNULL, a file or a descriptor, got string)")
row("subprocess", [[subprocess.run{"true", stdout = subprocess.STDOUT}]], E"bad argument #1 to 'run' (STDOUT is only valid for stderr, not stdout)")
row("subprocess", [[subprocess.run{"true", stdout = 99999}]], E"bad argument #1 to 'run' (stdout: bad file descriptor 99999)")
row("subprocess", [[subprocess.run{"true", stdin = -5}]], E"bad argument #1 to 'run' (stdin: bad file descriptor -5)")
row("subprocess", [[local f = io.tmpfile(); f:close(); subprocess.run{"true", stdout = f}]], E"bad argument #1 to 'run' (stdout is a closed file)")
row("subprocess", [[subprocess.run{"true", input = 42}]], E"bad argument #1 to 'run' (input must be a string, got number)")
row("subprocess", [[subprocess.run{"cat", input = "x", stdin = subprocess.PIPE}]], E"bad argument #1 to 'run' (stdin and input may not both be used)")
row("subprocess", [[subprocess.run{"true", capture_output = true, stdout = subprocess.PIPE}]], E"bad argument #1 to 'run' (stdout and stderr may not be used with capture_output)")
row("subprocess", [[subprocess.run{"true", env = 1}]], E"bad argument #1 to 'run' (env must be a table, got number)")
row("subprocess", [[subprocess.run{"true", env = {["A=B"] = "1"}}]], E"bad argument #1 to 'run' (illegal environment variable name 'A=B')")
row("subprocess", [[subprocess.run{"true", env = {[1] = "x"}}]], E"bad argument #1 to 'run' (env names must be strings)")
row("subprocess", [[subprocess.run{"true", shell = "yes"}]], E"bad argument #1 to 'run' (shell must be a boolean, got string)")
row("subprocess", [[subprocess.run{"true", cwd = {}}]], E"bad argument #1 to 'run' (cwd must be a string, got table)")
row("subprocess", [[subprocess.run{"no-such-program-plua"}]], K("FileNotFoundError", "No such file or directory: 'no-such-program-plua'"))
row("subprocess", [[subprocess.run{"true", cwd = "/no/such/dir"}]], K("FileNotFoundError", "No such file or directory"))
row("subprocess", [[subprocess.run{"sleep", "5", timeout = 0.05}]], K("TimeoutExpired", "timed out after 0.05 seconds"))
row("subprocess", [[subprocess.check_call{"false"}]], K("CalledProcessError", "returned non-zero exit status 1"))
row("subprocess", [[subprocess.check_output{"false"}]], K("CalledProcessError", "returned non-zero exit status 1"))
row("subprocess", [[subprocess.run{"false", check = true}]], K("CalledProcessError", "returned non-zero exit status 1"))
row("subprocess", [[subprocess.run{"false"}:check_returncode()]], K("CalledProcessError", "returned non-zero exit status 1"))
row("subprocess", [[subprocess.Popen{"true", stdin = "x"}]], E"bad argument #1 to 'Popen' (stdin must be PIPE, STDOUT, DEVNULL, a file or a descriptor, got string)")
row("subprocess", [[sleeper:communicate({})]], E"bad argument #1 to 'communicate' (string expected, got table)")
row("subprocess", [[sleeper:communicate(nil, -1)]], E"bad argument #2 to 'communicate' (timeout must be a non-negative number)")
row("subprocess", [[sleeper:wait(-1)]], E"bad argument #1 to 'wait' (timeout must be a non-negative number)",
  [[return sleeper:poll() == nil]])
row("subprocess", [[sleeper:wait("soon")]], E"bad argument #1 to 'wait' (number expected, got string)")
row("subprocess", [[sleeper:wait(0)]], K("TimeoutExpired", "timed out after 0 seconds"),
  [[sleeper:kill(); return sleeper:wait(10) == -9]])
row("subprocess", [[sleeper:send_signal("SIGNOPE")]], E"bad argument #1 to 'send_signal' (unknown signal 'SIGNOPE')",
  [[return sleeper:poll() == nil]])
row("subprocess", [[sleeper:send_signal(-1)]], E"bad argument #1 to 'send_signal' (invalid signal number)")
row("subprocess", [[sleeper:send_signal({})]], E"bad argument #1 to 'send_signal' (number expected, got table)")
row("subprocess", [[sleeper.wait(42)]], E"bad argument #1 to 'wait' (plua.subprocess.Popen expected, got number)")

-- ---------------------------------------------------------------- manager

row("manager", [[manager.BaseManager()]], E"bad argument #1 to 'BaseManager' (table expected, got no value)")
row("manager", [[manager.BaseManager{}]], E"bad argument #1 to 'BaseManager' (authkey must be a string (the key both sides share))")
row("manager", [[manager.BaseManager{authkey = 42}]], E"bad argument #1 to 'BaseManager' (authkey must be a string (the key both sides share))")
row("manager", [[manager.BaseManager{authkey = "k", autkey = "k"}]], E"bad argument #1 to 'BaseManager' (unknown option 'autkey')")
row("manager", [[manager.BaseManager{address = "x", authkey = "k"}]], E"bad argument #1 to 'BaseManager' (address must be a table {host, port})")
row("manager", [[manager.BaseManager{address = {42, 1}, authkey = "k"}]], E"bad argument #1 to 'BaseManager' (address[1] (host) must be a string)")
row("manager", [[manager.BaseManager{address = {"127.0.0.1", 70000}, authkey = "k"}]], E"bad argument #1 to 'BaseManager' (address[2] (port) must be an integer in 0..65535)")
row("manager", [[manager.BaseManager{address = {"127.0.0.1", -1}, authkey = "k"}]], E"bad argument #1 to 'BaseManager' (address[2] (port) must be an integer in 0..65535)")
row("manager", [[manager.BaseManager{address = {"127.0.0.1", 1.5}, authkey = "k"}]], E"bad argument #1 to 'BaseManager' (address[2] (port) must be an integer in 0..65535)")
row("manager", [[m:register()]], E"bad argument #1 to 'register' (string expected, got no value)")
row("manager", [[m:register("q", 42)]], E"bad argument #2 to 'register' (function expected, got number)")
row("manager", [[m:register("start")]], E"bad argument #1 to 'register' (name is a BaseManager member)")
row("manager", [[m:register("q", function() return 42 end); m:start()]],
  E"manager:start: the callable registered as 'q' must return a queue.Queue (got number)")
row("manager", [[srv:register("other")]], E"manager:register: the server is already running", [[return px:qsize() == 0]])
row("manager", [[srv:start()]], E"manager:start: the server is already running", [[return px:qsize() == 0]])
row("manager", [[px:put(co)]], E"proxy:put: cannot send a thread (coroutine) value to a manager at value[1]",
  [[px:put(1); return px:qsize() == 1 and served:get() == 1]])
row("manager", [[px:put({f})]], E"proxy:put: cannot send a function value to a manager at value[1][1]",
  [[px:put(1); return px:qsize() == 1 and served:get() == 1]])
row("manager", [[px:put({q = served})]], E"proxy:put: cannot send a plua.Queue to a manager at value[1].q",
  [[px:put(1); return px:qsize() == 1 and served:get() == 1]])
row("manager", [[px:put(1, "yes")]], E"bad argument #2 to 'put' (boolean expected, got string)", [[return px:qsize() == 0]])
row("manager", [[px:get(true, -1)]], E"bad argument #2 to 'get' (timeout must be a non-negative number)")
row("manager", [[px:get(true, math.huge)]], E"bad argument #2 to 'get' (timeout must be finite; nil waits forever)")
row("manager", [[px:get(false)]], K("Empty", ""), [[px:put(1); return px:get() == 1]])
row("manager", [[px:get(true, 0.01)]], K("Empty", ""), [[px:put(1); return px:get() == 1]])
row("manager", [[px:close(); px:get()]], E"calling 'get' on bad self (proxy was closed)")
row("manager", [[wrong_key:connect()]], K("AuthenticationError", ""), [[return px:qsize() == 0]])
row("manager", [[local port = srv.address[2]; srv:shutdown()
  manager.BaseManager{address = {"127.0.0.1", port}, authkey = "key"}:connect()]], E"manager:connect: cannot connect to 127.0.0.1:")

-- ---------------------------------------------------------------- a bad self

-- Every method called with something else as `self` (as `obj.method(42)`, a
-- `.` for a `:`): an argument error naming the method and the class.
for _, m in ipairs {
  { "thread", "done", "plua.thread.Thread", { "start", "join", "is_alive", "result", "cancel" } },
  { "lock", "lk", "plua.lock.Lock", { "acquire", "release", "locked", "guard", "close" } },
  { "lock", "rl", "plua.lock.RLock", { "acquire", "release", "locked", "guard", "close" } },
  { "lock", "cond", "plua.lock.Condition", { "acquire", "release", "guard", "wait", "wait_for", "notify", "notify_all", "close" } },
  { "lock", "sem", "plua.lock.Semaphore", { "acquire", "release", "guard", "close" } },
  { "lock", "ev", "plua.lock.Event", { "set", "clear", "is_set", "wait", "close" } },
  { "lock", "bar", "plua.lock.Barrier", { "wait", "reset", "abort", "close" } },
  { "queue", "jq", "plua.Queue", { "put", "get", "put_nowait", "get_nowait", "qsize", "empty", "full", "close",
    "task_done", "join" } },
  { "queue", "a", "plua.Connection", { "send", "recv", "send_bytes", "recv_bytes", "poll", "close", "fileno" } },
  { "process", "p", "plua.Process", { "start", "join", "is_alive", "terminate", "kill", "close" } },
  { "pool", "tp", "plua.Pool", { "apply", "apply_async", "map", "map_async", "imap", "imap_unordered", "starmap",
    "starmap_async", "close", "join", "terminate" } },
  { "pool", "pending", "plua.AsyncResult", { "get", "wait", "ready", "successful" } },
  { "pool", "it", "plua.PoolIterator", { "next" } },
  { "subprocess", "sleeper", "plua.subprocess.Popen", { "communicate", "wait", "poll", "send_signal", "terminate", "kill" } },
  { "manager", "m", "plua.BaseManager", { "register", "start", "serve_forever", "connect", "shutdown" } },
  { "manager", "px", "plua.ManagerProxy", { "put", "get", "put_nowait", "get_nowait", "qsize", "empty", "full", "close" } },
} do
  local module, obj, class, methods = m[1], m[2], m[3], m[4]
  for _, method in ipairs(methods) do
    row(module, ("%s.%s(42)"):format(obj, method),
      E(("bad argument #1 to '%s' (%s expected, got number)"):format(method, class)))
  end
end

-- ---------------------------------------------------------------- running

-- Runs one row; returns nil, or what went wrong.
local function check_row(r)
  local env, cleanup = make_env()
  local chunk, syntax = load(r.code, "=" .. r.code, "t", env)
  if not chunk then return "does not compile: " .. syntax end
  local ok, err = pcall(chunk)
  local problem
  if ok then
    problem = "no error was raised"
  else
    local text = tostring(err)
    if r.expect.kind then
      if type(err) ~= "table" or err.kind ~= r.expect.kind then
        problem = ("expected kind %s, got %q"):format(r.expect.kind, text)
      elseif not text:find(r.expect.text, 1, true) then
        problem = ("error %q does not contain %q"):format(text, r.expect.text)
      end
    elseif type(err) == "table" and err.kind then
      problem = ("expected an argument error, got kind %s: %q"):format(err.kind, text)
    elseif not text:find(r.expect.text, 1, true) then
      problem = ("error %q does not contain %q"):format(text, r.expect.text)
    end
  end
  if not problem and r.after then
    local check = load(r.after, "=(afterwards)", "t", env)
    local aok, res = pcall(check)
    if not aok then
      problem = "afterwards: " .. tostring(res)
    elseif res ~= true then
      problem = "afterwards: returned " .. tostring(res)
    end
  end
  cleanup()
  return problem
end

-- The markdown tables (fixtures, then rows), from the same data.
local function markdown()
  local function cell(s) return "`" .. s:gsub("%s*\n%s*", " "):gsub("|", "\\|") .. "`" end
  local out = { "| fixture | what it is |", "|---|---|" }
  for _, d in ipairs(fixture_doc) do out[#out + 1] = ("| `%s` | %s |"):format(d[1], d[2]) end
  out[#out + 1] = ""
  out[#out + 1] = "| module | call | error | afterwards |"
  out[#out + 1] = "|---|---|---|---|"
  for _, r in ipairs(rows) do
    local e = r.expect.kind and ("kind " .. r.expect.kind .. (r.expect.text ~= "" and (": " .. cell(r.expect.text)) or ""))
      or cell(r.expect.text)
    out[#out + 1] = ("| %s | %s | %s | %s |"):format(r.module, cell(r.code), e, r.after and cell(r.after) or "")
  end
  return table.concat(out, "\n") .. "\n"
end

if arg and arg[1] == "--markdown" then
  io.write(markdown())
  os.exit(0)
end

-- A watchdog: a row that blocks for more than 60 s is reported and ends the run.
local ticks = queue.Queue()
local watchdog = thread.Thread { daemon = true, target = function(tq)
  local current = "(start)"
  while true do
    local ok, v = pcall(tq.get, tq, true, 60)
    if not ok then
      io.stderr:write("misuse: a row hung for 60 s: " .. current .. "\n")
      os.exit(2)
    end
    if v == false then return end
    current = v
  end
end, args = { ticks } }
watchdog:start()

for i, r in ipairs(rows) do
  T.test(("%03d %s: %s"):format(i, r.module, r.code:gsub("%s*\n%s*", " ")), function()
    ticks:put(r.code)
    local problem = check_row(r)
    if problem then error(problem, 0) end
  end)
end
T.test("every fixture is documented, and every documented one exists", function()
  local documented = {}
  for _, d in ipairs(fixture_doc) do
    T.ok(fixture[d[1]], "documented but not a fixture: " .. d[1])
    documented[d[1]] = true
  end
  for name in pairs(fixture) do T.ok(documented[name], "fixture without a description: " .. name) end
end)
T.test("every module of api.md has rows", function()
  local seen = {}
  for _, r in ipairs(rows) do seen[r.module] = true end
  for _, m in ipairs { "time", "thread", "threadlocal", "lock", "shared", "process", "queue", "pool",
    "subprocess", "manager" } do
    T.ok(seen[m], "no rows for " .. m)
  end
end)
T.test("watchdog stops", function()
  ticks:put(false)
  T.ok(watchdog:join(10))
end)
T.run()
