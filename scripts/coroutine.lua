-- The generator producer/consumer of the tutorial, with Lua's own coroutines:
-- one thread, no locks; produce and consume take turns at each resume/yield.

local function consumer()
  return coroutine.wrap(function(n)
    local r = ""
    while true do
      if not n then return end
      print(("[CONSUMER] Consuming %s..."):format(n))
      r = "200 OK"
      n = coroutine.yield(r)
    end
  end)
end

local function produce(c)
  -- Python's c.send(None) primes the generator; a Lua coroutine starts at its
  -- first resume, which here already carries the first item.
  local n = 0
  while n < 5 do
    n = n + 1
    print(("[PRODUCER] Producing %s..."):format(n))
    local r = c(n)
    print(("[PRODUCER] Consumer return: %s"):format(r))
  end
  c(nil)  -- as c.close(): the consumer returns
end

produce(consumer())
