-- Helpers for the soak tests (tests/soak/*.lua): sizes scaled by
-- PLUA_SOAK_SCALE, samples of this process's resources read from /proc, the
-- growth checks, and the summary lines run.py reads.
--
-- A sample (after a full garbage collection, so that only what is still
-- referenced counts) holds:
--   fds        descriptors open (/proc/self/fdinfo probed, which starts no child)
--   children   child processes, zombies included (/proc/self/task/*/children)
--   rss, hwm   VmRSS and VmHWM in KiB (/proc/self/status)
--   threads    OS threads (/proc/self/status)
--   arena      resident KiB of plua's shared arenas mapped here (memfd
--              "plua-arena" mappings in /proc/self/smaps), arena_maps how many
--   memfds     memfd mappings of any name
local time = require "time"
local process = require "process"

local M = {}

-- The soak's size scale: PLUA_SOAK_SCALE (a positive number, default 1).
function M.scale()
  local s = os.getenv("PLUA_SOAK_SCALE")
  if s == nil or s == "" then return 1 end
  local v = tonumber(s)
  if not v or v <= 0 then error("PLUA_SOAK_SCALE must be a positive number, got " .. s) end
  return v
end

-- How far (KiB) RSS may rise after the first 10% of a soak:
-- PLUA_SOAK_RSS_SLACK_KB, default 4096. Sanitizer builds set it high: their
-- allocators hold freed memory back (ASan's quarantine), and LeakSanitizer
-- checks for leaks there instead.
function M.rss_slack_kb()
  local s = os.getenv("PLUA_SOAK_RSS_SLACK_KB")
  if s == nil or s == "" then return 4096 end
  local v = math.tointeger(tonumber(s))
  if not v or v < 0 then error("PLUA_SOAK_RSS_SLACK_KB must be a whole number of KiB, got " .. s) end
  return v
end

-- How far (KiB) the shared arena may rise after the first 10%: plua's own
-- allocator, the same in every build. Dropped queues wait for Lua's collector,
-- so the arena's high-water mark settles some way above the early sample.
M.ARENA_SLACK_KB = 4096

-- `full` scaled, at least `least` (so a tiny scale still runs every phase).
function M.size(full, least)
  return math.max(least or 20, math.floor(full * M.scale() + 0.5))
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function status_kb(text, field)
  return tonumber(text:match(field .. ":%s*(%d+)"))
end

-- Descriptors open in this process. Probing /proc/self/fdinfo/N is exact: the
-- probe's own descriptor is not installed until the path has been resolved.
function M.count_fds()
  local text = read_file("/proc/self/status")
  local limit = math.max(status_kb(text, "FDSize") or 256, 256)
  local n = 0
  for fd = 0, limit - 1 do
    local f = io.open("/proc/self/fdinfo/" .. fd, "r")
    if f then
      n = n + 1
      f:close()
    end
  end
  return n
end

-- This process's threads (their ids), listed by `ls`: Lua cannot list a
-- directory itself. The listing goes through a file, not a pipe: a child
-- forked meanwhile by another thread (a pool worker) would inherit a pipe's
-- write end and keep its reader from ever seeing the end.
function M.thread_ids()
  local pid = process.getpid()
  local path = os.tmpname()
  local ok = os.execute(("exec ls /proc/%d/task > %s"):format(pid, path))
  local text = read_file(path) or ""
  os.remove(path)
  local tids = {}
  for tid in text:gmatch("%d+") do tids[#tids + 1] = tid end
  if not ok or #tids == 0 then error("soak: cannot list /proc/" .. pid .. "/task") end
  return tids
end

-- Children of this process, zombies included: each thread's children
-- (/proc/self/task/<tid>/children; pool workers, say, are started by a
-- thread of the pool's own).
function M.count_children()
  local pid = process.getpid()
  local n = 0
  for _, tid in ipairs(M.thread_ids()) do
    local text = read_file(("/proc/%d/task/%s/children"):format(pid, tid)) or ""
    for _ in text:gmatch("%d+") do n = n + 1 end
  end
  return n
end

-- Resident KiB and number of the plua arena mappings, and of all memfd mappings.
function M.arena_usage()
  local text = read_file("/proc/self/smaps") or ""
  local kb, maps, memfds = 0, 0, 0
  local in_arena = false
  for line in text:gmatch("[^\n]+") do
    if line:match("^%x+%-%x+ ") then
      in_arena = line:find("memfd:plua-arena", 1, true) ~= nil
      if in_arena then maps = maps + 1 end
      if line:find("/memfd:", 1, true) then memfds = memfds + 1 end
    elseif in_arena then
      local rss = line:match("^Rss:%s*(%d+) kB")
      if rss then kb = kb + tonumber(rss) end
    end
  end
  return kb, maps, memfds
end

-- One sample of this process's resources, labelled.
function M.sample(label)
  collectgarbage("collect")
  collectgarbage("collect")
  local status = read_file("/proc/self/status")
  local s = {label = label}
  s.fds = M.count_fds()
  s.children = M.count_children()
  s.rss = status_kb(status, "VmRSS")
  s.hwm = status_kb(status, "VmHWM")
  s.threads = status_kb(status, "Threads")
  s.arena, s.arena_maps, s.memfds = M.arena_usage()
  s.lua_kb = math.floor(collectgarbage("count"))
  return s
end

-- Samples again until `pred(sample)` holds or `seconds` pass (for OS threads
-- parked after use, which leave on their own after a while); returns the last.
function M.sample_until(label, pred, seconds)
  local deadline = time.monotonic() + seconds
  local s = M.sample(label)
  while not pred(s) and time.monotonic() < deadline do
    time.sleep(0.05)
    s = M.sample(label)
  end
  return s
end

local FIELDS = {"fds", "children", "threads", "rss", "hwm", "arena", "arena_maps", "memfds", "lua_kb"}

-- Checks that nothing grew without bound, with samples `before`, `early` (after
-- the first 10%), `after`: descriptors, children and memfd mappings back to
-- the baseline exactly; RSS and arena at most rss_slack_kb() and
-- ARENA_SLACK_KB above the early sample. Raises an error listing every violation.
function M.check(name, samples)
  local slack_kb, arena_slack_kb = M.rss_slack_kb(), M.ARENA_SLACK_KB
  local before, early, after = samples[1], samples[2], samples[#samples]
  local bad = {}
  local function expect(cond, text) if not cond then bad[#bad + 1] = text end end
  for _, f in ipairs({"fds", "children", "memfds", "arena_maps"}) do
    expect(after[f] == before[f], ("%s: %s before, %s after"):format(f, before[f], after[f]))
  end
  expect(after.rss <= early.rss + slack_kb,
    ("rss: %d KiB after 10%%, %d KiB at the end (slack %d KiB)"):format(early.rss, after.rss, slack_kb))
  expect(after.arena <= early.arena + arena_slack_kb,
    ("arena: %d KiB after 10%%, %d KiB at the end (slack %d KiB)"):format(early.arena, after.arena, arena_slack_kb))
  if #bad > 0 then error(name .. ": resources grew: " .. table.concat(bad, "; "), 0) end
end

-- Prints the machine-readable line (`SOAK key=value ...`, a field's values at
-- each sample joined by commas, in sample order) and a line for people.
-- `extra` holds further key=value pairs (sizes, checksums, the children's
-- own figures).
function M.report(name, n, seconds, samples, extra)
  local parts = {"SOAK", "name=" .. name, "n=" .. n, ("seconds=%.2f"):format(seconds)}
  local labels = {}
  for i, s in ipairs(samples) do labels[i] = s.label end
  parts[#parts + 1] = "at=" .. table.concat(labels, ",")
  for _, f in ipairs(FIELDS) do
    local vals = {}
    for i, s in ipairs(samples) do vals[i] = tostring(s[f]) end
    parts[#parts + 1] = f .. "=" .. table.concat(vals, ",")
  end
  local keys = {}
  for k in pairs(extra or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(extra[k]) end
  print(table.concat(parts, " "))
  local first, early, last = samples[1], samples[2], samples[#samples]
  print(("%s: %d in %.2f s; fds %d -> %d, children %d -> %d, RSS %d KiB (10%%: %d) -> %d KiB, arena %d KiB (10%%: %d) -> %d KiB")
    :format(name, n, seconds, first.fds, last.fds, first.children, last.children,
            first.rss, early.rss, last.rss, first.arena, early.arena, last.arena))
  io.stdout:flush()
end

-- Returns progress(done), which appends the "10%" and "50%" samples to
-- `samples` as `done` (items finished, of `n`) passes those points.
function M.progress(n, samples)
  local points = {{n // 10, "10%"}, {n // 2, "50%"}}
  local i = 1
  return function(done)
    while points[i] and done >= points[i][1] do
      samples[#samples + 1] = M.sample(points[i][2])
      i = i + 1
    end
  end
end

return M
