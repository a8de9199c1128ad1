-- Soak: N messages from a producer process through a consumer process to this
-- one (two bounded queue.Queues), checked for count, order and checksum.
-- Most messages are integers; every 1000th is a table, every 100,000th a
-- table holding a 100 KB string (a value that gets a block of its own).
-- This process and both children sample their resources at the start, after
-- 10% and at the end; none may grow.
--   plua queue_messages.lua   (1,000,000 messages, times PLUA_SOAK_SCALE)
package.path = (arg[0]:match("^(.*/)") or "./") .. "?.lua;" .. package.path
local soak = require "soak"
local process = require "process"
local queue = require "queue"
local time = require "time"

local N = soak.size(1000000, 1000)
local name = "queue_messages"
local BLOB = 100000

-- Message number i.
local function message(i)
  if i % 100000 == 0 then return {id = i, blob = string.rep("b", BLOB)} end
  if i % 1000 == 0 then return {id = i, name = "item", tags = {1, 2, 3}} end
  return i
end

-- The number a message carries; raises if its shape is wrong.
local function id_of(v)
  if math.type(v) == "integer" then return v end
  assert(type(v) == "table", "a message is an integer or a table")
  if v.id % 100000 == 0 then
    assert(#v.blob == BLOB, "blob length")
  else
    assert(v.name == "item" and #v.tags == 3 and v.tags[3] == 3, "table message shape")
  end
  return v.id
end

-- Samples a child's resources at the start, after 10% and at the end, and sends them back.
local function child_samples(report, role, n, body)
  local samples = {soak.sample("before")}
  local progress = soak.progress(n, samples)
  body(progress)
  samples[#samples + 1] = soak.sample("after")
  report:put({role = role, samples = samples})
end

local function produce(out, report, n)
  child_samples(report, "producer", n, function(progress)
    local put = out.put
    for i = 1, n do
      put(out, message(i), true, 60)
      if i % 1000 == 0 then progress(i) end
    end
  end)
end

local function consume(inq, out, report, n)
  child_samples(report, "consumer", n, function(progress)
    local get, put = inq.get, out.put
    for i = 1, n do
      put(out, get(inq, true, 60), true, 60)
      if i % 1000 == 0 then progress(i) end
    end
  end)
end

local q1, q2, report = queue.Queue(10000), queue.Queue(10000), queue.Queue()
local samples = {soak.sample("before")}
local progress = soak.progress(N, samples)
local t0 = time.monotonic()
local producer = process.Process{target = produce, args = {q1, report, N}, name = "producer"}
local consumer = process.Process{target = consume, args = {q1, q2, report, N}, name = "consumer"}
producer:start()
consumer:start()

local sum, tables = 0, 0
local get = q2.get
for i = 1, N do
  local v = get(q2, true, 60)
  local id = id_of(v)
  if id ~= i then error(("%s: message %d arrived where %d was due"):format(name, id, i)) end
  if type(v) == "table" then tables = tables + 1 end
  sum = sum + id
  if i % 1000 == 0 then progress(i) end
end
local seconds = time.monotonic() - t0
for _, p in ipairs({producer, consumer}) do
  if not p:join(60) then error(("%s: %s did not end within 60 s"):format(name, p.name)) end
  if p.exitcode ~= 0 then error(("%s: %s exited with %s"):format(name, p.name, p.exitcode)) end
end
local reports = {}
for _ = 1, 2 do
  local r = report:get(true, 10)
  reports[r.role] = r.samples
end
producer, consumer = nil, nil
samples[#samples + 1] = soak.sample("after")

assert(sum == N * (N + 1) // 2, ("%s: checksum %d, expected %d"):format(name, sum, N * (N + 1) // 2))
assert(q1:empty() and q2:empty(), name .. ": messages left in a queue")
local extra = {rate = ("%.0f/s"):format(N / seconds), checksum = sum, tables = tables}
for role, s in pairs(reports) do
  extra[role .. "_rss"] = ("%d,%d,%d"):format(s[1].rss, s[2].rss, s[#s].rss)
  extra[role .. "_fds"] = ("%d,%d,%d"):format(s[1].fds, s[2].fds, s[#s].fds)
end
soak.report(name, N, seconds, samples, extra)
soak.check(name, samples)
-- A child's descriptors are constant; its memory may not grow after its first 10%.
for role, s in pairs(reports) do
  local early, last = s[2], s[#s]
  if last.fds ~= s[1].fds or last.rss > early.rss + soak.rss_slack_kb()
      or last.arena > early.arena + soak.ARENA_SLACK_KB then
    error(("%s: the %s grew: fds %d -> %d, RSS %d KiB after 10%% -> %d KiB, arena %d -> %d KiB")
      :format(name, role, s[1].fds, last.fds, early.rss, last.rss, early.arena, last.arena), 0)
  end
end
