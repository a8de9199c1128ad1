local T = require "testing"
local process = require "process"
local queue = require "queue"
local time = require "time"

-- The plua binary running this test, for child plua runs.
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

-- Child pids of this process that are zombies, and all children.
local function children_states()
  local pipe = io.popen("ps --ppid " .. process.getpid() .. " -o pid=,stat=")
  local zombies, all = 0, 0
  for line in pipe:lines() do
    local pid, stat = line:match("(%d+)%s+(%S+)")
    -- ps itself (and the shell running it) are our children too: skip the running ones we cannot know.
    if pid then
      all = all + 1
      if stat:sub(1, 1) == "Z" then zombies = zombies + 1 end
    end
  end
  pipe:close()
  return zombies, all
end

-- How many descriptors this process has open, and their listing.
-- Counts this process's descriptors by probing /proc/<pid>/fdinfo, which
-- starts no child: a listing through io.popen races the pipe popen itself
-- creates (both ends show while the child runs under a slow sanitizer).
-- The listing (second result) is only for failure messages.
local function open_fds()
  local n = 0
  local dir = "/proc/" .. process.getpid() .. "/fdinfo/"
  for fd = 0, 4095 do
    local f = io.open(dir .. fd)
    if f then
      n = n + 1
      f:close()
    end
  end
  local pipe = io.popen("ls -l /proc/" .. process.getpid() .. "/fd")
  local listing = {}
  for line in pipe:lines() do
    local fd, target = line:match(" (%d+) %-> (.*)$")
    if fd then listing[#listing + 1] = fd .. " -> " .. target end
  end
  pipe:close()
  return n, table.concat(listing, "\n")
end

local function with_method(method, fn)
  local old = process.get_start_method()
  process.set_start_method(method, true)
  local ok, err = pcall(fn)
  process.set_start_method(old, true)
  if not ok then error(err, 0) end
end

T.test("Process runs its target in another process with its args", function()
  local q = queue.Queue()
  local p = process.Process{target = function(q, a, b) q:put({process.getpid(), a + b}) end, args = {q, 2, 3}}
  T.eq(p.pid, nil)
  T.eq(p.exitcode, nil)
  p:start()
  T.eq(math.type(p.pid), "integer")
  local got = q:get(true, 10)
  T.eq(got[1], p.pid)
  T.ok(got[1] ~= process.getpid())
  T.eq(got[2], 5)
  T.eq(p:join(10), true)
  T.eq(p.exitcode, 0)
  T.eq(p:is_alive(), false)
end)

T.test("names, daemon and attributes", function()
  local p = process.Process{}
  T.ok(p.name:match("^Process%-%d+$"), p.name)
  T.eq(p.daemon, false)
  local named = process.Process{name = "worker", daemon = true}
  T.eq(named.name, "worker")
  T.eq(named.daemon, true)
  named.name = "renamed"
  T.eq(named.name, "renamed")
  named.daemon = false
  T.eq(named.daemon, false)
  named.custom = 42
  T.eq(named.custom, 42)
  T.raises(function() named.pid = 3 end, "read-only")
  T.ok(tostring(named):find("<Process name='renamed'", 1, true))
  p:start()
  p:join()
  T.raises(function() p.daemon = true end, "active process")
end)

T.test("a target's error gives exitcode 1 and Process NAME: with the traceback on stderr", function()
  local out, status = run_plua([[
    local process = require "process"
    local function fail() error("boom in child") end
    local p = process.Process{target = fail, name = "Bad"}
    p:start() p:join()
    print("exitcode", p.exitcode)
  ]])
  T.eq(status, 0)
  T.ok(out:find("Process Bad:\n", 1, true), out)
  T.ok(out:find("boom in child", 1, true), out)
  T.ok(out:find("stack traceback:", 1, true), out)
  T.ok(out:find(":2: boom in child\n", 1, true), out)
  T.ok(out:find("exitcode\t1", 1, true), out)
end)

T.test("kill gives exitcode -9, terminate -15", function()
  local p = process.Process{target = function() while true do time.sleep(0.01) end end}
  p:start()
  T.eq(p:join(0.05), false)
  T.eq(p:is_alive(), true)
  T.eq(p.exitcode, nil)
  p:kill()
  T.eq(p:join(10), true)
  T.eq(p.exitcode, -9)
  local t = process.Process{target = function() time.sleep(60) end}
  t:start()
  t:terminate()
  t:join(10)
  T.eq(t.exitcode, -15)
  -- Signalling an ended process is harmless.
  t:terminate()
  t:kill()
end)

T.test("os.exit in the target sets the exitcode", function()
  local p = process.Process{target = function() os.exit(7) end}
  p:start()
  p:join(10)
  T.eq(p.exitcode, 7)
end)

T.test("join with a timeout returns false in time, and is an argument error when negative", function()
  local p = process.Process{target = function() time.sleep(60) end}
  p:start()
  local t0 = time.monotonic()
  T.eq(p:join(0.2), false)
  local waited = time.monotonic() - t0
  T.ok(waited >= 0.19 and waited < 5, "waited " .. waited)
  T.raises(function() p:join(-1) end, "bad argument #1 to 'join'")
  T.raises(function() p:join("x") end, "bad argument #1 to 'join'")
  p:kill()
  p:join()
end)

T.test("misuse: start twice, join before start, close while running, use after close", function()
  local p = process.Process{target = function() time.sleep(60) end}
  T.raises(function() p:join() end, "can only join a started process")
  T.raises(function() p:terminate() end, "started process")
  T.eq(p:is_alive(), false)
  p:start()
  T.raises(function() p:start() end, "cannot start a process twice")
  local err = T.raises_kind(function() p:close() end, "ValueError")
  T.ok(err.message:find("still running", 1, true))
  p:kill()
  p:join()
  p:close()
  p:close()
  T.raises_kind(function() p:join() end, "ValueError")
  T.raises_kind(function() p:start() end, "ValueError")
  T.raises(function() process.Process{target = 3} end, "bad argument #1 to 'Process'")
  T.raises(function() process.Process{args = "x"} end, "bad argument #1 to 'Process'")
  T.raises(function() process.Process{name = 1} end, "bad argument #1 to 'Process'")
  T.raises(function() process.Process{daemon = 1} end, "bad argument #1 to 'Process'")
  T.raises(function() process.Process() end, "bad argument #1 to 'Process'")
  T.raises(function() process.Process{}.start(1) end, "bad argument #1 to 'start'")
end)

T.test("current_process, parent_process in the parent and in a child", function()
  local me = process.current_process()
  T.eq(me.name, "MainProcess")
  T.eq(me.pid, process.getpid())
  T.eq(me, process.current_process())
  T.eq(me:is_alive(), true)
  T.eq(process.parent_process(), nil)
  T.raises(function() me:join() end, "can only join a child process")
  local q = queue.Queue()
  local p = process.Process{name = "Kid", target = function(q)
    local cur, parent = process.current_process(), process.parent_process()
    q:put({cur.name, cur.pid, process.getpid(), parent.name, parent.pid, process.getppid(), parent:is_alive(),
           #process.active_children()})
  end, args = {q}}
  p:start()
  local r = q:get(true, 10)
  p:join()
  T.deep(r, {"Kid", p.pid, p.pid, "MainProcess", process.getpid(), process.getpid(), true, 0})
end)

T.test("active_children lists running children and forgets ended ones", function()
  local stop = queue.Queue()
  local p = process.Process{target = function(q) q:get() end, args = {stop}}
  p:start()
  local kids = process.active_children()
  local found = false
  for _, k in ipairs(kids) do if k == p then found = true end end
  T.ok(found, "the running child is listed (as the same object)")
  stop:put(1)
  p:join()
  for _, k in ipairs(process.active_children()) do T.ok(k ~= p, "an ended child is not listed") end
end)

T.test("cpu_count and start methods", function()
  local n = process.cpu_count()
  T.eq(math.type(n), "integer")
  T.ok(n >= 1)
  T.ok(process.get_start_method() == "fork" or process.get_start_method() == "spawn")
  T.raises(function() process.set_start_method("forkserver") end, "bad argument #1 to 'set_start_method'")
  process.set_start_method("fork", true)
  T.raises_kind(function() process.set_start_method("spawn") end, "RuntimeError")
  process.set_start_method("spawn", true)
  T.eq(process.get_start_method(), "spawn")
  process.set_start_method("fork", true)
  T.eq(process.get_start_method(), "fork")
end)

T.test("fork: 0 in the child, the child's pid in the parent", function()
  local q = queue.Queue()
  local pid = process.fork()
  if pid == 0 then
    q:put({process.getpid(), process.getppid()})
    os.exit(0)
  end
  local r = q:get(true, 10)
  T.eq(r[1], pid)
  T.eq(r[2], process.getpid())
end)

-- Every kind of value that travels, for the start methods.
local function values_round_trip(method)
  with_method(method, function()
    local q = queue.Queue()
    local shared = {1, 2}
    local upvalue = 10
    G_SNAPSHOT = "global seen"
    local function target(q, n, f, s, b, t, nothing, fn)
      q:put({math.type(n), n, math.type(f), f, s, b, t[1] == t[2], t[3].x, nothing, fn(5), G_SNAPSHOT,
             process.current_process().name})
    end
    local p = process.Process{target = target, name = "V-" .. method,
      args = {q, 42, 1.5, "bin\0ary", true, {shared, shared, {x = "deep"}}, nil, function(x) return x + upvalue end}}
    p:start()
    local r = q:get(true, 10)
    p:join(10)
    T.eq(p.exitcode, 0)
    T.deep(r, {"integer", 42, "float", 1.5, "bin\0ary", true, true, "deep", nil, 15, "global seen", "V-" .. method})
    G_SNAPSHOT = nil
  end)
end

T.test("values of every type reach a fork child", function() values_round_trip("fork") end)
T.test("values of every type reach a spawn child", function() values_round_trip("spawn") end)

T.test("spawn: errors, exit codes, kill, pipes and queues passed at start", function()
  with_method("spawn", function()
    local bad = process.Process{target = function() error("spawned failure") end}
    bad:start()
    bad:join(20)
    T.eq(bad.exitcode, 1)
    local q = queue.Queue()
    local a, b = queue.Pipe()
    local p = process.Process{target = function(q, conn)
      q:put(conn:recv() .. "!")
      conn:send(process.parent_process().pid)
      conn:recv()  -- blocks until killed (a q:get() here would race the parent for "hello!")
    end, args = {q, b}}
    p:start()
    a:send("hello")
    T.eq(q:get(true, 20), "hello!")
    T.eq(a:recv(), process.getpid())
    p:kill()
    p:join(20)
    T.eq(p.exitcode, -9)
  end)
end)

T.test("join is interrupted by Ctrl-C (SIGINT) with KeyboardInterrupt", function()
  local p = process.Process{target = function(ppid)
    time.sleep(0.2)
    os.execute("kill -INT " .. ppid)
    time.sleep(60)
  end, args = {process.getpid()}}
  p:start()
  local err = T.raises_kind(function() p:join() end, "KeyboardInterrupt")
  T.ok(err)
  p:kill()
  p:join()
end)

T.test("daemon children are terminated at exit; others are joined", function()
  local marker = os.tmpname()
  os.remove(marker)
  local out, status = run_plua(([[
    local process = require "process"
    local time = require "time"
    local d = process.Process{target = function() time.sleep(60) end, daemon = true}
    d:start()
    local n = process.Process{target = function()
      time.sleep(0.3)
      local f = io.open(%q, "w") f:write("done") f:close()
    end}
    n:start()
    print("daemon", d.pid)
  ]]):format(marker))
  T.eq(status, 0, out)
  local pid = out:match("daemon\t(%d+)")
  T.ok(pid, out)
  local f = io.open("/proc/" .. pid .. "/stat")
  if f then
    local state = f:read("a"):match("^%d+ %b() (%a)")
    f:close()
    T.ok(state == nil, "the daemon child still exists after the parent ended")
  end
  local m = io.open(marker)
  T.ok(m, "the non-daemon child was joined before exit")
  if m then m:close() os.remove(marker) end
end)

T.test("no zombies and no leaked descriptors after many starts (fork and spawn)", function()
  local arena_made = queue.Queue()  -- the arena's one descriptor lives as long as the process
  collectgarbage()
  local before, before_list = open_fds()
  for _, method in ipairs{"fork", "spawn"} do
    with_method(method, function()
      for _ = 1, (method == "fork" and 40 or 10) do
        local p = process.Process{target = function() end}
        p:start()
        p:join(20)
        T.eq(p.exitcode, 0)
      end
      -- Children whose handles are dropped without join are reaped too.
      local q = queue.Queue()
      for _ = 1, 10 do
        process.Process{target = function(q) q:put(1) end, args = {q}}:start()
      end
      for _ = 1, 10 do q:get(true, 20) end
      collectgarbage()
      local deadline = time.monotonic() + 20
      while #process.active_children() > 0 and time.monotonic() < deadline do time.sleep(0.01) end
      T.eq(#process.active_children(), 0)
    end)
  end
  -- raw fork children are reaped by active_children() as well
  local pid = process.fork()
  if pid == 0 then os.exit(0) end
  local function exists(p)
    local f = io.open("/proc/" .. p .. "/stat")
    if f then f:close() end
    return f ~= nil
  end
  local deadline = time.monotonic() + 20
  while exists(pid) and time.monotonic() < deadline do
    process.active_children()
    time.sleep(0.01)
  end
  T.eq(exists(pid), false, "the raw fork child was reaped")
  T.eq((children_states()), 0, "zombie children")
  collectgarbage()
  local after, after_list = open_fds()
  T.eq(after, before, "descriptors open before:\n" .. before_list .. "\nand after:\n" .. after_list .. "\n")
end)

T.test("a spawn child gets only the descriptors it needs", function()
  with_method("spawn", function()
    local unrelated = {}
    for i = 1, 4 do unrelated[i] = {queue.Pipe()} end
    local q = queue.Queue()
    local p = process.Process{target = function(q)
      local pipe = io.popen("ls -l /proc/" .. process.getpid() .. "/fd")
      q:put(pipe:read("a"))
      pipe:close()
    end, args = {q}}
    p:start()
    local listing = q:get(true, 20)
    p:join()
    local fds = {}
    for fd in listing:gmatch(" (%d+) %-> ") do fds[#fds + 1] = fd end
    -- stdin, stdout, stderr, the shared arena, and io.popen's pipe (both ends
    -- for a moment): no socket of the parent's pipes, nothing else.
    T.ok(#fds <= 6, "child has " .. #fds .. " descriptors:\n" .. listing)
    T.ok(not listing:find("socket:", 1, true), "a socket was inherited:\n" .. listing)
    for _, pair in ipairs(unrelated) do pair[1]:close() pair[2]:close() end
  end)
end)

T.test("starting a process while the handle is shared by reference", function()
  local p = process.Process{target = function() end}
  local q = queue.Queue()
  q:put(p)
  local same = q:get()
  T.eq(same, p)
  same:start()
  T.eq(p:join(10), true)
  T.eq(p.exitcode, 0)
end)

T.test("a spawn child keeps spawn as its start method, for its own children too", function()
  with_method("spawn", function()
    local q = queue.Queue()
    local p = process.Process{target = function(q)
      local pr = require "process"
      -- spawn refuses a coroutine argument where fork would carry the copy.
      local c = pr.Process{target = function() end, args = {coroutine.create(print)}}
      local ok = pcall(c.start, c)
      if ok then c:join() end
      local set_ok, set_err = pcall(pr.set_start_method, "fork")
      q:put({pr.get_start_method(), ok, set_ok, type(set_err) == "table" and set_err.kind or tostring(set_err)})
    end, args = {q}}
    p:start()
    local r = q:get(true, 20)
    T.eq(p:join(20), true)
    T.eq(r[1], "spawn")
    T.eq(r[2], false)
    -- As Python: the context is already set in a spawned child.
    T.eq(r[3], false)
    T.eq(r[4], "RuntimeError")
  end)
end)

T.run()
