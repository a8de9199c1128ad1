-- Soak: N put + get round trips from a plua client process
-- (manager_client.lua) through this process's manager server over loopback,
-- on a new connection every 1000 round trips.
-- The server's side samples its resources before the manager exists, when the
-- client reports 10% and 50% done, and after shutdown; the client samples its
-- own. Neither may grow: while serving, the server's descriptors and threads
-- at 50% are those at 10% (give or take the connection being replaced), and
-- after shutdown descriptors, threads and children are back where they were.
--   plua manager_roundtrips.lua   (100,000 round trips, times PLUA_SOAK_SCALE)
local dir = arg[0]:match("^(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local soak = require "soak"
local manager = require "manager"
local queue = require "queue"
local subprocess = require "subprocess"
local time = require "time"

local N = soak.size(100000, 100)
local name = "manager_roundtrips"

local q, report = queue.Queue(), queue.Queue()
-- A manager started and shut down first, so that lazily made state (a
-- sanitizer's own thread, say) is in the baseline.
do
  local warm <close> = manager.BaseManager{address = {"127.0.0.1", 0}, authkey = "soak"}
  warm:register("get_queue", function() return q end)
  warm:start()
end
local samples = {soak.sample("before")}
local m = manager.BaseManager{address = {"127.0.0.1", 0}, authkey = "soak"}
m:register("get_queue", function() return q end)
m:register("get_report", function() return report end)
m:start()

local t0 = time.monotonic()
-- /proc/self/exe, resolved in the child before it execs: this very plua binary.
local client = subprocess.Popen{"/proc/self/exe", dir .. "manager_client.lua", tostring(m.address[2]), tostring(N)}
local client_samples
-- Waits for the client's reports as long as it runs (a loaded machine makes
-- round trips slow, not wrong); it ending without its last report is the failure.
while not client_samples do
  local ok, r = pcall(report.get, report, true, 1)
  if not ok then
    if type(r) ~= "table" or r.kind ~= queue.Empty then error(r, 0) end
    if client:poll() ~= nil then
      error(("%s: the client ended (exit code %s) before its last report"):format(name, client.returncode), 0)
    end
    r = nil
  end
  if r == nil or r == "start" then
    -- nothing yet, or the client is connected (its samples begin here)
  elseif type(r) == "string" then
    samples[#samples + 1] = soak.sample(r)
  else
    assert(r.done == N, "the client did every round trip")
    client_samples = r.samples
  end
end
local seconds = time.monotonic() - t0
local code = client:wait(60)
if code ~= 0 then error(("%s: the client exited with %s"):format(name, tostring(code)), 0) end
m:shutdown()
m, client = nil, nil
q:close()
report:close()
samples[#samples + 1] = soak.sample("after")

local c = client_samples
soak.report(name, N, seconds, samples, {
  rate = ("%.0f/s"):format(N / seconds),
  client_fds = ("%d,%d,%d"):format(c[1].fds, c[2].fds, c[#c].fds),
  client_rss = ("%d,%d,%d"):format(c[1].rss, c[2].rss, c[#c].rss),
})
if samples[#samples].threads ~= samples[1].threads then
  error(("%s: %d OS threads before the manager, %d after its shutdown"):format(name, samples[1].threads,
    samples[#samples].threads), 0)
end
soak.check(name, samples)
local s10, s50 = samples[2], samples[3]
if s50.fds > s10.fds + 1 or s50.threads > s10.threads + 1 then
  error(("%s: the server grew while serving: fds %d at 10%%, %d at 50%%; threads %d, %d")
    :format(name, s10.fds, s50.fds, s10.threads, s50.threads), 0)
end
local early, last = c[2], c[#c]
if last.fds ~= c[1].fds or last.rss > early.rss + soak.rss_slack_kb() then
  error(("%s: the client grew: fds %d -> %d, RSS %d KiB after 10%% -> %d KiB")
    :format(name, c[1].fds, last.fds, early.rss, last.rss), 0)
end
