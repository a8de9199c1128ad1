-- The client side of manager_roundtrips.lua (another plua process):
--   plua manager_client.lua PORT ROUNDS
-- Does ROUNDS put + get round trips on the served queue "get_queue", checking
-- each item, replacing its proxy (so its connection) every 1000 rounds, and tells the server's side through the served queue
-- "get_report" when 10% and 50% are done, then sends its own samples.
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local soak = require "soak"
local manager = require "manager"

local port, rounds = math.tointeger(tonumber(arg[1])), math.tointeger(tonumber(arg[2]))
assert(port and rounds, "usage: manager_client.lua PORT ROUNDS")
local m = manager.BaseManager{address = {"127.0.0.1", port}, authkey = "soak"}
m:register("get_queue")
m:register("get_report")
m:connect()
local q, report = m:get_queue(), m:get_report()
q:put(0)
assert(q:get(true, 30) == 0, "warm-up item")
report:put("start")  -- both proxies' connections are open from here on

local samples = {soak.sample("before")}
local points = {[rounds // 10] = "10%", [rounds // 2] = "50%"}
for i = 1, rounds do
  q:put(i)
  local v = q:get(true, 30)
  if v ~= i then error(("round trip %d brought back %s"):format(i, tostring(v))) end
  if i % 1000 == 0 then
    q:close()
    q = m:get_queue()
    q:qsize()  -- a proxy connects on its first call: one connection at every sample
  end
  if points[i] then
    samples[#samples + 1] = soak.sample(points[i])
    report:put(points[i])
  end
end
samples[#samples + 1] = soak.sample("after")
local plain = {}
for i, s in ipairs(samples) do
  plain[i] = {label = s.label, fds = s.fds, rss = s.rss, threads = s.threads, lua_kb = s.lua_kb}
end
report:put({done = rounds, samples = plain})
q:close()
report:close()
