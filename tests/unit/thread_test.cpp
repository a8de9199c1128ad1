#include "plua/core/thread.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <pthread.h>
#include <set>
#include <thread>
#include <sys/wait.h>
#include <unistd.h>

using namespace plua::core;
using namespace std::chrono_literals;

namespace {

// A latch the tests use to hold a body until they let it go.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void release() {
    std::lock_guard g(mu);
    open = true;
    cv.notify_all();
  }
  bool wait(double seconds) {
    std::unique_lock lock(mu);
    return wait_until(cv, lock, Deadline::after(seconds), [&] { return open; });
  }
};

bool contains(const std::vector<std::shared_ptr<Thread>>& v, const std::shared_ptr<Thread>& t) {
  return std::find(v.begin(), v.end(), t) != v.end();
}

}  // namespace

TEST(Thread, RunsTheBodyAndJoins) {
  std::atomic<int> ran{0};
  auto t = Thread::create({});
  EXPECT_FALSE(t->started());
  EXPECT_FALSE(t->ident().has_value());
  t->start([&] { ran = 1; });
  EXPECT_TRUE(t->join(Deadline::after(10)));
  EXPECT_EQ(ran.load(), 1);
  EXPECT_TRUE(t->finished());
  EXPECT_FALSE(t->is_alive());
}

TEST(Thread, DefaultNamesCountUp) {
  auto a = Thread::create({});
  auto b = Thread::create({});
  ASSERT_EQ(a->name().rfind("Thread-", 0), 0u);
  int na = std::stoi(a->name().substr(7)), nb = std::stoi(b->name().substr(7));
  EXPECT_EQ(nb, na + 1);
  auto c = Thread::create({"worker", true});
  EXPECT_EQ(c->name(), "worker");
  EXPECT_TRUE(c->daemon());
  c->set_name("renamed");
  EXPECT_EQ(c->name(), "renamed");
}

TEST(Thread, StartTwiceIsAnError) {
  auto t = Thread::create({});
  t->start([] {});
  EXPECT_THROW(t->start([] {}), std::logic_error);
  EXPECT_TRUE(t->join(Deadline::after(10)));
}

TEST(Thread, JoinBeforeStartIsAnError) {
  auto t = Thread::create({});
  EXPECT_THROW(t->join(Deadline::after(0)), std::logic_error);
}

TEST(Thread, JoinTimesOutWhileTheBodyRuns) {
  Gate gate;
  auto t = Thread::create({});
  t->start([&] { gate.wait(30); });
  EXPECT_TRUE(t->is_alive());
  EXPECT_FALSE(t->join(Deadline::after(0.02)));
  EXPECT_TRUE(t->is_alive());
  gate.release();
  EXPECT_TRUE(t->join(Deadline::after(10)));
}

TEST(Thread, JoiningItselfIsAnError) {
  auto t = Thread::create({});
  std::atomic<int> threw{0};
  std::shared_ptr<Thread> seen;
  t->start([&] {
    seen = Thread::current();
    try {
      Thread::current()->join(Deadline::after(0));
    } catch (const std::logic_error&) {
      threw = 1;
    }
  });
  ASSERT_TRUE(t->join(Deadline::after(10)));
  EXPECT_EQ(threw.load(), 1);
  EXPECT_EQ(seen, t);
}

TEST(Thread, JoinIsInterruptible) {
  Gate gate;
  auto t = Thread::create({});
  t->start([&] { gate.wait(30); });
  this_thread_stop_flag().request();
  EXPECT_THROW(t->join(Deadline::never()), Interrupted);
  gate.release();
  EXPECT_TRUE(t->join(Deadline::after(10)));
}

TEST(Thread, IdentsAndNativeIds) {
  std::atomic<std::uint64_t> ident{0};
  std::atomic<std::int64_t> tid{0};
  auto t = Thread::create({});
  t->start([&] {
    ident = Thread::current_ident();
    tid = static_cast<std::int64_t>(gettid());
  });
  ASSERT_TRUE(t->join(Deadline::after(10)));
  EXPECT_EQ(t->ident().value(), ident.load());
  EXPECT_EQ(t->native_id().value(), tid.load());
  EXPECT_NE(tid.load(), static_cast<std::int64_t>(getpid()));
}

TEST(Thread, MainThreadIsTheProcessMainThread) {
  // gtest runs tests on the main thread.
  auto m = Thread::main_thread();
  EXPECT_EQ(m->name(), "MainThread");
  EXPECT_TRUE(m->is_alive());
  EXPECT_EQ(Thread::current(), m);
  EXPECT_EQ(m->ident().value(), Thread::current_ident());
  EXPECT_EQ(m->native_id().value(), static_cast<std::int64_t>(getpid()));
  EXPECT_THROW(m->join(Deadline::after(0)), std::logic_error);
  EXPECT_FALSE(Thread::in_started_thread());
}

TEST(Thread, EnumerateAndActiveCount) {
  Gate gate;
  std::size_t before = Thread::active_count();
  auto t = Thread::create({});
  t->start([&] { gate.wait(30); });
  auto all = Thread::enumerate();
  EXPECT_EQ(all.front(), Thread::main_thread());
  EXPECT_TRUE(contains(all, t));
  EXPECT_EQ(Thread::active_count(), before + 1);
  gate.release();
  ASSERT_TRUE(t->join(Deadline::after(10)));
  EXPECT_FALSE(contains(Thread::enumerate(), t));
  EXPECT_EQ(Thread::active_count(), before);
}

TEST(Thread, ForeignThreadsAreDummies) {
  std::shared_ptr<Thread> dummy;
  bool in_enumerate = false;
  std::thread foreign([&] {
    dummy = Thread::current();
    in_enumerate = contains(Thread::enumerate(), dummy);
  });
  foreign.join();
  ASSERT_TRUE(dummy);
  EXPECT_EQ(dummy->name().rfind("Dummy-", 0), 0u);
  EXPECT_TRUE(dummy->daemon());
  EXPECT_TRUE(in_enumerate);
  EXPECT_FALSE(contains(Thread::enumerate(), dummy));  // gone with its OS thread
}

TEST(Thread, OutcomeIsKeptUntilRead) {
  auto t = Thread::create({});
  EXPECT_FALSE(t->outcome().has_value());
  t->start([&] { Thread::current()->set_outcome({false, "v", "boom", "trace"}); });
  ASSERT_TRUE(t->join(Deadline::after(10)));
  auto out = t->outcome();
  ASSERT_TRUE(out.has_value());
  EXPECT_FALSE(out->ok);
  EXPECT_EQ(out->values, "v");
  EXPECT_EQ(out->message, "boom");
  EXPECT_EQ(out->traceback, "trace");
}

TEST(Thread, AnExceptionFromTheBodyBecomesTheOutcome) {
  auto t = Thread::create({});
  t->start([] { throw std::runtime_error("bad body"); });
  ASSERT_TRUE(t->join(Deadline::after(10)));
  EXPECT_FALSE(t->outcome()->ok);
  EXPECT_EQ(t->outcome()->message, "bad body");
}

TEST(Thread, CancelWakesAWaitingBody) {
  std::atomic<int> fired{-1};
  auto t = Thread::create({"timer", false, true});
  EXPECT_TRUE(t->is_timer());
  t->start([&] { fired = Thread::current()->wait_cancelled(Deadline::after(30)) ? 0 : 1; });
  t->cancel();
  ASSERT_TRUE(t->join(Deadline::after(10)));
  EXPECT_EQ(fired.load(), 0);
  EXPECT_TRUE(t->cancelled());
  auto u = Thread::create({});
  EXPECT_FALSE(u->wait_cancelled(Deadline::after(0.01)));
}

TEST(Thread, BodiesBlockSigint) {
  std::atomic<int> blocked{-1};
  auto t = Thread::create({});
  t->start([&] {
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    blocked = sigismember(&mask, SIGINT);
  });
  ASSERT_TRUE(t->join(Deadline::after(10)));
  EXPECT_EQ(blocked.load(), 1);
}

TEST(Thread, OsThreadsAreReusedAndStopFlagsStartClear) {
  // A stale stop request must not leak into the next body on the same OS thread.
  std::set<std::int64_t> tids;
  for (int i = 0; i < 50; ++i) {
    std::atomic<bool> clear{false};
    auto t = Thread::create({});
    t->start([&] {
      clear = !this_thread_stop_flag().requested();
      this_thread_stop_flag().request();
    });
    ASSERT_TRUE(t->join(Deadline::after(10)));
    EXPECT_TRUE(clear.load());
    tids.insert(t->native_id().value());
  }
  EXPECT_LT(tids.size(), 50u);
}

namespace {
// What the park hook test's hook leaves behind: per OS thread, and in total.
thread_local int tl_park_marks = 0;
std::atomic<int> g_park_runs{0};
}  // namespace

TEST(Thread, ParkHookRunsOnTheWorkerAfterTheBodyAndBeforeTheNext) {
  Thread::set_park_hook([]() noexcept {
    ++tl_park_marks;
    g_park_runs.fetch_add(1);
  });
  int runs_before = g_park_runs.load();
  std::atomic<int> marks_first{-1}, marks_second{-1};
  std::atomic<std::int64_t> tid_first{0}, tid_second{0};
  auto first = Thread::create({});
  first->start([&] {
    marks_first = tl_park_marks;
    tid_first = Thread::current()->native_id().value_or(0);
  });
  ASSERT_TRUE(first->join(Deadline::after(10)));
  // The hook runs after the joiner was released: wait for it, with a deadline.
  auto deadline = Deadline::after(10);
  while (g_park_runs.load() == runs_before && !deadline.expired()) std::this_thread::sleep_for(1ms);
  ASSERT_GT(g_park_runs.load(), runs_before);
  auto second = Thread::create({});
  second->start([&] {
    marks_second = tl_park_marks;
    tid_second = Thread::current()->native_id().value_or(0);
  });
  ASSERT_TRUE(second->join(Deadline::after(10)));
  Thread::set_park_hook(nullptr);
  // The most recently parked worker is reused first, so the second body ran
  // where the hook had just run for the first.
  ASSERT_EQ(tid_first.load(), tid_second.load());
  EXPECT_EQ(marks_second.load(), marks_first.load() + 1);
}

TEST(Thread, JoinNonDaemonWaitsForEveryNonDaemon) {
  Gate gate;
  std::atomic<int> done{0};
  auto a = Thread::create({});
  auto d = Thread::create({"daemon", true});
  a->start([&] {
    gate.wait(30);
    done = 1;
  });
  d->start([&] { gate.wait(30); });
  EXPECT_FALSE(Thread::join_non_daemon(Deadline::after(0.02), 0));
  gate.release();
  EXPECT_TRUE(Thread::join_non_daemon(Deadline::after(10), 0));
  EXPECT_EQ(done.load(), 1);
  EXPECT_TRUE(d->join(Deadline::after(10)));
}

TEST(Thread, JoinNonDaemonWaitsOnlyForItsGroupAndTheUngrouped) {
  Gate gate;
  std::uint64_t mine = Thread::new_group();
  std::uint64_t other = Thread::new_group();
  ASSERT_NE(mine, other);
  Thread::Options theirs;
  theirs.group = other;
  auto t = Thread::create(theirs);
  t->start([&] { gate.wait(30); });
  EXPECT_TRUE(Thread::join_non_daemon(Deadline::after(10), mine));  // another group's thread is not waited for
  EXPECT_FALSE(Thread::join_non_daemon(Deadline::after(0.02), other));
  EXPECT_TRUE(Thread::join_non_daemon(Deadline::after(10), 0));  // nor is it an ungrouped one
  gate.release();
  EXPECT_TRUE(Thread::join_non_daemon(Deadline::after(10), other));
}

TEST(Thread, ManyConcurrentThreads) {
  std::atomic<int> count{0};
  std::vector<std::shared_ptr<Thread>> ts;
  for (int i = 0; i < 64; ++i) {
    ts.push_back(Thread::create({}));
    ts.back()->start([&] { count.fetch_add(1); });
  }
  for (auto& t : ts) EXPECT_TRUE(t->join(Deadline::after(10)));
  EXPECT_EQ(count.load(), 64);
}

TEST(Thread, ForkChildStartsClean) {
  // In the child only the forking thread exists: the registry and the parked
  // OS threads of the parent must not be believed there.
  Gate gate;
  auto parked = Thread::create({});
  parked->start([] {});
  ASSERT_TRUE(parked->join(Deadline::after(10)));  // leaves a parked worker
  auto busy = Thread::create({});
  busy->start([&] { gate.wait(30); });
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    bool ok = Thread::active_count() == 1 && !busy->is_alive() && Thread::current() == Thread::main_thread();
#ifndef __SANITIZE_THREAD__  // TSan cannot start threads after a multi-threaded fork
    std::atomic<int> ran{0};
    auto t = Thread::create({});
    t->start([&] { ran = 1; });
    ok = ok && t->join(Deadline::after(10)) && ran.load() == 1;
#endif
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(busy->is_alive());
  gate.release();
  EXPECT_TRUE(busy->join(Deadline::after(10)));
}
