#include "plua/core/message_queue.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "plua/core/child_process.hpp"

using namespace plua::core;
using namespace std::chrono_literals;

namespace {

std::string get_one(MessageQueue& q) {
  std::string out;
  EXPECT_EQ(q.get(out, true, Deadline::after(10)), MessageQueue::GetStatus::ok);
  return out;
}

// A message whose content says its number and size, so corruption shows.
std::string numbered(std::uint64_t i, std::size_t size) {
  std::string m(std::max<std::size_t>(size, sizeof i), static_cast<char>('a' + i % 26));
  std::memcpy(m.data(), &i, sizeof i);
  return m;
}

bool intact(const std::string& m, std::uint64_t* i) {
  if (m.size() < sizeof *i) return false;
  std::memcpy(i, m.data(), sizeof *i);
  for (std::size_t k = sizeof *i; k < m.size(); ++k)
    if (m[k] != static_cast<char>('a' + *i % 26)) return false;
  return true;
}

}  // namespace

TEST(MessageQueue, FifoOfBytes) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  for (const std::string& m : {std::string("one"), std::string(), std::string("bin\0ary", 7), std::string("four")})
    ASSERT_EQ(q->put(m, true, Deadline::never()), MessageQueue::PutStatus::ok);
  EXPECT_EQ(q->qsize(), 4u);
  EXPECT_EQ(get_one(*q), "one");
  EXPECT_EQ(get_one(*q), "");
  EXPECT_EQ(get_one(*q), std::string("bin\0ary", 7));
  EXPECT_EQ(get_one(*q), "four");
  EXPECT_TRUE(q->empty());
}

TEST(MessageQueue, EmptyAndTimeout) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  std::string out;
  EXPECT_EQ(q->get(out, false, Deadline::never()), MessageQueue::GetStatus::empty);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(q->get(out, true, Deadline::after(0.1)), MessageQueue::GetStatus::empty);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 95ms);
}

TEST(MessageQueue, BoundedIsFullAtMaxsize) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue, 2);
  EXPECT_EQ(q->put("a", false, Deadline::never()), MessageQueue::PutStatus::ok);
  EXPECT_EQ(q->put("b", false, Deadline::never()), MessageQueue::PutStatus::ok);
  EXPECT_TRUE(q->full());
  EXPECT_EQ(q->put("c", false, Deadline::never()), MessageQueue::PutStatus::full);
  EXPECT_EQ(q->put("c", true, Deadline::after(0.05)), MessageQueue::PutStatus::full);
  std::thread getter([&] { std::this_thread::sleep_for(50ms); get_one(*q); });
  EXPECT_EQ(q->put("c", true, Deadline::after(10)), MessageQueue::PutStatus::ok);
  getter.join();
  EXPECT_EQ(get_one(*q), "b");
  EXPECT_EQ(get_one(*q), "c");
}

TEST(MessageQueue, ClosedRefusesPutsAndDrains) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  q->put("left", true, Deadline::never());
  q->close();
  EXPECT_THROW(q->put("x", true, Deadline::never()), QueueClosed);
  EXPECT_EQ(get_one(*q), "left");
  std::string out;
  EXPECT_EQ(q->get(out, true, Deadline::never()), MessageQueue::GetStatus::closed);
}

TEST(MessageQueue, CloseWakesABlockedGetter) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  std::thread closer([&] { std::this_thread::sleep_for(50ms); q->close(); });
  std::string out;
  EXPECT_EQ(q->get(out, true, Deadline::after(10)), MessageQueue::GetStatus::closed);
  closer.join();
}

TEST(MessageQueue, GrowsAndSpillsWithWrapAround) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  std::uint64_t next_put = 0, next_get = 0;
  // Interleaved so that records wrap around the ring while it grows.
  for (int round = 0; round < 50; ++round) {
    for (int k = 0; k < 97; ++k, ++next_put) {
      std::size_t size = (next_put % 31 == 0) ? MessageQueue::kSpillBytes + next_put : next_put % 700;
      q->put(numbered(next_put, size), true, Deadline::never());
    }
    for (int k = 0; k < 60; ++k, ++next_get) {
      std::uint64_t i = 0;
      ASSERT_TRUE(intact(get_one(*q), &i));
      ASSERT_EQ(i, next_get);
    }
  }
  while (next_get < next_put) {
    std::uint64_t i = 0;
    ASSERT_TRUE(intact(get_one(*q), &i));
    ASSERT_EQ(i, next_get++);
  }
  EXPECT_TRUE(q->empty());
}

TEST(MessageQueue, ManyThreadsLoseNothing) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue, 64);
  constexpr int kProducers = 3, kConsumers = 3, kEach = 20000;
  std::atomic<std::uint64_t> sum{0}, count{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p)
    threads.emplace_back([&, p] {
      for (std::uint64_t i = 1; i <= kEach; ++i) {
        std::uint64_t v = p * 1000000 + i;
        q->put(std::string_view(reinterpret_cast<const char*>(&v), sizeof v), true, Deadline::never());
      }
    });
  for (int c = 0; c < kConsumers; ++c)
    threads.emplace_back([&] {
      std::string out;
      while (count.load() < kProducers * kEach) {
        if (q->get(out, true, Deadline::after(0.05)) != MessageQueue::GetStatus::ok) continue;
        std::uint64_t v;
        std::memcpy(&v, out.data(), sizeof v);
        sum += v;
        ++count;
      }
    });
  for (auto& t : threads) t.join();
  std::uint64_t expected = 0;
  for (int p = 0; p < kProducers; ++p)
    for (std::uint64_t i = 1; i <= kEach; ++i) expected += p * 1000000 + i;
  EXPECT_EQ(count.load(), std::uint64_t{kProducers * kEach});
  EXPECT_EQ(sum.load(), expected);
}

TEST(MessageQueue, JoinableCountsTasks) {
  auto q = MessageQueue::create(MessageQueue::Kind::joinable);
  EXPECT_TRUE(q->join(Deadline::after(0)));
  q->put("t1", true, Deadline::never());
  q->put("t2", true, Deadline::never());
  EXPECT_EQ(q->unfinished_tasks(), 2u);
  EXPECT_FALSE(q->join(Deadline::after(0.02)));
  std::thread worker([&] {
    for (int i = 0; i < 2; ++i) {
      get_one(*q);
      q->task_done();
    }
  });
  EXPECT_TRUE(q->join(Deadline::after(10)));
  worker.join();
  EXPECT_THROW(q->task_done(), TooManyTaskDone);
}

TEST(MessageQueue, StopFlagInterruptsAWait) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  StopFlag* flag = nullptr;
  std::atomic<bool> ready{false};
  std::thread waiter([&] {
    flag = &this_thread_stop_flag();
    ready = true;
    std::string out;
    EXPECT_THROW(q->get(out, true, Deadline::never()), Interrupted);
  });
  while (!ready) std::this_thread::yield();
  std::this_thread::sleep_for(30ms);
  flag->request();
  waiter.join();
}

TEST(MessageQueue, WorksAcrossFork) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  auto back = MessageQueue::create(MessageQueue::Kind::queue);
  pid_t pid = fork_process();
  if (pid == 0) {
    std::string out;
    if (q->get(out, true, Deadline::after(10)) != MessageQueue::GetStatus::ok) _exit(2);
    back->put(out + " back", true, Deadline::never());
    _exit(0);
  }
  auto child = ChildProcess::adopt(pid);
  q->put("there", true, Deadline::never());
  EXPECT_EQ(get_one(*back), "there back");
  EXPECT_EQ(child->wait(Deadline::after(10)), 0);
}

// The headline: processes SIGKILLed at any moment (inside the mutex too) leave
// the queue usable, and every message published is intact and in order.
TEST(MessageQueue, SurvivesProcessesKilledAtAnyMoment) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  std::uint64_t delivered = 0;
  int rounds = 0;
  // At least 20 rounds, and more (up to 300) until a kill has landed inside the mutex.
  for (; rounds < 300 && (q->repairs() == 0 || rounds < 20); ++rounds) {
    pid_t writer = fork_process();
    if (writer == 0) {
      for (std::uint64_t i = 0;; ++i) {
        // Spills are rare: copying one (outside the mutex) takes as long as
        // a hundred small puts, and kills must land inside the mutex too.
        std::size_t size = (i % 101 == 0) ? MessageQueue::kSpillBytes + 10 : i % 200;
        q->put(numbered(i, size), true, Deadline::never());
      }
    }
    auto w = ChildProcess::adopt(writer);
    std::this_thread::sleep_for(std::chrono::microseconds(200 + (rounds * 37) % 3000));
    w->send_signal(SIGKILL);
    ASSERT_EQ(w->wait(Deadline::after(10)), -SIGKILL);
    // Drain: the sequence restarts at 0 for each writer, in order, intact.
    std::string out;
    std::uint64_t i = 0, n = 0;
    while (q->get(out, false, Deadline::never()) == MessageQueue::GetStatus::ok) {
      ASSERT_TRUE(intact(out, &i)) << "round " << rounds;
      ASSERT_EQ(i, n) << "round " << rounds;
      ++n;
    }
    EXPECT_EQ(q->qsize(), 0u);
    delivered += n;
  }
  EXPECT_GT(delivered, 0u);
  // A kill inside the critical section happened at least once and was repaired.
  EXPECT_GT(q->repairs(), 0u) << "after " << rounds << " rounds";
  q->put("still works", true, Deadline::never());
  EXPECT_EQ(get_one(*q), "still works");
}

TEST(MessageQueue, AnEmptiedQueueGivesBackItsBigRing) {
  auto q = MessageQueue::create(MessageQueue::Kind::queue);
  std::uint64_t before = shared_arena::blocks_in_use();
  std::string msg(1000, 'm');
  for (int i = 0; i < 5000; ++i) q->put(msg, true, Deadline::never());  // a ring of ~8 MB
  std::string out;
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(q->get(out, true, Deadline::never()), MessageQueue::GetStatus::ok);
  EXPECT_EQ(shared_arena::blocks_in_use(), before);
  q->put("again", true, Deadline::never());
  EXPECT_EQ(get_one(*q), "again");
}
