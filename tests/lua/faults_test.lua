-- Fault injection: processes SIGKILLed in the middle of queue and manager
-- calls, threads that fail holding a lock, children that stop reading or
-- write to a full disk. After each fault: no hang, nothing lost that was
-- completely put, the survivors go on, and the error says what happened.
-- (Faults covered by a module's own tests are listed in README.md,
-- "Fault injection".)
local T = require "testing"
local queue = require "queue"
local process = require "process"
local thread = require "thread"
local lock = require "lock"
local manager = require "manager"
local sp = require "subprocess"
local time = require "time"

-- Polls cond() until it holds or `seconds` pass; returns whether it held.
local function eventually(cond, seconds)
  local deadline = time.monotonic() + (seconds or 20)
  while time.monotonic() < deadline do
    if cond() then return true end
    time.sleep(0.005)
  end
  return cond()
end

-- The scheduler state of a process ("R", "S", ...), nil once it is gone.
local function proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local line = f:read("l") or ""
  f:close()
  return line:match("%) (%a) ")
end

-- Kills p with SIGKILL and checks that it died of it.
local function kill_and_reap(p)
  p:kill()
  T.eq(p:join(10), true, "the killed process is reaped")
  T.eq(p.exitcode, -9, "exit code says SIGKILL")
end

-- Queue: a putter killed while its big message is on the way ------------------

T.test("a putter SIGKILLed while blocked putting a >64 KiB message: nothing lost, the queue goes on", function()
  local q = queue.Queue(2)
  local ready = queue.Queue()
  local big = string.rep("B", 300 * 1024)
  q:put("one")
  q:put("two")  -- full: the child's put copies its message, then waits for room
  for round = 1, 3 do
    local p = process.Process{target = function(q, ready, big)
      ready:put(process.getpid())
      q:put({round = round, data = big})
      q:put("never: the first put is killed before it returns")
    end, args = {q, ready, big}}
    p:start()
    local pid = ready:get(true, 20)
    -- The child blocks in put (sleeping with the queue full); kill it there.
    T.ok(eventually(function() return proc_state(pid) == "S" end), "the putter is blocked")
    kill_and_reap(p)
    T.eq(q:qsize(), 2, "the killed put added nothing")
  end
  T.eq(q:get(true, 5), "one")
  T.eq(q:get(true, 5), "two")
  T.raises_kind(function() q:get(false) end, queue.Empty)
  -- The survivors use the queue as before, big messages included.
  q:put(big)
  q:put("small")
  T.ok(q:get(true, 5) == big, "a big message after the kills arrives intact")
  T.eq(q:get(true, 5), "small")
end)

T.test("a putter SIGKILLed while copying a large message: it is either entirely there or not at all", function()
  -- 8 MiB messages take milliseconds to copy, so kills land inside puts.
  local q = queue.Queue()
  local size = 8 * 1024 * 1024
  for round = 1, 4 do
    local ready = queue.Queue()
    local p = process.Process{target = function(q, ready)
      local i = 0
      ready:put(true)
      while true do
        i = i + 1
        q:put(string.rep(string.char(64 + i % 26), size))
      end
    end, args = {q, ready}}
    p:start()
    ready:get(true, 20)
    time.sleep(0.002 * round)  -- varies where the kill lands; any moment is valid
    kill_and_reap(p)
    local k = 0
    while true do
      local ok, v = pcall(q.get, q, false)
      if not ok then T.eq(v.kind, queue.Empty) break end
      k = k + 1
      T.ok(#v == size and v == string.rep(string.char(64 + k % 26), size), "message " .. k .. " intact, in order")
    end
    q:put("after round " .. round)
    T.eq(q:get(true, 5), "after round " .. round)
  end
end)

-- Lock: a thread that fails holding a guard ---------------------------------

T.test("a thread that raises while holding a lock through guard releases it; another thread takes it", function()
  local l = lock.Lock()
  local t = thread.Thread{target = function(l)
    local _ <close> = l:guard()
    error("failed while holding the lock")
  end, args = {l}}
  t:start()
  T.eq(t:join(20), true)
  local err = T.raises(function() t:result() end, "failed while holding the lock")
  T.ok(tostring(err):find("stack traceback", 1, true), "the thread's traceback comes with it")
  T.eq(l:locked(), false, "guard released it")
  local other = thread.Thread{target = function(l)
    local ok = l:acquire(true, 10)
    if ok then l:release() end
    return ok
  end, args = {l}}
  other:start()
  T.eq(other:join(20), true)
  T.eq(other:result(), true, "another thread acquired it")
  -- An RLock taken twice through guards is released both times.
  local r = lock.RLock()
  local t2 = thread.Thread{target = function(r)
    local _ <close> = r:guard()
    local _ <close> = r:guard()
    error({kind = "ValueError", message = "nested"})
  end, args = {r}}
  t2:start()
  T.eq(t2:join(20), true)
  T.raises_kind(function() t2:result() end, "ValueError")
  T.eq(r:locked(), false)
  T.eq(r:acquire(false), true)
  r:release()
end)

T.test("a process SIGKILLed holding a Lock: the next acquirer is told, on stderr too", function()
  -- Run in a fresh plua so its stderr can be read.
  local plua = arg[-1]
  local script = [[
    local lock, process, time = require "lock", require "process", require "time"
    local l, held = lock.Lock(), lock.Event()
    local p = process.Process{target = function() l:acquire() held:set() time.sleep(60) end}
    p:start()
    assert(held:wait(20))
    p:kill()
    local ok, how = l:acquire(true, 20)
    p:join(20)
    print(ok, how, p.exitcode)
    l:release()
    print(l:acquire(false))
  ]]
  local r = sp.run{plua, "-e", script, capture_output = true, timeout = 60}
  T.eq(r.returncode, 0, r.stderr)
  T.eq(r.stdout, "true\tabandoned\t-9\ntrue\n")
  T.ok(r.stderr:find("plua: warning: Lock: a process holding it died; the data it protects may be half-written",
                     1, true), r.stderr)
end)

-- Manager: a client that vanishes while its get blocks ------------------------

T.test("a manager client SIGKILLed in the middle of a remote get: the server goes on, no message is lost", function()
  local q = queue.Queue()
  local m <close> = manager.BaseManager{address = {"127.0.0.1", 0}, authkey = "k"}
  m:register("get_q", function() return q end)
  m:start()
  local port = m.address[2]
  local function client()
    local c = manager.BaseManager{address = {"127.0.0.1", port}, authkey = "k"}
    c:register("get_q")
    return c:get_q()
  end
  -- The clients are spawned: a fresh plua, as a client on another machine.
  local old_method = process.get_start_method()
  process.set_start_method("spawn", true)
  for round = 1, 3 do
    local ready = queue.Queue()
    local p = process.Process{target = function(ready)
      local proxy = client()
      proxy:qsize()                    -- connected and served once
      ready:put(process.getpid())
      proxy:get()                      -- blocks on the server: the queue is empty
    end, args = {ready}}
    p:start()
    local pid = ready:get(true, 20)
    -- Asleep after sending its request: waiting for the reply.
    T.ok(eventually(function() return proc_state(pid) == "S" end), "the client waits for its get")
    kill_and_reap(p)
    -- A message put now must not go to the dead client's get.
    q:put("for the next client " .. round)
    local other = client()
    T.eq(other:get(true, 20), "for the next client " .. round)
    T.eq(q:qsize(), 0)
  end
  process.set_start_method(old_method, true)
  -- Other clients are served as before.
  local a, b = client(), client()
  a:put("x")
  T.eq(b:get(true, 10), "x")
end)

-- Subprocess: full disk and closed pipes ---------------------------------------

T.test("a child whose stdout is /dev/full fails with ENOSPC; plua goes on", function()
  local full = assert(io.open("/dev/full", "w"))
  local r = sp.run{"cat", input = "data", stdout = full, stderr = sp.PIPE, timeout = 30}
  full:close()
  T.ok(r.returncode ~= 0, "the child saw the write fail")
  T.ok(r.stderr:find("No space left on device", 1, true), r.stderr)
  local err = T.raises_kind(function()
    sp.check_output{"sh", "-c", "cat /proc/self/stat > /dev/full", stderr = sp.PIPE, timeout = 30}
  end, sp.CalledProcessError)
  T.ok(err.stderr:find("No space left on device", 1, true))
  T.ok(tostring(err):find("returned non-zero exit status", 1, true))
  -- A plua child writing to /dev/full gets nil + the error from io.
  local plua = arg[-1]
  local full2 = assert(io.open("/dev/full", "w"))
  local r2 = sp.run{plua, "-e", [[
    io.stdout:setvbuf("no")
    local ok, msg, code = io.stdout:write("x")
    io.stderr:write(tostring(ok), " ", tostring(msg), " ", tostring(code), "\n")
  ]], stdout = full2, stderr = sp.PIPE, timeout = 30}
  full2:close()
  T.eq(r2.returncode, 0)
  T.eq(r2.stderr, "nil No space left on device 28\n")
end)

T.test("communicate's input to a child that exits without reading: no SIGPIPE, the exit status comes back", function()
  local input = string.rep("i", 4 * 1024 * 1024)
  local p = sp.Popen{"sh", "-c", "exit 3", stdin = sp.PIPE, stdout = sp.PIPE}
  local out, err = p:communicate(input, 30)
  T.eq(out, "")
  T.eq(err, nil)
  T.eq(p.returncode, 3)
  local r = sp.run{"true", input = input, timeout = 30}
  T.eq(r.returncode, 0)
end)

T.test("writing to p.stdin after the child exited returns nil, \"Broken pipe\"", function()
  local p = sp.Popen{"true", stdin = sp.PIPE}
  T.eq(p:wait(30), 0)
  -- A write larger than the buffer reaches the pipe at once.
  local ok, msg, code = p.stdin:write(string.rep("w", 1024 * 1024))
  T.eq(ok, nil)
  T.eq(msg, "Broken pipe")
  T.eq(code, 32)
  -- A small write is buffered; the flush reports it.
  local p2 = sp.Popen{"true", stdin = sp.PIPE}
  T.eq(p2:wait(30), 0)
  T.eq(p2.stdin:write("x"), p2.stdin)
  local ok2, msg2, code2 = p2.stdin:flush()
  T.eq(ok2, nil)
  T.eq(msg2, "Broken pipe")
  T.eq(code2, 32)
  p2.stdin:close()
  -- The same through a to-be-closed Popen that wrote before the child ended.
  do
    local p3 <close> = sp.Popen{"head", "-c", "1", stdin = sp.PIPE, stdout = sp.DEVNULL}
    p3.stdin:setvbuf("no")
    T.eq(p3.stdin:write("y"), p3.stdin)
    T.eq(p3:wait(30), 0)
    local ok3, msg3 = p3.stdin:write("after the end")
    T.eq(ok3, nil)
    T.eq(msg3, "Broken pipe")
  end
  -- plua survived all of it and subprocess still works.
  T.eq(sp.check_output{"echo", "alive"}, "alive\n")
end)

T.test("p.stdin stays a genuine Lua file over its pipe", function()
  local p = sp.Popen{"cat", stdin = sp.PIPE, stdout = sp.PIPE}
  T.eq(io.type(p.stdin), "file")
  T.eq(select(2, p.stdin:seek("cur")), "Illegal seek")
  T.eq(p.stdin:write("line one\n", 2, "\n"), p.stdin)
  p.stdin:flush()
  T.eq(p.stdout:read("l"), "line one")
  -- Given as another child's stdin, it is the same pipe.
  local p2 = sp.Popen{"sh", "-c", "echo from the second child", stdout = p.stdin}
  T.eq(p2:wait(30), 0)
  local out = p:communicate(nil, 30)
  T.eq(out, "2\nfrom the second child\n")
  T.eq(p.returncode, 0)
end)

T.run()
