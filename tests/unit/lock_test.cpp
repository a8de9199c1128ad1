// The lock family of the core: Lock, RLock, Condition, Semaphore, Event, Barrier.
#include "plua/core/lock.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "plua/core/barrier.hpp"
#include "plua/core/condition.hpp"
#include "plua/core/event.hpp"
#include "plua/core/semaphore.hpp"

using namespace plua::core;
using namespace std::chrono_literals;

namespace {

int wait_child(pid_t pid, double seconds = 10) {
  auto deadline = Deadline::after(seconds);
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (deadline.expired()) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1000;
    }
    std::this_thread::sleep_for(1ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// Forks a child that runs `hold`, tells the parent, and waits to be killed.
template <class Hold>
pid_t fork_holder(Hold hold) {
  int ready[2];
  if (::pipe(ready) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    hold();
    char c = 'x';
    if (::write(ready[1], &c, 1) != 1) ::_exit(2);
    ::pause();
    ::_exit(0);
  }
  char c;
  if (::read(ready[0], &c, 1) != 1) pid = -1;
  ::close(ready[0]);
  ::close(ready[1]);
  return pid;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(Lock, AcquireReleaseAndTimeout) {
  Lock l;
  EXPECT_FALSE(l.locked());
  EXPECT_EQ(l.acquire(true, Deadline::never()), Acquire::acquired);
  EXPECT_TRUE(l.locked());
  EXPECT_EQ(l.acquire(false, Deadline::never()), Acquire::failed);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(l.acquire(true, Deadline::after(0.05)), Acquire::failed);
  EXPECT_GE(seconds_since(t0), 0.049);
  l.release();
  EXPECT_THROW(l.release(), LockError);
}

TEST(Lock, AnotherThreadMayRelease) {
  Lock l;
  l.acquire(true, Deadline::never());
  std::thread([&] { l.release(); }).join();
  EXPECT_FALSE(l.locked());
}

TEST(Lock, MutualExclusionBetweenThreads) {
  Lock l;
  long counter = 0;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        l.acquire(true, Deadline::never());
        ++counter;
        l.release();
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, 80000);
}

TEST(Lock, AWaiterGetsTheLockOfAKilledHolder) {
  Lock l;
  pid_t pid = fork_holder([&] { l.acquire(true, Deadline::never()); });
  ASSERT_GT(pid, 0);
  EXPECT_EQ(l.acquire(false, Deadline::never()), Acquire::failed);  // holder alive
  ::kill(pid, SIGKILL);
  // Not reaped yet: a zombie holder counts as dead too.
  EXPECT_EQ(l.acquire(true, Deadline::after(5)), Acquire::abandoned);
  EXPECT_EQ(wait_child(pid), -SIGKILL);
  l.release();
  EXPECT_EQ(l.acquire(false, Deadline::never()), Acquire::acquired);
  l.release();
}

TEST(Lock, ForkChildSharesIt) {
  Lock l;
  l.acquire(true, Deadline::never());
  pid_t pid = ::fork();
  if (pid == 0) {
    // Blocks until the parent releases, then holds and exits normally.
    bool got = l.acquire(true, Deadline::after(10)) == Acquire::acquired;
    l.release();
    ::_exit(got ? 0 : 1);
  }
  std::this_thread::sleep_for(20ms);
  l.release();
  EXPECT_EQ(wait_child(pid), 0);
}

TEST(RLock, RecursionAndOwnership) {
  RLock r;
  EXPECT_EQ(r.acquire(true, Deadline::never()), Acquire::acquired);
  EXPECT_EQ(r.acquire(false, Deadline::never()), Acquire::acquired);
  EXPECT_EQ(r.depth(), 2u);
  EXPECT_TRUE(r.owned());
  std::thread([&] {
    EXPECT_FALSE(r.owned());
    EXPECT_THROW(r.release(), LockError);
    EXPECT_EQ(r.acquire(true, Deadline::after(0.03)), Acquire::failed);
  }).join();
  r.release();
  r.release();
  EXPECT_THROW(r.release(), LockError);
  EXPECT_EQ(r.depth(), 0u);
}

TEST(RLock, AKilledOwnerIsReplaced) {
  RLock r;
  pid_t pid = fork_holder([&] {
    r.acquire(true, Deadline::never());
    r.acquire(true, Deadline::never());
  });
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_child(pid), -SIGKILL);
  EXPECT_EQ(r.acquire(true, Deadline::after(5)), Acquire::abandoned);
  EXPECT_EQ(r.depth(), 1u);
  r.release();
}

TEST(Condition, NotifyWakesAWaiter) {
  Condition c(RLock{});
  std::atomic<bool> ready{false};
  std::atomic<bool> notified{false};
  std::thread waiter([&] {
    c.acquire(true, Deadline::never());
    ready = true;
    notified = c.wait(Deadline::after(10));
    c.release();
  });
  while (!ready) std::this_thread::sleep_for(1ms);
  c.acquire(true, Deadline::never());  // the waiter released it inside wait()
  c.notify(1);
  c.release();
  waiter.join();
  EXPECT_TRUE(notified);
}

TEST(Condition, WaitTimesOutAndKeepsTheLock) {
  Condition c(Lock{});
  c.acquire(true, Deadline::never());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.wait(Deadline::after(0.05)));
  EXPECT_GE(seconds_since(t0), 0.049);
  EXPECT_TRUE(std::get<Lock>(c.lock()).locked());
  c.release();
  EXPECT_THROW(c.wait(Deadline::after(0)), LockError);
  EXPECT_THROW(c.notify(1), LockError);
}

TEST(Condition, NotifyNWakesExactlyN) {
  Condition c(RLock{});
  std::atomic<int> woken{0}, waiting{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([&] {
      c.acquire(true, Deadline::never());
      ++waiting;
      if (c.wait(Deadline::after(1))) ++woken;
      c.release();
    });
  while (waiting < 3) std::this_thread::sleep_for(1ms);
  c.acquire(true, Deadline::never());
  c.notify(2);
  c.release();
  for (auto& t : ts) t.join();
  EXPECT_EQ(woken, 2);
}

TEST(Condition, InterruptedWaitStillReacquires) {
  Condition c(RLock{});
  std::atomic<StopFlag*> flag{nullptr};
  std::atomic<bool> interrupted{false}, held_after{false};
  std::thread waiter([&] {
    flag = &this_thread_stop_flag();
    c.acquire(true, Deadline::never());
    try {
      c.wait(Deadline::never());
    } catch (const Interrupted&) {
      interrupted = true;
      held_after = std::get<RLock>(c.lock()).owned();
    }
    c.release();
  });
  while (!flag) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(20ms);
  flag.load()->request();
  waiter.join();
  EXPECT_TRUE(interrupted);
  EXPECT_TRUE(held_after);
}

TEST(Semaphore, CountsAndBounds) {
  Semaphore s(2, true);
  EXPECT_EQ(s.acquire(false, Deadline::never()), Acquire::acquired);
  EXPECT_EQ(s.acquire(false, Deadline::never()), Acquire::acquired);
  EXPECT_EQ(s.acquire(true, Deadline::after(0.03)), Acquire::failed);
  s.release();
  s.release();
  EXPECT_THROW(s.release(), SemaphoreError);
  Semaphore u(0, false);
  u.release(3);
  EXPECT_EQ(u.value(), 3);
}

TEST(Semaphore, CountNeverOverflows) {
  constexpr std::int64_t kMax = INT64_MAX;
  Semaphore s(kMax - 1, false);
  s.release();
  EXPECT_EQ(s.value(), kMax);
  EXPECT_THROW(s.release(), SemaphoreError);
  EXPECT_EQ(s.value(), kMax);
  Semaphore one(1, false);
  EXPECT_THROW(one.release(kMax), SemaphoreError);
  EXPECT_EQ(one.value(), 1);
  Semaphore bounded(kMax, true);
  EXPECT_EQ(bounded.acquire(false, Deadline::never()), Acquire::acquired);
  EXPECT_THROW(bounded.release(2), SemaphoreError);
  EXPECT_EQ(bounded.value(), kMax - 1);
  bounded.release();
  EXPECT_EQ(bounded.value(), kMax);
}

TEST(Semaphore, UnitsOfAKilledHolderComeBack) {
  Semaphore s(1, false);
  pid_t pid = fork_holder([&] { s.acquire(true, Deadline::never()); });
  ASSERT_GT(pid, 0);
  ::kill(pid, SIGKILL);
  EXPECT_EQ(s.acquire(true, Deadline::after(5)), Acquire::abandoned);
  EXPECT_EQ(wait_child(pid), -SIGKILL);
  s.release();
  EXPECT_EQ(s.value(), 1);
}

TEST(Event, SetWaitClearAcrossFork) {
  Event e;
  EXPECT_FALSE(e.wait(Deadline::after(0.02)));
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(e.wait(Deadline::after(10)) ? 0 : 1);
  e.set();
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_TRUE(e.is_set());
  EXPECT_TRUE(e.wait(Deadline::after(0)));
  e.clear();
  EXPECT_FALSE(e.is_set());
}

TEST(Barrier, ReleasesAllPartiesWithDistinctIndexes) {
  Barrier b(3, std::nullopt);
  std::atomic<int> actions{0};
  std::atomic<unsigned> seen{0};
  std::vector<std::thread> ts;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 3; ++i)
      ts.emplace_back([&] {
        std::uint32_t idx = b.wait(std::nullopt, [&] {
          ++actions;
          return true;
        });
        seen |= 1u << idx;
      });
    for (auto& t : ts) t.join();
    ts.clear();
  }
  EXPECT_EQ(actions, 2);
  EXPECT_EQ(seen, 7u);
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, TimeoutBreaksAndResetRepairs) {
  Barrier b(2, 0.05);
  EXPECT_THROW(b.wait(std::nullopt, nullptr), BrokenBarrier);
  EXPECT_TRUE(b.broken());
  EXPECT_THROW(b.wait(1.0, nullptr), BrokenBarrier);
  b.reset();
  EXPECT_FALSE(b.broken());
  std::thread other([&] { b.wait(5.0, nullptr); });
  EXPECT_NO_THROW(b.wait(5.0, nullptr));
  other.join();
}

TEST(Barrier, AbortAndFailedActionBreakIt) {
  Barrier b(2, std::nullopt);
  std::atomic<bool> broke{false};
  std::thread waiter([&] {
    try {
      b.wait(10.0, nullptr);
    } catch (const BrokenBarrier&) {
      broke = true;
    }
  });
  while (b.n_waiting() == 0) std::this_thread::sleep_for(1ms);
  b.abort();
  waiter.join();
  EXPECT_TRUE(broke);
  b.reset();
  std::thread other([&] { EXPECT_THROW(b.wait(5.0, nullptr), BrokenBarrier); });
  while (b.n_waiting() == 0) std::this_thread::sleep_for(1ms);
  EXPECT_THROW(b.wait(5.0, [] { return false; }), BrokenBarrier);
  other.join();
}
