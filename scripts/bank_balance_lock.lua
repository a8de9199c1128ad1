-- The tutorial's bank balance with a lock: each change happens with the lock
-- held (acquire, then release in a "finally"), so the balance is always 0.
local thread = require "thread"
local shared = require "shared"
local lock = require "lock"

-- Suppose this is your bank balance:
balance = shared.Value("int", 0)
balance_lock = lock.Lock()

function change_it(n)
  -- Deposit first, then withdraw: the result should be 0.
  balance.value = balance.value + n
  balance.value = balance.value - n
end

function run_thread(n)
  for i = 1, 100000 do
    -- Take the lock first:
    balance_lock:acquire()
    -- try ... finally: release it even if change_it fails.
    local ok, err = pcall(change_it, n)
    balance_lock:release()
    if not ok then error(err, 0) end
  end
end

local t1 = thread.Thread{target = run_thread, args = {5}}
local t2 = thread.Thread{target = run_thread, args = {8}}
t1:start()
t2:start()
t1:join()
t2:join()
print(balance.value)
