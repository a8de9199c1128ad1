// The embedding API's workers and control: scripts started from C++ on plua
// threads, their results and errors, interrupts from other C++ threads, the
// memory limit, and two runtimes at once.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>

#include "plua/event.hpp"
#include "plua/lock.hpp"
#include "plua/queue.hpp"
#include "plua/runtime.hpp"

using plua::Value;

namespace {

Value must_get(plua::Queue& q, double timeout = 30) {
  std::optional<Value> v = q.get(timeout);
  if (!v) throw std::runtime_error("queue.get timed out");
  return *v;
}

// The error a finished worker failed with (fails the test if it did not).
plua::Error failure_of(plua::Worker& w) {
  EXPECT_TRUE(w.join(30));
  try {
    w.result();
  } catch (const plua::Error& e) {
    return e;
  }
  ADD_FAILURE() << "the worker did not fail";
  return plua::Error("", "");
}

}  // namespace

TEST(EmbedWorker, AGlobalFunctionRunsWithArgumentsAndReturnsResults) {
  plua::Runtime rt;
  rt.run_string("offset = 100; function add(a, b, t) return a + b + offset, t.name:upper(), nil, 2.5 end");
  plua::Worker w = rt.start_function("add", {1, 2, Value::Map{{"name", "lua"}}}, {.name = "adder"});
  ASSERT_TRUE(w.join(30));
  EXPECT_TRUE(w.finished());
  EXPECT_EQ(w.name(), "adder");
  std::vector<Value> r = w.result();
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].as_int(), 103);
  EXPECT_EQ(r[1].as_string(), "LUA");
  EXPECT_TRUE(r[2].is_nil());
  EXPECT_EQ(r[3].as_float(), 2.5);
  EXPECT_EQ(w.result(), r);  // read again: the same
}

TEST(EmbedWorker, ChunksAndFilesGetTheirArgumentsAsDots) {
  plua::Runtime rt;
  plua::Worker c = rt.start_chunk("local a, b = ... return a .. b, select('#', ...)", {"x", "y"});
  ASSERT_TRUE(c.join(30));
  EXPECT_EQ(c.result(), (std::vector<Value>{"xy", 2}));

  std::string path = testing::TempDir() + "embed_worker_" + std::to_string(getpid()) + ".lua";
  std::ofstream(path) << "local q, n = ...\nfor i = 1, n do q:put(i * i) end\nreturn 'done'\n";
  plua::Queue q = plua::Queue::create();
  plua::Worker f = rt.start_file(path, {q, 3});
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(must_get(q).as_int(), i * i);
  ASSERT_TRUE(f.join(30));
  EXPECT_EQ(f.result(), (std::vector<Value>{"done"}));
  std::remove(path.c_str());
}

TEST(EmbedWorker, StartFailuresAreErrors) {
  plua::Runtime rt;
  rt.run_string("notfn = 3");
  try {
    rt.start_function("notfn");
    FAIL();
  } catch (const plua::Error& e) {
    EXPECT_NE(std::string(e.what()).find("global 'notfn' is not a function (a number)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(rt.start_chunk("x = = 1"), plua::Error);
  EXPECT_THROW(rt.start_file("/nonexistent/w.lua"), plua::Error);
  EXPECT_THROW(rt.start_chunk("return 1", {Value::Map{{nullptr, 1}}}), plua::ConversionError);
  // The runtime is still fine.
  plua::Worker w = rt.start_chunk("return 7");
  ASSERT_TRUE(w.join(30));
  EXPECT_EQ(w.result()[0].as_int(), 7);
}

TEST(EmbedWorker, ErrorsComeBackWithTracebackAndKind) {
  plua::Runtime rt;
  plua::Worker w = rt.start_chunk("local function inner() error('bad thing') end\ninner()", {}, "=job");
  plua::Error e = failure_of(w);
  EXPECT_EQ(e.message(), "job:1: bad thing");
  EXPECT_NE(e.traceback().find("stack traceback:"), std::string::npos);
  EXPECT_NE(e.traceback().find("inner"), std::string::npos) << e.traceback();
  EXPECT_EQ(e.kind(), "");
  EXPECT_THROW(w.result(), plua::Error);  // again

  plua::Worker k = rt.start_chunk("require('queue').Queue():get(false)");
  plua::Error empty = failure_of(k);
  EXPECT_EQ(empty.kind(), "Empty");
  EXPECT_EQ(empty.message(), "Empty: queue is empty");
}

TEST(EmbedWorker, JoinTimesOutWhileTheScriptRuns) {
  plua::Runtime rt;
  plua::Event go = plua::Event::create();
  plua::Worker w = rt.start_chunk("local go = ... assert(go:wait(30)) return 'went'", {go});
  EXPECT_FALSE(w.join(0.05));
  EXPECT_FALSE(w.finished());
  EXPECT_THROW(w.result(), std::logic_error);
  go.set();
  ASSERT_TRUE(w.join(30));
  EXPECT_EQ(w.result()[0].as_string(), "went");
}

TEST(EmbedWorker, ResultsThatCannotBeReadAreRefused) {
  plua::Runtime rt;
  plua::Worker w = rt.start_chunk("return 1, function() end");
  ASSERT_TRUE(w.join(30));
  EXPECT_THROW(w.result(), plua::ConversionError);
}

// Each case: the script says "ready" on a queue, then blocks (or spins);
// another C++ thread interrupts it. An interrupt that lands before the wait
// starts is kept, so no timing is assumed.
class EmbedInterrupt : public testing::TestWithParam<const char*> {};

TEST_P(EmbedInterrupt, AnotherCppThreadStopsTheScript) {
  plua::Runtime rt;
  plua::Queue ready = plua::Queue::create();
  plua::Queue never = plua::Queue::create();
  plua::Lock held = plua::Lock::create();
  plua::Event release_inner = plua::Event::create();
  ASSERT_TRUE(held.acquire());
  rt.set_global("ready", ready);
  rt.set_global("never", never);
  rt.set_global("held", held);
  rt.set_global("release_inner", release_inner);
  rt.run_string(R"(
    thread = require "thread"
    cases = {
      get = function() ready:put(1); never:get() end,
      acquire = function() ready:put(1); held:acquire() end,
      sleep = function() ready:put(1); thread.sleep(1000) end,
      join = function()
        local t = thread.Thread{target = function() release_inner:wait() end, daemon = true}
        t:start(); ready:put(1); t:join()
      end,
      busy = function() ready:put(1); local n = 0 while true do n = n + 1 end end,
    }
    function run_case(name) cases[name]() end
  )");
  plua::Worker w = rt.start_function("run_case", {GetParam()});
  must_get(ready);
  std::thread other([w]() mutable { w.interrupt(); });
  other.join();
  plua::Error e = failure_of(w);
  EXPECT_EQ(e.kind(), "KeyboardInterrupt") << e.what();
  EXPECT_EQ(e.message(), "KeyboardInterrupt: interrupted!");
  release_inner.set();
  held.release();
}

INSTANTIATE_TEST_SUITE_P(Blocked, EmbedInterrupt, testing::Values("get", "acquire", "sleep", "join", "busy"));

TEST(EmbedWorker, InterruptBeforeTheThreadRunsStopsItAsItStarts) {
  plua::Runtime rt;
  plua::Worker w = rt.start_chunk("while true do end");
  w.interrupt();
  EXPECT_EQ(failure_of(w).kind(), "KeyboardInterrupt");
  // A finished worker is not affected, nor is the next one.
  w.interrupt();
  plua::Worker next = rt.start_chunk("return 'fine'");
  ASSERT_TRUE(next.join(30));
  EXPECT_EQ(next.result()[0].as_string(), "fine");
}

TEST(EmbedRuntime, InterruptStopsTheRuntimesOwnState) {
  plua::Runtime rt(plua::Runtime::Options{.interruptible = true});
  plua::Queue ready = plua::Queue::create();
  rt.set_global("ready", ready);
  for (const char* code : {"ready:put(1); require('queue').Queue():get()", "ready:put(1); while true do end"}) {
    std::thread other([&] {
      must_get(ready);
      rt.interrupt();
    });
    plua::Outcome out = rt.try_run_string(code);
    other.join();
    EXPECT_FALSE(out.ok);
    EXPECT_EQ(out.message, "KeyboardInterrupt: interrupted!") << code;
  }
  rt.interrupt();  // idle: nothing to stop, and nothing kept for later
  EXPECT_TRUE(rt.try_run_string("x = 1").ok);
}

TEST(EmbedRuntime, MemoryLimitFailsTheScriptAndTheRuntimeLivesOn) {
  constexpr std::size_t kLimit = 16u << 20;
  plua::Runtime rt(plua::Runtime::Options{.memory_limit = kLimit});
  EXPECT_GT(rt.memory_used(), 0u);
  EXPECT_LT(rt.memory_used(), kLimit);
  plua::Outcome out = rt.try_run_string("local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(64) .. i end");
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.message, "not enough memory");
  EXPECT_LE(rt.memory_used(), kLimit);
  rt.run_string("collectgarbage(); small = {1, 2, 3}");
  EXPECT_EQ(rt.get_global("small"), Value(Value::Array{1, 2, 3}));
  // Workers draw on the same budget, and give it back when they end.
  std::size_t before = rt.memory_used();
  plua::Worker w = rt.start_chunk("local t = {} for i = 1, 1e8 do t[i] = ('y'):rep(64) .. i end");
  plua::Error e = failure_of(w);
  EXPECT_EQ(e.message(), "not enough memory");
  plua::Worker ok = rt.start_chunk("return #('z'):rep(1000)");
  ASSERT_TRUE(ok.join(30));
  EXPECT_EQ(ok.result()[0].as_int(), 1000);
  rt.run_string("collectgarbage()");
  EXPECT_LE(rt.memory_used(), before + (256u << 10));
}

TEST(EmbedRuntime, TwoRuntimesRunAtOnceOnTwoThreads) {
  auto run = [](int factor, std::size_t limit, std::string* failure) {
    try {
      plua::Runtime rt(plua::Runtime::Options{.memory_limit = limit});
      plua::Queue jobs = plua::Queue::create();
      plua::Queue results = plua::Queue::create();
      rt.set_global("factor", factor);
      rt.run_string(R"(
        function work(jobs, results)
          for j in function() return jobs:get() end do
            if j == "stop" then return end
            results:put(j * factor)
          end
        end
      )");
      std::vector<plua::Worker> workers;
      for (int i = 0; i < 2; ++i) workers.push_back(rt.start_function("work", {jobs, results}));
      long sum = 0;
      for (int i = 1; i <= 200; ++i) jobs.put(i);
      for (int i = 1; i <= 200; ++i) sum += must_get(results).as_int();
      for (std::size_t i = 0; i < workers.size(); ++i) jobs.put("stop");
      for (auto& w : workers)
        if (!w.join(30)) *failure = "a worker did not end";
      if (sum != factor * 200 * 201 / 2) *failure = "wrong sum " + std::to_string(sum);
      if (limit && rt.memory_used() > limit) *failure = "over the limit";
    } catch (const std::exception& e) {
      *failure = e.what();
    }
  };
  std::string f1, f2;
  std::thread a(run, 2, std::size_t{0}, &f1);
  std::thread b(run, 3, std::size_t{32} << 20, &f2);
  a.join();
  b.join();
  EXPECT_EQ(f1, "");
  EXPECT_EQ(f2, "");
}

TEST(EmbedRuntime, CloseInterruptsAndWaitsForItsWorkers) {
  plua::Queue never = plua::Queue::create();
  std::optional<plua::Worker> w;
  {
    plua::Runtime rt;
    w = rt.start_chunk("local q = ... q:get()", {never});
    EXPECT_FALSE(w->join(0.01));
  }
  EXPECT_TRUE(w->finished());
  EXPECT_EQ(failure_of(*w).kind(), "KeyboardInterrupt");
}

TEST(EmbedRuntime, CloseWaitsForItsOwnThreadsOnly) {
  plua::Event stop = plua::Event::create();
  plua::Queue started = plua::Queue::create();
  plua::Runtime a;
  a.set_global("stop", stop);
  a.set_global("started", started);
  // A non-daemon thread of runtime a, running until C++ sets the event.
  a.run_string(R"(
    t = require("thread").Thread{target = function(stop, started) started:put(1) stop:wait() started:put(3) end, args = {stop, started}}
    t:start()
  )");
  must_get(started);
  {
    plua::Runtime b;
    b.set_global("started", started);
    b.run_string(R"(
      local t = require("thread").Thread{target = function(started) started:put(2) end, args = {started}}
      t:start()
    )");
  }  // b's close waits for b's thread, not for a's
  EXPECT_EQ(must_get(started).as_int(), 2);
  stop.set();
  a.close();  // a's close waits for a's thread: its last put is already there
  std::optional<Value> last = started.get(0);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->as_int(), 3);
}

TEST(EmbedWorker, WithoutTheHookOnlyBlockingCallsAreInterrupted) {
  plua::Runtime rt;
  plua::Queue ready = plua::Queue::create();
  plua::Event stop = plua::Event::create();
  // Spins until the event is set, then blocks: the interrupt is seen by the block.
  plua::Worker w = rt.start_chunk(
      "local ready, stop = ... ready:put(1) while not stop:is_set() do end return require('queue').Queue():get()",
      {ready, stop}, "=(worker)", {.interruptible = false});
  must_get(ready);
  w.interrupt();
  EXPECT_FALSE(w.join(0.05));  // still spinning: no hook
  stop.set();
  EXPECT_EQ(failure_of(w).kind(), "KeyboardInterrupt");
}
