local T = require "testing"
local queue = require "queue"
local process = require "process"
local time = require "time"

local has_thread = package.preload.thread ~= nil

local function with_method(method, fn)
  local old = process.get_start_method()
  process.set_start_method(method, true)
  local ok, err = pcall(fn)
  process.set_start_method(old, true)
  if not ok then error(err, 0) end
end

-- Polls cond() until it holds or `seconds` pass; returns whether it held.
local function eventually(cond, seconds)
  local deadline = time.monotonic() + (seconds or 10)
  while time.monotonic() < deadline do
    if cond() then return true end
    time.sleep(0.002)
  end
  return cond()
end

T.test("kinds are exported as string constants", function()
  T.eq(queue.Empty, "Empty")
  T.eq(queue.Full, "Full")
  T.eq(queue.EOFError, "EOFError")
  T.eq(queue.ValueError, "ValueError")
  T.eq(queue.BrokenPipeError, "BrokenPipeError")
  T.eq(queue.OSError, "OSError")
end)

T.test("Queue is FIFO and carries every value type", function()
  local q = queue.Queue()
  local cyc = {name = "c"}
  cyc.self = cyc
  local values = {nil, true, false, 0, -7, math.maxinteger, 1.5, -0.0, 1e300, "", "bin\0ary\255",
                  {1, 2, {3}}, {a = {b = {c = "deep"}}}, cyc}
  local n = 14
  for i = 1, n do q:put(values[i]) end
  T.eq(q:qsize(), n)
  for i = 1, n do
    local v = q:get()
    if type(values[i]) == "table" then
      if values[i] == cyc then
        T.eq(v.self, v, "cycle kept")
        T.eq(v.name, "c")
      else
        T.deep(v, values[i])
      end
    else
      T.eq(v, values[i], "value " .. i)
    end
  end
  T.eq(q:empty(), true)
  -- functions travel with their upvalues
  local k = 3
  q:put(function(x) return x * k end)
  T.eq(q:get()(5), 15)
end)

T.test("get on an empty queue: Empty now, or after the timeout", function()
  local q = queue.Queue()
  local err = T.raises_kind(function() q:get(false) end, queue.Empty)
  T.ok(tostring(err):find("Empty", 1, true))
  T.raises_kind(function() q:get_nowait() end, queue.Empty)
  local t0 = time.monotonic()
  T.raises_kind(function() q:get(true, 0.2) end, queue.Empty)
  local waited = time.monotonic() - t0
  T.ok(waited >= 0.19 and waited < 5, "waited " .. waited)
  -- block=false ignores the timeout
  t0 = time.monotonic()
  T.raises_kind(function() q:get(false, 10) end, queue.Empty)
  T.ok(time.monotonic() - t0 < 1)
end)

T.test("a bounded queue is full at maxsize: Full now, or after the timeout", function()
  local q = queue.Queue(2)
  T.eq(q:full(), false)
  q:put(1)
  q:put_nowait(2)
  T.eq(q:full(), true)
  T.eq(q:qsize(), 2)
  T.raises_kind(function() q:put(3, false) end, queue.Full)
  T.raises_kind(function() q:put_nowait(3) end, queue.Full)
  local t0 = time.monotonic()
  T.raises_kind(function() q:put(3, true, 0.2) end, queue.Full)
  T.ok(time.monotonic() - t0 >= 0.19)
  T.eq(q:get(), 1)
  q:put(3)
  T.eq(q:get(), 2)
  T.eq(q:get(), 3)
  -- maxsize <= 0 is unbounded, as in Python
  local u = queue.Queue(0)
  for i = 1, 1000 do u:put(i) end
  T.eq(u:full(), false)
end)

T.test("misuse is an argument error", function()
  local q = queue.Queue()
  -- (method calls do not count self, as Lua reports them)
  T.raises(function() q:get(true, -1) end, "bad argument #2 to 'get'")
  T.raises(function() q:get("yes") end, "bad argument #1 to 'get'")
  T.raises(function() q:put(1, true, -1) end, "bad argument #3 to 'put'")
  T.raises(function() q:put() end, "bad argument #1 to 'put'")
  T.raises(function() q.get(42) end, "bad argument #1 to 'get'")
  T.raises(function() queue.Queue("big") end, "bad argument #1 to 'Queue'")
  T.raises(function() q:put(coroutine.create(function() end)) end, "cannot send a thread")
  T.raises(function() queue.wait({1}) end, "bad argument #1 to 'wait'")
  T.raises(function() queue.wait({q}, -1) end, "bad argument #2 to 'wait'")
  T.raises(function() q:task_done() end, "not a JoinableQueue")
  T.raises(function() queue.Pipe(1) end, "bad argument #1 to 'Pipe'")
end)

T.test("a closed queue raises on put and drains on get", function()
  local q = queue.Queue()
  q:put("a")
  q:put("b")
  q:close()
  local err = T.raises_kind(function() q:put("c") end, queue.ValueError)
  T.ok(err.message:find("closed", 1, true))
  T.eq(q:get(), "a")
  T.eq(q:get(), "b")
  local t0 = time.monotonic()
  T.raises_kind(function() q:get() end, queue.Empty)
  T.ok(time.monotonic() - t0 < 1, "a closed empty queue does not block")
  q:close()
end)

T.test("a blocked get is woken by a put from another process, and by close", function()
  local q = queue.Queue()
  local p = process.Process{target = function(q) time.sleep(0.1) q:put("late") end, args = {q}}
  p:start()
  T.eq(q:get(true, 10), "late")
  p:join()
  local c = process.Process{target = function(q) time.sleep(0.1) q:close() end, args = {q}}
  c:start()
  local t0 = time.monotonic()
  T.raises_kind(function() q:get(true, 10) end, queue.Empty)
  T.ok(time.monotonic() - t0 < 5)
  c:join()
end)

T.test("a blocked put waits for room made by another process", function()
  local q = queue.Queue(1)
  q:put(1)
  local p = process.Process{target = function(q) time.sleep(0.1) q:get() end, args = {q}}
  p:start()
  q:put(2, true, 10)
  T.eq(q:get(), 2)
  p:join()
end)

T.test("big messages and many messages (unbounded queue grows)", function()
  local q = queue.Queue()
  local big = string.rep("0123456789", 1000000)  -- 10 MB
  q:put(big)
  q:put("small")
  q:put(big .. "!")
  T.eq(q:get(), big)
  T.eq(q:get(), "small")
  T.eq(q:get(), big .. "!")
  local n = 50000
  for i = 1, n do q:put({i, tostring(i)}) end
  T.eq(q:qsize(), n)
  for i = 1, n do
    local v = q:get()
    if v[1] ~= i or v[2] ~= tostring(i) then T.eq(v[1], i) end
  end
  -- sizes around the spill threshold, interleaved
  for _, size in ipairs{65535, 65536, 65537, 1, 200000, 0} do q:put(string.rep("x", size)) end
  for _, size in ipairs{65535, 65536, 65537, 1, 200000, 0} do T.eq(#q:get(), size) end
end)

T.test("SimpleQueue", function()
  local q = queue.SimpleQueue()
  T.eq(q:empty(), true)
  q:put(1)
  q:put("x")
  T.eq(q:qsize(), 2)
  T.eq(q:get(), 1)
  T.eq(q:get(), "x")
  T.raises_kind(function() q:get(false) end, queue.Empty)
  T.ok(tostring(q):find("SimpleQueue", 1, true))
end)

T.test("JoinableQueue: task_done and join", function()
  local q = queue.JoinableQueue()
  T.eq(q:join(0), true, "nothing put: joined at once")
  q:put("job1")
  q:put("job2")
  T.eq(q:join(0.05), false)
  local p = process.Process{target = function(q)
    for _ = 1, 2 do q:get() time.sleep(0.05) q:task_done() end
  end, args = {q}}
  p:start()
  T.eq(q:join(10), true)
  p:join()
  local err = T.raises_kind(function() q:task_done() end, queue.ValueError)
  T.ok(err.message:find("too many times", 1, true))
  local b = queue.JoinableQueue(1)
  b:put(1)
  T.raises_kind(function() b:put_nowait(2) end, queue.Full)
end)

T.test("a queue travels through a queue, to fork and spawn children", function()
  for _, method in ipairs{"fork", "spawn"} do
    with_method(method, function()
      local outer, inner = queue.Queue(), queue.Queue()
      outer:put(inner)
      local p = process.Process{target = function(outer)
        local queue, process = require "queue", require "process"
        local q = outer:get()
        q:put({"via inner", process.getpid()})
        local reply = queue.Queue()
        q:put(reply)
        assert(reply:get(true, 10) == "ack")
      end, args = {outer}}
      p:start()
      local r = inner:get(true, 20)
      T.eq(r[1], "via inner")
      T.eq(r[2], p.pid)
      inner:get(true, 20):put("ack")
      p:join(20)
      T.eq(p.exitcode, 0, method)
    end)
  end
end)

T.test("many processes put and get on one queue: nothing lost, nothing doubled", function()
  local q, out = queue.Queue(100), queue.Queue()
  local producers, consumers = {}, {}
  for w = 1, 3 do
    producers[w] = process.Process{target = function(q, w) for i = 1, 2000 do q:put(w * 100000 + i) end end, args = {q, w}}
    producers[w]:start()
  end
  for c = 1, 2 do
    consumers[c] = process.Process{target = function(q, out)
      local sum, n = 0, 0
      while true do
        local v = q:get()
        if v == "stop" then break end
        sum, n = sum + v, n + 1
      end
      out:put({sum, n})
    end, args = {q, out}}
    consumers[c]:start()
  end
  for w = 1, 3 do producers[w]:join(30) end
  q:put("stop")
  q:put("stop")
  local sum, n = 0, 0
  for _ = 1, 2 do
    local r = out:get(true, 30)
    sum, n = sum + r[1], n + r[2]
  end
  for c = 1, 2 do consumers[c]:join(30) end
  local expected = 0
  for w = 1, 3 do for i = 1, 2000 do expected = expected + w * 100000 + i end end
  T.eq(n, 6000)
  T.eq(sum, expected)
end)

if has_thread then
  T.test("between threads", function()
    local thread = require "thread"
    local q = queue.Queue(10)
    local t = thread.Thread{target = function(q) for i = 1, 1000 do q:put(i) end q:put("end") end, args = {q}}
    t:start()
    local sum = 0
    while true do
      local v = q:get(true, 10)
      if v == "end" then break end
      sum = sum + v
    end
    t:join()
    T.eq(sum, 500500)
  end)
end

-- Robustness: processes SIGKILLed while they use the queue.

T.test("a reader SIGKILLed while blocked in get does not wedge the queue", function()
  local q = queue.Queue()
  local started = queue.Queue()
  local readers = {}
  for i = 1, 3 do
    readers[i] = process.Process{target = function(q, started) started:put(true) q:get() end, args = {q, started}}
    readers[i]:start()
  end
  for _ = 1, 3 do started:get(true, 10) end
  time.sleep(0.05)  -- let them reach the wait (not needed for correctness)
  for i = 1, 3 do readers[i]:kill() readers[i]:join(10) T.eq(readers[i].exitcode, -9) end
  q:put("after")
  T.eq(q:get(true, 5), "after")
  local p = process.Process{target = function(q) q:put(q:get(true, 5) .. " and back") end, args = {q}}
  p:start()
  q:put("there")
  T.eq(p:join(10), true)
  T.eq(q:get(true, 5), "there and back")
end)

-- A writer streams numbered messages of mixed sizes and is killed mid-stream:
-- what the survivor reads is 1..k in order, each intact, then Empty.
local function killed_writer(method)
  with_method(method, function()
    local q = queue.Queue()
    local p = process.Process{target = function(q)
      local i = 0
      while true do
        i = i + 1
        local size = (i % 7 == 0) and 70000 + i % 1000 or i % 300
        q:put({i, string.rep(string.char(65 + i % 26), size)})
      end
    end, args = {q}}
    p:start()
    T.ok(eventually(function() return q:qsize() >= 300 end, 20), "the writer got going")
    p:kill()
    p:join(10)
    T.eq(p.exitcode, -9)
    local k = 0
    while true do
      local ok, v = pcall(q.get, q, false)
      if not ok then
        T.eq(v.kind, queue.Empty)
        break
      end
      k = k + 1
      T.eq(v[1], k, "message order")
      local size = (k % 7 == 0) and 70000 + k % 1000 or k % 300
      if #v[2] ~= size or v[2] ~= string.rep(string.char(65 + k % 26), size) then
        T.ok(false, "message " .. k .. " is corrupt")
      end
    end
    T.ok(k >= 300, "messages completely put are delivered: " .. k)
    T.eq(q:qsize(), 0)
    q:put("survivor")
    T.eq(q:get(), "survivor")
  end)
end

T.test("a writer SIGKILLed in the middle of a stream of puts (fork)", function() killed_writer("fork") end)
T.test("a writer SIGKILLed in the middle of a stream of puts (spawn)", function() killed_writer("spawn") end)

T.test("processes SIGKILLed at random moments while putting and getting", function()
  local q = queue.Queue(50)
  for round = 1, 10 do
    local workers = {}
    for w = 1, 2 do
      workers[w] = process.Process{target = function(q, w)
        for i = 1, math.huge do
          q:put({w, i, string.rep("z", i % 500)})
          local v = q:get()
          assert(#v[3] == v[2] % 500, "corrupt")
        end
      end, args = {q, w}}
      workers[w]:start()
    end
    time.sleep(0.01 + (round % 5) * 0.01)
    for w = 1, 2 do workers[w]:kill() end
    for w = 1, 2 do workers[w]:join(10) T.eq(workers[w].exitcode, -9, "round " .. round) end
    -- whatever is left is intact, and the queue works
    while true do
      local ok, v = pcall(q.get, q, false)
      if not ok then T.eq(v.kind, queue.Empty) break end
      T.eq(#v[3], v[2] % 500)
    end
    q:put(round)
    T.eq(q:get(true, 5), round)
  end
end)

-- Pipes

T.test("Pipe: duplex send/recv both ways, bytes, poll", function()
  local a, b = queue.Pipe()
  T.eq(a.closed, false)
  T.eq(a:poll(), false)
  a:send({x = 1, y = {"two"}})
  T.eq(b:poll(), true)
  T.deep(b:recv(), {x = 1, y = {"two"}})
  b:send(nil)
  T.eq(a:recv(), nil)
  b:send_bytes("raw\0bytes")
  T.eq(a:recv_bytes(), "raw\0bytes")
  local t0 = time.monotonic()
  T.eq(a:poll(0.2), false)
  T.ok(time.monotonic() - t0 >= 0.19)
  local big = string.rep("p", 5000000)
  local p = process.Process{target = function(conn, s) conn:send(s) conn:send(#s) end, args = {b, big}}
  p:start()
  T.eq(a:recv(), big)
  T.eq(a:recv(), #big)
  p:join()
  T.ok(tostring(a):find("Connection", 1, true))
  T.eq(math.type(a:fileno()), "integer")
end)

T.test("Pipe(false): the first end receives, the second sends", function()
  local r, w = queue.Pipe(false)
  w:send("one way")
  T.eq(r:recv(), "one way")
  T.raises_kind(function() r:send(1) end, queue.OSError)
  T.raises_kind(function() w:recv() end, queue.OSError)
end)

T.test("EOFError when the other end is closed; OSError on a closed end", function()
  local a, b = queue.Pipe()
  a:send("last")
  a:close()
  T.eq(a.closed, true)
  a:close()
  T.eq(b:recv(), "last")
  T.eq(b:poll(), true, "EOF is readable")
  local err = T.raises_kind(function() b:recv() end, queue.EOFError)
  T.ok(tostring(err):find("EOFError", 1, true))
  T.raises_kind(function() a:recv() end, queue.OSError)
  T.raises_kind(function() a:send(1) end, queue.OSError)
  T.raises_kind(function() b:send(1) end, queue.BrokenPipeError)
  -- a child that exits closes its copy: the parent sees EOF once it closed its own
  local c, d = queue.Pipe()
  local p = process.Process{target = function(conn) conn:send("bye") end, args = {d}}
  p:start()
  d:close()
  T.eq(c:recv(), "bye")
  p:join()
  T.raises_kind(function() c:recv() end, queue.EOFError)
end)

T.test("Pipe to a spawn child, both ways", function()
  with_method("spawn", function()
    local a, b = queue.Pipe()
    local p = process.Process{target = function(conn)
      local v = conn:recv()
      conn:send({v[1] * 2, v[2] .. "!"})
      conn:send_bytes("bytes")
    end, args = {b}}
    p:start()
    a:send({21, "hi"})
    T.deep(a:recv(), {42, "hi!"})
    T.eq(a:recv_bytes(), "bytes")
    p:join(20)
    T.eq(p.exitcode, 0)
  end)
end)

T.test("wait over Connections, Queues and Processes", function()
  local a, b = queue.Pipe()
  local q = queue.Queue()
  local t0 = time.monotonic()
  T.deep(queue.wait({a, q}, 0.1), {})
  T.ok(time.monotonic() - t0 >= 0.09)
  b:send(1)
  local ready = queue.wait({q, a})
  T.eq(#ready, 1)
  T.eq(ready[1], a)
  a:recv()
  q:put("x")
  ready = queue.wait({a, q}, 5)
  T.eq(#ready, 1)
  T.eq(ready[1], q)
  q:get()
  local p = process.Process{target = function(q) time.sleep(0.1) end, args = {q}}
  p:start()
  ready = queue.wait({a, q, p}, 10)
  T.eq(#ready, 1)
  T.eq(ready[1], p)
  p:join()
  -- the other end closed: EOF counts as ready
  b:close()
  ready = queue.wait({a}, 5)
  T.eq(ready[1], a)
  -- a queue filled by another process wakes the wait
  local w = process.Process{target = function(q) time.sleep(0.1) q:put(1) end, args = {q}}
  w:start()
  ready = queue.wait({q}, 10)
  T.eq(ready[1], q)
  w:join()
end)

T.test("handles release on __close and __gc", function()
  do
    local q <close> = queue.Queue()
    q:put(1)
  end
  local c
  do
    local a, b = queue.Pipe()
    local _ <close> = a
    local _ <close> = b
    c = a
  end
  T.eq(c.closed, true)
  for _ = 1, 200 do queue.Pipe() queue.Queue() end
  collectgarbage()
  collectgarbage()
end)

T.test("fork children that drop inherited queues, or leave holding them, keep the parent's alive", function()
  -- Only the objects under test are inherited: earlier tests' garbage goes first
  -- (two cycles: what a finalized object held goes in the second).
  collectgarbage()
  collectgarbage()
  local qs = {queue.Queue(), queue.SimpleQueue(), queue.JoinableQueue()}
  local done = queue.SimpleQueue()
  for i = 1, 6 do
    if i <= 4 then
      local p = process.Process{target = function()
        if i % 2 == 0 then return end  -- leaves holding them: given back at its exit
        qs = nil
        collectgarbage()
        collectgarbage()
      end}
      p:start()
      p:join(20)
      T.eq(p.exitcode, 0, "child " .. i)
    else
      local pid = process.fork()
      if pid == 0 then
        local d = done
        qs, done = nil, nil
        collectgarbage()
        collectgarbage()
        d:put(i)
        os.exit(0)
      end
      T.eq(done:get(true, 20), i)
    end
  end
  for k, q in ipairs(qs) do
    q:put(k)
    T.eq(q:get(true, 5), k)
  end
  qs[3]:task_done()
  T.eq(qs[3]:join(5), true)
end)

T.test("wait: a closed Connection is an OSError, not a ready object", function()
  local a, b = queue.Pipe()
  b:close()
  local err = T.raises_kind(function() queue.wait({b}, 0) end, "OSError")
  T.ok(err.message:find("queue.wait", 1, true), err.message)
  T.raises_kind(function() queue.wait({a, b}) end, "OSError")
  -- The open end is unaffected: it sees end of file as ready.
  T.eq(#queue.wait({a}, 5), 1)
  a:close()
end)

T.test("close after the handle was released is harmless", function()
  local q = queue.Queue()
  do local h <close> = q end
  q:close()
  q:close()
  T.raises(function() q:put(1) end, "released")
  local j = queue.JoinableQueue()
  do local h <close> = j end
  j:close()
end)

T.test("a Queue or Connection read back in this state is the same object", function()
  local q = queue.Queue()
  local a, b = queue.Pipe()
  local carrier = queue.Queue()
  carrier:put({q, a})
  local got = carrier:get()
  T.ok(got[1] == q and got[2] == a, "through a queue")
  local t = require("thread").Thread{target = function(x, y) return x, y end, args = {q, b}}
  t:start()
  t:join()
  local x, y = t:result()
  T.ok(x == q and y == b, "through a thread")
  local set = {[q] = true}
  T.ok(set[x], "usable as a table key")
  local released = queue.Queue()
  carrier:put(released)
  do local _ <close> = released end
  local fresh = carrier:get()
  T.ok(fresh ~= released, "a released handle is not handed out again")
  T.eq(fresh:qsize(), 0)
end)

T.run()
