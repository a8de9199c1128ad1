local T = require "testing"
local manager = require "manager"
local queue = require "queue"
local time = require "time"

-- A manager serving q (and a bounded queue) on a free loopback port.
local function serving(key)
  local q, small = queue.Queue(), queue.Queue(1)
  local m = manager.BaseManager{address = {"127.0.0.1", 0}, authkey = key or "abc"}
  m:register("get_q", function() return q end)
  m:register("get_small", function() return small end)
  m:start()
  return m, q, small
end

T.test("kinds are exported as strings equal to themselves", function()
  T.eq(manager.AuthenticationError, "AuthenticationError")
  T.eq(manager.RemoteError, "RemoteError")
  T.eq(manager.Empty, queue.Empty)
  T.eq(manager.Full, queue.Full)
end)

T.test("port 0 picks a free port, told by .address", function()
  local m <close> = serving()
  T.eq(m.address[1], "127.0.0.1")
  T.eq(math.type(m.address[2]), "integer")
  T.ok(m.address[2] > 0)
end)

T.test("proxies put and get on the script's own queue", function()
  local m <close>, q = serving()
  local p = m:get_q()
  T.ok(tostring(p):find("AutoProxy[get_q]", 1, true))
  p:put(42)
  p:put("h\xc3\xa9")
  p:put("\xff\xfe")
  p:put({1, 2.5, true, {x = "y"}})
  T.eq(p:qsize(), 4)
  T.eq(q:qsize(), 4, "the local queue holds what the proxy put")
  T.eq(q:get(), 42)
  T.eq(p:get(), "h\xc3\xa9")
  T.eq(p:get(), "\xff\xfe", "non-UTF-8 strings travel as bytes")
  T.deep(p:get(), {1, 2.5, true, {x = "y"}})
  q:put("from the local side")
  T.eq(p:get(true, 5), "from the local side")
  T.eq(p:empty(), true)
  T.eq(p:full(), false)
end)

T.test("scalars keep their Lua type through a proxy", function()
  local m <close>, q = serving()
  local p = m:get_q()
  for _, v in ipairs({0, -7, math.maxinteger, math.mininteger, 2.5, 3.0, -0.0, 1 / 0, true, false, "", "\0x"}) do
    p:put(v)
    local got = p:get()
    T.eq(got, v)
    T.eq(math.type(got), math.type(v), "integer and float subtypes survive")
  end
  p:put(nil)
  T.eq(p:qsize(), 1, "nil travels as None")
  T.eq(p:get(), nil)
  q:put({7.0})
  T.eq(math.type(p:get()[1]), "float", "what a local put is read back the same way")
end)

T.test("Empty and Full come back as the queue module's kinds", function()
  local m <close> = serving()
  local p, s = m:get_q(), m:get_small()
  local t0 = time.monotonic()
  local err = T.raises_kind(function() p:get(true, 0.1) end, queue.Empty)
  T.ok(time.monotonic() - t0 >= 0.09, "get waited for its timeout on the server")
  T.eq(tostring(err), "Empty: queue is empty")
  T.raises_kind(function() p:get(false) end, queue.Empty)
  T.raises_kind(function() p:get_nowait() end, queue.Empty)
  s:put(1)
  T.eq(s:full(), true)
  T.raises_kind(function() s:put(2, true, 0.05) end, queue.Full)
  T.raises_kind(function() s:put_nowait(2) end, queue.Full)
  T.eq(s:get(), 1)
end)

T.test("a wrong key raises AuthenticationError and the server goes on", function()
  local m <close> = serving("right")
  local port = m.address[2]
  local bad = manager.BaseManager{address = {"127.0.0.1", port}, authkey = "wrong"}
  bad:register("get_q")
  T.raises_kind(function() bad:connect() end, manager.AuthenticationError)
  T.raises_kind(function() bad:get_q() end, manager.AuthenticationError)
  local good = manager.BaseManager{address = {"127.0.0.1", port}, authkey = "right"}
  good:register("get_q")
  good:connect()
  local p = good:get_q()
  p:put("ok")
  T.eq(p:get(), "ok")
end)

T.test("server-side errors arrive as RemoteError with the server's traceback", function()
  local m <close> = serving()
  local c = manager.BaseManager{address = {"127.0.0.1", m.address[2]}, authkey = "abc"}
  c:register("no_such_typeid")
  local err = T.raises_kind(function() c:no_such_typeid() end, manager.RemoteError)
  T.ok(err.traceback:find("KeyError", 1, true), err.traceback)
end)

T.test("misuse is an argument error", function()
  T.raises(function() manager.BaseManager() end, "bad argument #1 to 'BaseManager'")
  T.raises(function() manager.BaseManager{address = {"127.0.0.1", 0}} end, "authkey")
  T.raises(function() manager.BaseManager{address = {"127.0.0.1", 70000}, authkey = "k"} end, "port")
  local fresh = manager.BaseManager{address = {"127.0.0.1", 0}, authkey = "k"}
  T.raises(function() fresh:register("start") end, "BaseManager member")
  T.raises(function() fresh:register("x", 5) end, "bad argument #2 to 'register'")
  local m <close> = serving()
  T.raises(function() m:register("late") end, "already running")
  local p = m:get_q()
  T.raises(function() p:get(true, -1) end, "bad argument #2 to 'get'")
  T.raises(function() p:get("yes") end, "bad argument #1 to 'get'")
  T.raises(function() p:put() end, "bad argument #1 to 'put'")
  T.raises(function() p:put(coroutine.create(print)) end, "cannot send")
end)

T.test("a value that cannot travel is refused before sending, naming the call and where it is", function()
  local m <close>, q = serving()
  local p = m:get_q()
  local function message(f)
    local ok, err = pcall(f)
    T.ok(not ok, "refused")
    return (tostring(err):gsub("^[^:]*:%d+: ", ""))  -- without the caller's position
  end
  T.eq(message(function() p:put({1, {a = {f = function() end}}}) end),
    "proxy:put: cannot send a function value to a manager at value[1][2].a.f")
  T.eq(message(function() p:put({x = queue.Queue()}) end),
    "proxy:put: cannot send a plua.Queue to a manager at value[1].x")
  T.eq(message(function() p:put({1, {a = {co = coroutine.create(print)}}}) end),
    "proxy:put: cannot send a thread (coroutine) value to a manager at value[1][2].a.co")
  T.eq(message(function() p:put_nowait({["not a name"] = {io.stdout}}) end),
    "proxy:put_nowait: cannot send a FILE* to a manager at value[1][\"not a name\"][1]")
  T.eq(message(function() p:put(print) end), "proxy:put: cannot send a function value to a manager at value[1]")
  local keyed = {}
  keyed[print] = 1
  T.eq(message(function() p:put({k = keyed}) end),
    "proxy:put: cannot send a function value to a manager at value[1].k (a key)")
  -- Shared and cyclic tables are walked once; what is plain still travels.
  local shared = {1, 2}
  p:put({shared, shared})
  T.deep(q:get(), {{1, 2}, {1, 2}})
  T.eq(q:qsize(), 0, "nothing refused was sent")
end)

T.test("over the 64 MiB frame limit: a put is refused before sending, a get still delivers", function()
  local m <close>, q = serving()
  local p = m:get_q()
  local ok, err = pcall(p.put, p, string.rep("b", 70 * 1024 * 1024))
  T.ok(not ok)
  T.ok(tostring(err):find("^proxy:put: the request is %d+ bytes pickled, over the manager frame limit of 67108864 bytes"),
    tostring(err))
  T.eq(p:qsize(), 0, "nothing was sent and the proxy goes on")
  q:put(string.rep("c", 70 * 1024 * 1024))
  q:put("next")
  local got = p:get()
  T.eq(#got, 70 * 1024 * 1024, "a reply over the limit is accepted: the item is not lost")
  T.eq(p:get(), "next")
  T.eq(q:qsize(), 0)
end)

T.test("start needs callables that return queues", function()
  local m = manager.BaseManager{address = {"127.0.0.1", 0}, authkey = "k"}
  m:register("bad", function() return 5 end)
  T.raises(function() m:start() end, "must return a queue.Queue")
  m:shutdown()
end)

T.test("shutdown stops serving; twice is harmless", function()
  local m = serving()
  local port = m.address[2]
  m:shutdown()
  m:shutdown()
  local c = manager.BaseManager{address = {"127.0.0.1", port}, authkey = "abc"}
  T.raises(function() c:connect() end, "manager:connect")
end)

T.test("a blocked remote get does not stall other clients", function()
  local m <close>, q, small = serving()
  local thread_ok, thread = pcall(require, "thread")
  if not thread_ok then return end
  local port = m.address[2]
  local t = thread.Thread{target = function()
    local mm = require("manager").BaseManager{address = {"127.0.0.1", port}, authkey = "abc"}
    mm:register("get_q")
    return mm:get_q():get(true, 20)
  end}
  t:start()
  local s = m:get_small()
  for i = 1, 20 do
    s:put(i)
    T.eq(s:get(), i)
  end
  q:put("wake")
  T.ok(t:join(20), "the blocked getter finished")
  T.eq(t:result(), "wake")
end)

T.run()
