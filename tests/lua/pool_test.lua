-- pool: Pool (worker processes) and ThreadPool (worker threads), api.md "pool".
local T = require "testing"
local pool = require "pool"
local process = require "process"
local time = require "time"
local thread = require "thread"
local queue = require "queue"
local shared = require "shared"

-- Children of this process right now (the workers a pool forked included),
-- read from /proc so that nothing we count is our own doing.
local function children()
  local me = process.getpid()
  local ls = io.popen("ls /proc/" .. me .. "/task")
  local tids = {}
  for tid in ls:lines() do tids[#tids + 1] = tid end
  ls:close()
  local n = 0
  for _, tid in ipairs(tids) do
    local f = io.open(("/proc/%d/task/%s/children"):format(me, tid))
    if f then
      for _ in f:read("a"):gmatch("%d+") do n = n + 1 end
      f:close()
    end
  end
  return n
end

local function threads()
  local f = assert(io.open("/proc/self/status"))
  local n = tonumber(f:read("a"):match("Threads:%s*(%d+)"))
  f:close()
  return n
end

-- Polls cond until it holds or `seconds` pass; returns whether it held.
local function eventually(cond, seconds)
  local deadline = time.monotonic() + (seconds or 10)
  while time.monotonic() < deadline do
    if cond() then return true end
    time.sleep(0.01)
  end
  return cond()
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

local function square(x) return x * x end

local base_children = children()

T.test("kinds are exported as strings", function()
  T.eq(pool.TimeoutError, "TimeoutError")
  T.eq(pool.WorkerLostError, "WorkerLostError")
  T.eq(pool.RemoteError, "RemoteError")
  T.eq(pool.ValueError, "ValueError")
end)

T.test("misuse is an argument error", function()
  T.raises(function() pool.Pool(0) end, "bad argument #1")
  T.raises(function() pool.Pool("two") end, "bad argument #1")
  T.raises(function() pool.ThreadPool{processes = 1.5} end, "processes must be an integer")
  T.raises(function() pool.Pool{processes = 1, maxtasksperchild = 0} end, "maxtasksperchild")
  T.raises(function() pool.Pool{processes = 1, initializer = 3} end, "initializer must be a function")
  local p <close> = pool.ThreadPool(1)
  T.raises(function() p:map(square, 3) end, "bad argument #2 to 'map'")
  T.raises(function() p:map(square, {1}, 0) end, "chunksize must be a positive integer")
  T.raises(function() p:apply_async(square, {1}):get(-1) end, "timeout must be a non-negative number")
  T.raises(function() p:apply(square, {coroutine.create(print)}) end, "cannot send a thread")
end)

for _, kind in ipairs{"Pool", "ThreadPool"} do
  local P = pool[kind]

  T.test(kind .. ": apply, apply_async and the AsyncResult", function()
    local p <close> = P(2)
    T.eq(p.processes, 2)
    local a, b, c = p:apply(function(x, y) return x + y, x * y end, {3, 4})
    T.eq(a, 7); T.eq(b, 12); T.eq(c, nil)
    local r = p:apply_async(square, {9})
    T.eq(r:get(5), 81)
    T.ok(r:ready()); T.ok(r:successful()); T.eq(r:wait(0), true)
    T.eq(p:apply(function() return "no args" end), "no args")
    T.ok(tostring(p):find("state=RUN pool_size=2", 1, true))
  end)

  T.test(kind .. ": a value that cannot travel in a later chunk fails map, and nothing of it is left behind", function()
    local p <close> = P(2)
    local xs = {}
    for i = 1, 100 do xs[i] = i end
    xs[77] = coroutine.create(print)
    local got = 0
    -- The first chunks are already running when item 77 is met.
    T.raises(function()
      p:map_async(square, xs, 10, {callback = function() got = got + 1 end,
                                   error_callback = function() got = got + 1 end})
    end, "value at list[77]")
    xs[77] = 77
    local r = p:map(square, xs, 10)
    T.eq(#r, 100); T.eq(r[77], 77 * 77); T.eq(r[100], 10000)
    T.eq(got, 0)  -- the abandoned job's callbacks never run
  end)

  T.test(kind .. ": map's values arrive in list order while later chunks still run", function()
    local p <close> = P(2)
    local xs = {}
    for i = 1, 1000 do xs[i] = i end
    local r = p:map_async(function(x) return -x end, xs, 7)
    local out = r:get(30)
    T.eq(#out, 1000)
    for i = 1, 1000 do assert(out[i] == -i, i) end
    T.eq(r:successful(), true)
  end)

  T.test(kind .. ": map with every chunk size, starmap, nil results", function()
    local p <close> = P(2)
    local xs = {}
    for i = 1, 1000 do xs[i] = i end
    for _, chunksize in ipairs{false, 1, 7, 1000, 5000} do
      local r = p:map(square, xs, chunksize or nil)
      T.eq(#r, 1000)
      for i = 1, 1000 do T.eq(r[i], i * i) end
    end
    T.deep(p:map(square, {}), {})
    T.deep(p:starmap(function(a, b) return a .. b end, {{"a", "b"}, {"c", "d"}}), {"ab", "cd"})
    T.deep(p:starmap_async(math.max, {{1, 5, 2}, {7, 3}}):get(), {5, 7})
    local holes = p:map(function(x) if x % 2 == 0 then return x end end, {1, 2, 3, 4})
    T.eq(holes[1], nil); T.eq(holes[2], 2); T.eq(holes[3], nil); T.eq(holes[4], 4)
  end)

  T.test(kind .. ": imap yields in order, imap_unordered as they end", function()
    local p <close> = P(3)
    local seen = {}
    for v, i in p:imap(function(x) time.sleep((5 - x) * 0.02) return x * 10 end, {1, 2, 3, 4}) do
      seen[#seen + 1] = {v, i}
    end
    T.deep(seen, {{10, 1}, {20, 2}, {30, 3}, {40, 4}})
    local got, count = {}, 0
    for v, i in p:imap_unordered(function(x) return x + 100 end, {1, 2, 3, 4, 5, 6, 7}, 2) do
      got[i] = v
      count = count + 1
    end
    T.eq(count, 7)
    for i = 1, 7 do T.eq(got[i], i + 100) end
    local it = p:imap(function(x) time.sleep(x) return x end, {0, 5})
    T.eq(it:next(5), 0)
    T.raises_kind(function() it:next(0.05) end, "TimeoutError")
  end)

  T.test(kind .. ": a task's error comes back with the worker's traceback", function()
    local p <close> = P(2)
    local function failing(x)
      if x == 3 then error("boom at " .. x) end
      return x
    end
    local err = T.raises_kind(function() p:apply(failing, {3}) end, "RemoteError")
    T.ok(err.message:find("boom at 3", 1, true), err.message)
    T.ok(err.traceback:find("stack traceback:", 1, true))
    T.ok(err.traceback:find("pool_test.lua:%d+: in"), err.traceback)
    T.eq(err.value, err.message)
    -- An error object keeps its kind and fields.
    local e2 = T.raises_kind(function()
      p:apply(function() error(setmetatable({kind = "Empty", message = "nothing", extra = 5}, {})) end)
    end, "Empty")
    T.eq(e2.extra, 5); T.eq(tostring(e2), "Empty: nothing"); T.ok(e2.traceback)
    -- map fails as a whole; imap raises at the failing chunk and goes on.
    T.raises(function() p:map(failing, {1, 2, 3, 4}, 1) end, "boom at 3")
    local r = p:map_async(failing, {1, 2, 3, 4})
    r:wait()
    T.eq(r:successful(), false)
    local out = {}
    local it = p:imap(failing, {1, 2, 3, 4})
    for _ = 1, 4 do
      local ok, v = pcall(it.next, it)
      out[#out + 1] = ok and v or "error"
    end
    T.deep(out, {1, 2, "error", 4})
    T.eq(select("#", it:next()), 0)
  end)

  T.test(kind .. ": get times out; successful before ready is a ValueError", function()
    local p <close> = P(1)
    local r = p:apply_async(time.sleep, {0.5})
    local t0 = time.monotonic()
    local err = T.raises_kind(function() r:get(0.05) end, "TimeoutError")
    T.eq(err.kind, pool.TimeoutError)
    T.ok(time.monotonic() - t0 < 0.4)
    T.eq(r:wait(0.01), false)
    T.eq(r:ready(), false)
    T.raises_kind(function() r:successful() end, "ValueError")
    T.eq(r:get(10), nil)
    T.eq(r:successful(), true)
  end)

  T.test(kind .. ": callbacks run in the owner's state, before get returns", function()
    local p <close> = P(2)
    local log = {}
    local r = p:apply_async(square, {5}, {callback = function(v) log[#log + 1] = "ok " .. v end})
    T.eq(r:get(), 25)
    T.deep(log, {"ok 25"})
    local r2 = p:apply_async(function() error("bad") end, {},
      {callback = function() log[#log + 1] = "wrong" end,
       error_callback = function(e) log[#log + 1] = e.kind end})
    r2:wait()
    T.deep(log, {"ok 25", "RemoteError"})
    local mr = p:map_async(square, {1, 2, 3}, {callback = function(list) log.map = list end})
    mr:wait()
    T.deep(log.map, {1, 4, 9})
    -- Callbacks of results nobody waits for are delivered by close/join.
    for i = 1, 5 do p:apply_async(square, {i}, {callback = function(v) log[#log + 1] = v end}) end
    p:close()
    p:join()
    T.eq(#log, 7)
    -- A callback's error is raised from the pool call that ran it.
    local q <close> = P(1)
    local rr = q:apply_async(square, {2}, {callback = function() error("callback failed") end})
    T.raises(function() rr:get() end, "callback failed")
  end)

  T.test(kind .. ": close, join and terminate as Python", function()
    local p = P(2)
    T.raises_kind(function() p:join() end, "ValueError")
    local r = p:apply_async(square, {4})
    p:close()
    T.raises_kind(function() p:apply_async(square, {1}) end, "ValueError")
    T.raises(function() p:map(square, {1}) end, "Pool not running")
    p:join()
    T.eq(r:get(), 16)
    p:terminate()
    p:terminate()
    T.ok(tostring(p):find("TERMINATE", 1, true))
    local q = P(1)
    local slow = q:apply_async(time.sleep, {30})
    local t0 = time.monotonic()
    q:terminate()
    T.ok(time.monotonic() - t0 < 5, "terminate is prompt")
    local err = T.raises_kind(function() slow:get(5) end, "WorkerLostError")
    T.eq(err.terminated, true)
    q:join()
  end)

  T.test(kind .. ": initializer and initargs run once in each worker", function()
    local p <close> = P{processes = 2, initializer = function(a, b) SETUP = a .. b end, initargs = {"x", "y"}}
    T.deep(p:map(function() return SETUP end, {1, 2, 3, 4}, 1), {"xy", "xy", "xy", "xy"})
    local bad <close> = P{processes = 1, initializer = function() error("no setup") end}
    T.raises(function() bad:apply(square, {2}) end, "no setup")
  end)

  T.test(kind .. ": maxtasksperchild replaces the worker", function()
    local p <close> = P{processes = 1, maxtasksperchild = 2}
    -- Each worker has a fresh Lua state: a global counter restarts with it.
    local function count() COUNTER = (COUNTER or 0) + 1 return COUNTER end
    local got = {}
    for i = 1, 6 do got[i] = p:apply(count) end
    T.deep(got, {1, 2, 1, 2, 1, 2})
  end)

  T.test(kind .. ": a function is sent once per worker, with its upvalues", function()
    local p <close> = P(1)
    local n = 0
    local function bump() n = n + 1 return n end
    T.deep(p:map(bump, {1, 2, 3, 4, 5}, 1), {1, 2, 3, 4, 5})
    T.eq(n, 0, "the owner's upvalue is its own")
  end)

  T.test(kind .. ": a callable table runs as a task, with its metatable", function()
    local p <close> = P(1)
    local mt = {__call = function(self, x) return x * self.k end, __index = {twice = function(v) return 2 * v end}}
    local callable = setmetatable({k = 3}, mt)
    T.eq(p:apply(callable, {2}), 6)
    T.deep(p:map(callable, {1, 2, 3}), {3, 6, 9})
    T.deep(p:starmap(callable, {{4}, {5}}), {12, 15})
    T.eq(p:apply_async(callable, {7}):get(5), 21)
    local got = {}
    for v, i in p:imap(callable, {1, 2}) do got[i] = v end
    T.deep(got, {3, 6})
    -- self keeps its metatable in the worker.
    local method = setmetatable({}, {__call = function(self, x) return self.twice(x) end,
                                     __index = {twice = function(v) return 2 * v end}})
    T.eq(p:apply(method, {21}), 42)
    -- A callable whose __call cannot travel is refused at submission, with its path.
    local bad = setmetatable({}, {__call = coroutine.create(print)})
    T.raises(function() p:apply(bad) end, "bad argument #1 to 'apply'")
  end)

  T.test(kind .. ": a task error that is a table without kind becomes RemoteError with .value", function()
    local p <close> = P(1)
    local err = T.raises_kind(function() p:apply(function() error({1, 2}) end) end, "RemoteError")
    T.eq(err.kind, pool.RemoteError)
    T.deep(err.value, {1, 2})
    T.eq(err[1], nil)
    T.ok(err.traceback:find("stack traceback:", 1, true))
    T.ok(tostring(err):find("^RemoteError: table"), tostring(err))
    local seen
    local r = p:apply_async(function() error({code = 7}) end, {}, {error_callback = function(e) seen = e end})
    r:wait(10)
    T.raises_kind(function() r:get() end, "RemoteError")
    T.eq(seen.kind, "RemoteError")
    T.eq(seen.value.code, 7)
  end)

  T.test(kind .. ": unknown options of apply_async and map_async are argument errors", function()
    local p <close> = P(1)
    T.raises(function() p:apply_async(print, {}, {callbak = print}) end,
      "bad argument #3 to 'apply_async' (unknown option 'callbak')")
    T.raises(function() p:map_async(print, {1}, nil, {error_calback = print}) end,
      "bad argument #4 to 'map_async' (unknown option 'error_calback')")
    T.raises(function() p:starmap_async(print, {{1}}, {[1] = print}) end,
      "bad argument #3 to 'starmap_async' (unknown option '1')")
    T.eq(p:apply(square, {3}), 9, "the pool is intact")
  end)

  T.test(kind .. ": a pool travels by reference to another thread, which submits to it", function()
    local p <close> = P(2)
    local t = thread.Thread{target = function(pp)
      local a = pp:apply(function(x) return x * 2 end, {21})
      local m = pp:map(function(x) return x + 1 end, {1, 2})
      return a, m[1], m[2]
    end, args = {p}}
    t:start()
    T.eq(t:join(30), true)
    local a, m1, m2 = t:result()
    T.eq(a, 42); T.eq(m1, 2); T.eq(m2, 3)
    -- As an upvalue too; the pool stays the owner's (the thread's handle does not terminate it).
    local t2 = thread.Thread{target = function() return p:apply(square, {5}) end}
    t2:start()
    T.eq(t2:join(30), true)
    T.eq(t2:result(), 25)
    collectgarbage()
    T.eq(p:apply(square, {6}), 36)
  end)

  T.test(kind .. ": callbacks of another thread's submission run in that thread's state", function()
    local p <close> = P(2)
    local owner_log = {}
    local t = thread.Thread{target = function(pp)
      local log = {}
      local r = pp:apply_async(function(x) return x * 3 end, {5}, {callback = function(v) log[#log + 1] = v end})
      local v = r:get(20)
      local bad = pp:apply_async(function() error("nope") end, {}, {error_callback = function(e) log[#log + 1] = e.kind end})
      bad:wait(20)
      return v, log[1], log[2], #log
    end, args = {p}}
    t:start()
    -- The owner calls into the pool meanwhile: it never runs the thread's callbacks.
    for _ = 1, 20 do p:apply(square, {2}) end
    T.eq(t:join(30), true)
    local v, first, second, n = t:result()
    T.eq(v, 15); T.eq(first, 15); T.eq(second, "RemoteError"); T.eq(n, 2)
    T.eq(#owner_log, 0)
  end)

  T.test(kind .. ": two threads submit at once", function()
    local p <close> = P(2)
    local ts = {}
    for k = 1, 2 do
      ts[k] = thread.Thread{target = function(pp, base)
        local sum = 0
        for i = 1, 50 do sum = sum + pp:apply(function(x) return x end, {base + i}) end
        local list = {}
        for i = 1, 200 do list[i] = i end
        local m = pp:map(function(x) return x * 2 end, list, 3)
        for i = 1, 200 do sum = sum + m[i] end
        return sum
      end, args = {p, k * 1000}}
      ts[k]:start()
    end
    for k = 1, 2 do
      T.eq(ts[k]:join(60), true)
      T.eq(ts[k]:result(), 50 * k * 1000 + 1275 + 40200)
    end
  end)

  T.test(kind .. ": globals are copied to workers", function()
    GREETING = "hello from the script"
    local p <close> = P(1)
    T.eq(p:apply(function() return GREETING end), "hello from the script")
    GREETING = nil
  end)
end

T.test("Pool: a Connection or shared.table in a task is refused at submission, with its path", function()
  local a, b = queue.Pipe()
  local p <close> = pool.Pool(1)
  T.raises(function() p:apply(function(c) return 1 end, {{conn = a}}) end,
    "cannot send a plua.Connection to another process at args[1].conn")
  T.raises(function() p:apply(function() return a end) end,
    "cannot send a plua.Connection to another process at f[1]<upvalue a>")
  T.raises(function() p:apply(function(t) return 1 end, {shared.table()}) end,
    "cannot send a plua.shared.table to another process at args[1]")
  T.raises(function() p:map(function(t) return 1 end, {1, 2, shared.table()}) end,
    "to another process at list[3]")
  T.raises(function() pool.Pool{processes = 1, initargs = {a}} end, "to another process at kit")
  -- A ThreadPool carries them (its workers are threads of this process).
  local tp <close> = pool.ThreadPool(1)
  T.eq(tp:apply(function(c) c:send("hi") return 1 end, {a}), 1)
  T.eq(b:recv(), "hi")
  T.eq(p:apply(square, {4}), 16, "the pool is intact")
  a:close() b:close()
end)

T.test("Pool: a pool goes to another process as a refusal with its path", function()
  local p <close> = pool.Pool(1)
  local old = process.get_start_method()
  process.set_start_method("spawn", true)
  local c = process.Process{target = function(pp) end, args = {p}}
  local ok, err = pcall(c.start, c)
  process.set_start_method(old, true)
  T.eq(ok, false)
  T.ok(tostring(err):find("cannot send a plua.Pool to another process at process[2][1]", 1, true), tostring(err))
end)

T.test("Pool: a worker process reports itself as Python's ForkPoolWorker-N, daemon, child of the owner", function()
  local p <close> = pool.Pool(2)
  local got = p:map(function()
    local pr = require "process"
    local cp, pp = pr.current_process(), pr.parent_process()
    return {cp.name, cp.daemon, pp and pp.name, pp and pp.pid, cp.pid == pr.getpid(),
            pr.get_start_method()}
  end, {1, 2}, 1)
  for _, r in ipairs(got) do
    T.ok(r[1]:match("^ForkPoolWorker%-%d+$"), r[1])
    T.eq(r[2], true)
    T.eq(r[3], process.current_process().name)
    T.eq(r[4], process.getpid())
    T.eq(r[5], true)
  end
  -- Numbered from the process's children counter, as Python's.
  local names = {}
  for _, r in ipairs(got) do names[r[1]] = true end
  local c = process.Process{target = function() end}
  local n = tonumber(tostring(c.name):match("%-(%d+)$"))
  for name in pairs(names) do T.ok(tonumber(name:match("%d+$")) < n, name .. " vs " .. c.name) end
  -- Not in a ThreadPool: its workers are threads of this process.
  local tp <close> = pool.ThreadPool(1)
  T.eq(tp:apply(function() return require("process").current_process().name end),
       process.current_process().name)
end)

T.test("Pool: a SIGKILLed worker fails its task promptly, is replaced, the pool goes on", function()
  local p <close> = pool.Pool(2)
  local marker = os.tmpname()
  os.remove(marker)
  local r = p:apply_async(function(path)
    local f = io.open(path, "w")
    f:write(process.getpid())
    f:close()
    time.sleep(60)
  end, {marker})
  local pid
  T.ok(eventually(function()
    local f = io.open(marker)
    if f then pid = tonumber(f:read("a")) f:close() end
    return pid ~= nil
  end), "the task started")
  os.remove(marker)
  local t0 = time.monotonic()
  os.execute("kill -9 " .. pid)
  local err = T.raises_kind(function() r:get(10) end, "WorkerLostError")
  T.ok(time.monotonic() - t0 < 5, "fails promptly")
  T.eq(err.pid, pid); T.eq(err.signal, 9); T.eq(err.exitcode, -9)
  T.ok(err.message:find(tostring(pid), 1, true)); T.ok(err.message:find("SIGKILL", 1, true))
  T.deep(p:map(square, {1, 2, 3}), {1, 4, 9})
  T.ok(eventually(function() return #p.pids == 2 end))
  for _, w in ipairs(p.pids) do T.ok(w ~= pid) end
  -- A worker that exits in the middle of a task: the exit status is named.
  local e2 = T.raises_kind(function() p:apply(os.exit, {7}) end, "WorkerLostError")
  T.eq(e2.exitcode, 7); T.ok(e2.message:find("exited with status 7", 1, true))
  T.eq(p:apply(square, {12}), 144)
end)

T.test("Pool: tasks queued behind a dying worker are not lost", function()
  local p <close> = pool.Pool(2)
  local results = p:map_async(function(x)
    if x == 5 then os.exit(1) end
    return x
  end, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 1)
  local err = T.raises_kind(function() results:get(20) end, "WorkerLostError")
  T.eq(err.exitcode, 1)
  local ok = p:map(square, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 1)
  T.eq(#ok, 10)
end)

T.test("process counts: workers start once and nothing is left behind", function()
  T.eq(children(), base_children)
  local p = pool.Pool(3)
  T.eq(children(), base_children + 3)
  local pids = p.pids
  T.eq(#pids, 3)
  for _ = 1, 3 do p:map(square, {1, 2, 3, 4, 5, 6}, 1) end
  table.sort(pids)
  local after = p.pids
  table.sort(after)
  T.deep(after, pids, "the same workers served every map")
  p:terminate()
  T.eq(children(), base_children)
  for _, pid in ipairs(pids) do T.ok(not alive(pid), "worker " .. pid .. " is gone") end
  -- close + join
  local q = pool.Pool(2)
  q:map(square, {1, 2})
  q:close()
  q:join()
  T.eq(children(), base_children)
  -- to-be-closed
  do
    local r <close> = pool.Pool(2)
    r:apply_async(time.sleep, {30})
    T.eq(children(), base_children + 2)
  end
  T.eq(children(), base_children)
end)

T.test("garbage collection of an unclosed pool ends its workers and threads", function()
  local base_threads = threads()
  do
    local p = pool.Pool(2)
    p:apply_async(time.sleep, {30})
    local t = pool.ThreadPool(3)
    t:map(square, {1, 2, 3})
    T.eq(children(), base_children + 2)
  end
  collectgarbage()
  collectgarbage()
  T.eq(children(), base_children)
  T.ok(eventually(function() return threads() == base_threads end), "threads " .. threads() .. " vs " .. base_threads)
end)

T.test("ThreadPool: threads run in parallel and terminate interrupts a busy one", function()
  local base_threads = threads()
  local p = pool.ThreadPool(2)
  T.eq(threads(), base_threads + 3, "two workers and the manager")
  local r = p:apply_async(function() while true do end end)
  local t0 = time.monotonic()
  p:terminate()
  T.ok(time.monotonic() - t0 < 5)
  T.raises_kind(function() r:get() end, "WorkerLostError")
  T.eq(threads(), base_threads)
end)

T.test("Ctrl-C while waiting in get is a KeyboardInterrupt; the pool is intact", function()
  local p <close> = pool.Pool(1)
  local r = p:apply_async(time.sleep, {30})
  os.execute(("(sleep 0.3; kill -INT %d) &"):format(process.getpid()))
  local err = T.raises_kind(function() r:get(20) end, "KeyboardInterrupt")
  T.eq(err.message, "interrupted!")
  p:terminate()
  T.eq(children(), base_children)
end)

T.run()
