-- The tutorial's bank balance without a lock: two threads deposit and withdraw
-- the same amount 100000 times each, so the balance should stay 0. plua's
-- threads really run in parallel and the balance is really shared (a
-- shared.Value), so the unprotected read-modify-write loses updates: the
-- printed balance is usually not 0.
local thread = require "thread"
local shared = require "shared"

-- Suppose this is your bank balance:
balance = shared.Value("int", 0)

function change_it(n)
  -- Deposit first, then withdraw: the result should be 0.
  balance.value = balance.value + n
  balance.value = balance.value - n
end

function run_thread(n)
  for i = 1, 100000 do
    change_it(n)
  end
end

local t1 = thread.Thread{target = run_thread, args = {5}}
local t2 = thread.Thread{target = run_thread, args = {8}}
t1:start()
t2:start()
t1:join()
t2:join()
print(balance.value)
