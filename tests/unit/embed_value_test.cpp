// The embedding API's values: C++ and Lua put into and get from the same
// queues (threads and a fork child), hand locks and events over, and what
// cannot cross is refused with nothing lost.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "plua/event.hpp"
#include "plua/lock.hpp"
#include "plua/queue.hpp"
#include "plua/runtime.hpp"
#include "plua/value.hpp"

using plua::Value;

namespace {

// Gets one item or fails the test (no test waits for ever).
Value must_get(plua::Queue& q, double timeout = 30) {
  std::optional<Value> v = q.get(timeout);
  if (!v) throw std::runtime_error("queue.get timed out");
  return *v;
}

}  // namespace

TEST(EmbedValue, CppPutsLuaGetsAndAnswersOnTheSameQueues) {
  plua::Runtime rt;
  plua::Queue jobs = plua::Queue::create();
  plua::Queue results = plua::Queue::create();
  rt.set_global("jobs", jobs);
  rt.set_global("results", results);
  ASSERT_TRUE(jobs.put(Value::Map{{"n", 41}, {"list", Value::Array{"a", "b"}}, {"f", 1.5}}));
  rt.run_string(R"(
    local job = jobs:get()
    results:put({job.n + 1, job.list[2], math.type(job.f), math.type(job.n)})
  )");
  Value got = must_get(results, 5);
  ASSERT_TRUE(got.is_array());
  EXPECT_EQ(got.as_array(), (Value::Array{42, "b", "float", "integer"}));
  EXPECT_TRUE(jobs.empty());
}

TEST(EmbedValue, EveryKindSurvivesARoundTripThroughLua) {
  plua::Runtime rt;
  plua::Queue q = plua::Queue::create();
  rt.set_global("q", q);
  std::string bytes("a\0b", 3);
  Value item = Value::Array{true, false, std::int64_t{1} << 62, -0.25, bytes, Value::Array{},
                            Value::Map{{1.5, "float key"}}, Value::Map{{true, "bool key"}}};
  ASSERT_TRUE(q.put(item));
  rt.run_string(R"(
    local v = q:get()
    assert(#v == 8 and math.type(v[3]) == "integer" and math.type(v[4]) == "float" and #v[5] == 3)
    q:put(v)
  )");
  EXPECT_EQ(must_get(q, 5), item);
}

TEST(EmbedValue, ALuaThreadGetsWhatCppPut) {
  plua::Runtime rt;
  plua::Queue in = plua::Queue::create();
  plua::Queue out = plua::Queue::create();
  rt.set_global("inq", in);
  rt.set_global("outq", out);
  rt.run_string(R"(
    local thread = require "thread"
    worker = thread.Thread{target = function(i, o)
      for _ = 1, 3 do o:put(i:get() * 2) end
    end, args = {inq, outq}}
    worker:start()
  )");
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(in.put(i * 10));
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(must_get(out).as_int(), i * 20);
  rt.run_string("assert(worker:join(30))");
}

TEST(EmbedValue, AForkedProcessGetsWhatCppPut) {
  plua::Runtime rt;
  plua::Queue in = plua::Queue::create();
  plua::Queue out = plua::Queue::create();
  rt.set_global("inq", in);
  rt.set_global("outq", out);
  rt.run_string(R"(
    local process = require "process"
    child = process.Process{target = function(i, o)
      local v = i:get(true, 30)
      o:put({pid = process.getpid(), text = v.text .. "!", sum = v.a + v.b})
    end, args = {inq, outq}}
    child:start()
  )");
  ASSERT_TRUE(in.put(Value::Map{{"text", "hi"}, {"a", 2}, {"b", 3}}));
  Value got = must_get(out);
  EXPECT_EQ(got.find("text")->as_string(), "hi!");
  EXPECT_EQ(got.find("sum")->as_int(), 5);
  EXPECT_NE(got.find("pid")->as_int(), static_cast<std::int64_t>(getpid()));
  rt.run_string("child:join(30); assert(child.exitcode == 0, tostring(child.exitcode))");
}

TEST(EmbedValue, AQueueMadeByAScriptComesBackAsAQueue) {
  plua::Runtime rt;
  rt.run_string("local queue = require 'queue'; made = queue.Queue(); made:put('from lua')");
  Value v = rt.get_global("made");
  ASSERT_TRUE(v.is_queue());
  plua::Queue made = v.as_queue();
  EXPECT_EQ(must_get(made, 5).as_string(), "from lua");
  // The same object both ways: a queue sent back is the script's own.
  rt.set_global("again", made);
  rt.run_string("assert(rawequal(made, again) or tostring(made) == tostring(again))");
  EXPECT_EQ(rt.get_global("again").as_queue(), made);
}

TEST(EmbedValue, AFunctionCannotBeReadButIsNotLost) {
  plua::Runtime rt;
  plua::Queue q = plua::Queue::create();
  rt.set_global("q", q);
  rt.run_string("q:put({f = function(x) return x + 1 end})");
  Value item;
  try {
    q.get(5);
    FAIL() << "expected a ConversionError";
  } catch (const plua::ConversionError& e) {
    EXPECT_STREQ(e.what(), "queue.get: cannot convert a function to a C++ value at item.f");
    ASSERT_TRUE(e.item().is_opaque());
    item = e.item();
  }
  EXPECT_TRUE(item.as_opaque().sendable());
  // Sent on, the script gets the function whole.
  ASSERT_TRUE(q.put(item));
  EXPECT_FALSE(item.as_opaque().sendable());
  EXPECT_THROW(q.put(item), plua::ConversionError);
  rt.run_string("answer = q:get().f(41)");
  EXPECT_EQ(rt.get_global("answer").as_int(), 42);
}

TEST(EmbedValue, GlobalsThatCannotBeReadAreRefused) {
  plua::Runtime rt;
  rt.run_string("fn = print; cyc = {}; cyc.self = cyc; data = {1, 2, x = {y = 'z'}}");
  EXPECT_THROW(rt.get_global("fn"), plua::ConversionError);
  try {
    rt.get_global("cyc");
    FAIL();
  } catch (const plua::ConversionError& e) {
    EXPECT_NE(std::string(e.what()).find("contains itself to a C++ value at cyc.self"), std::string::npos) << e.what();
  }
  Value data = rt.get_global("data");
  ASSERT_TRUE(data.is_map());
  EXPECT_EQ(data.find("x")->find("y")->as_string(), "z");
  EXPECT_TRUE(rt.get_global("nothing").is_nil());
}

TEST(EmbedValue, LocksAndEventsAreShared) {
  plua::Runtime rt;
  plua::Lock lock = plua::Lock::create();
  plua::Event event = plua::Event::create();
  rt.set_global("lk", lock);
  rt.set_global("ev", event);
  ASSERT_TRUE(lock.acquire());
  rt.run_string("got = lk:acquire(true, 0.01)");
  EXPECT_FALSE(rt.get_global("got").as_bool());
  lock.release();
  rt.run_string("got = lk:acquire(true, 5); ev:set()");
  EXPECT_TRUE(rt.get_global("got").as_bool());
  EXPECT_TRUE(lock.locked());
  EXPECT_TRUE(event.is_set());
  EXPECT_TRUE(event.wait(0));
  rt.run_string("lk:release(); ev:clear()");
  EXPECT_FALSE(lock.locked());
  EXPECT_FALSE(event.is_set());
  EXPECT_THROW(lock.release(), plua::Error);
}

TEST(EmbedValue, TimeoutsAndMisuse) {
  plua::Queue q = plua::Queue::create(1);
  EXPECT_FALSE(q.get(0.01).has_value());
  EXPECT_FALSE(q.get_nowait().has_value());
  EXPECT_TRUE(q.put_nowait("one"));
  EXPECT_TRUE(q.full());
  EXPECT_FALSE(q.put("two", 0.01));
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_THROW(q.put("x", -1.0), std::invalid_argument);
  EXPECT_THROW(q.get(std::nan("")), std::invalid_argument);
  q.close();
  EXPECT_THROW(q.put("x", 0.0), plua::Error);
  EXPECT_EQ(q.get()->as_string(), "one");
  EXPECT_FALSE(q.get().has_value());  // closed and drained: at once
  EXPECT_THROW(q.task_done(), plua::Error);
  plua::Queue j = plua::Queue::create_joinable();
  ASSERT_TRUE(j.put(1));
  EXPECT_FALSE(j.join(0.01));
  ASSERT_TRUE(j.get(1).has_value());
  j.task_done();
  EXPECT_TRUE(j.join(1));
  EXPECT_THROW(j.task_done(), plua::Error);
}

TEST(EmbedValue, MapKeysMustBeData) {
  plua::Queue q = plua::Queue::create();
  EXPECT_THROW(q.put(Value::Map{{nullptr, 1}}), plua::ConversionError);
  EXPECT_TRUE(q.empty());
  // A queue inside an item that is refused is not left counted.
  plua::Queue inner = plua::Queue::create();
  ASSERT_TRUE(q.put(Value::Array{inner, "x"}));
  Value back = must_get(q, 5);
  EXPECT_EQ(back.as_array()[0].as_queue(), inner);
}
