-- The client side of W8 (run by w8_manager_roundtrip.lua): PORT ROUNDS.
local manager = require "manager"
local time = require "time"
local port, rounds = math.tointeger(tonumber(arg[1])), math.tointeger(tonumber(arg[2]))
local m = manager.BaseManager{address = {"127.0.0.1", port}, authkey = "bench"}
m:register("get_queue")
m:connect()
local q = m:get_queue()
q:put(0)
q:get()  -- warm-up: the proxy's connection is open from here on
local t0 = time.perf_counter()
for i = 1, rounds do
  q:put(i)
  if q:get() ~= i then error("wrong item") end
end
print(("RESULT %.0f round-trips/s higher"):format(rounds / (time.perf_counter() - t0)))
