-- One worker of examples/queue_workers: takes jobs from `jobs` until it gets
-- "stop", answers each on `results`, and returns how many it did.
local jobs, results, me = ...
local done = 0
while true do
  local job = jobs:get()
  if job == "stop" then return done end
  local words = {}
  for word in job.text:gmatch("%S+") do words[#words + 1] = word:upper() end
  results:put({id = job.id, worker = me, words = #words, shout = table.concat(words, " ")})
  done = done + 1
end
