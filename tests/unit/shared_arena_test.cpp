#include "plua/core/shared_arena.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "plua/core/cancel.hpp"
#include "plua/core/process_id.hpp"
#include "plua/core/shared_mutex.hpp"
#include "plua/core/shared_seq.hpp"

using namespace plua::core;
using namespace std::chrono_literals;

namespace {

// Waits for a child with a deadline; returns its exit code, or -signal.
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

struct Counter {
  std::atomic<int> value{0};
};

struct Destructible {
  explicit Destructible(int* d) : destroyed(d) {}
  ~Destructible() { ++*destroyed; }
  int* destroyed;  // test-local only: never followed from another process
};

struct Signal {
  SharedSeq seq;
  std::atomic<int> flag{0};
};

}  // namespace

TEST(SharedArena, AllocateFreeAndReuse) {
  auto before = shared_arena::blocks_in_use();
  void* a = shared_arena::allocate(100);
  void* b = shared_arena::allocate(100);
  EXPECT_NE(a, b);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 16, 0u);
  EXPECT_EQ(shared_arena::blocks_in_use(), before + 2);
  std::memset(a, 0xab, 100);
  shared_arena::deallocate(a);
  void* c = shared_arena::allocate(90);  // same size class: the freed block comes back
  EXPECT_EQ(a, c);
  shared_arena::deallocate(b);
  shared_arena::deallocate(c);
  EXPECT_EQ(shared_arena::blocks_in_use(), before);
}

TEST(SharedArena, LargeBlocksAndTooLarge) {
  void* big = shared_arena::allocate(1 << 20);
  std::memset(big, 1, 1 << 20);
  shared_arena::deallocate(big);
  void* again = shared_arena::allocate(1 << 20);
  EXPECT_EQ(big, again);
  EXPECT_EQ(static_cast<unsigned char*>(again)[200000], 0);  // pages were given back
  shared_arena::deallocate(again);
  EXPECT_THROW(shared_arena::allocate(std::size_t{8} << 30), SharedMemoryError);
}

TEST(SharedRef, CountsAndDestroysOnLastRelease) {
  int destroyed = 0;
  auto before = shared_arena::blocks_in_use();
  {
    auto r = SharedRef<Destructible>::make(&destroyed);
    EXPECT_EQ(shared_arena::ref_count(r.get()), 1u);
    {
      auto copy = r;
      EXPECT_EQ(shared_arena::ref_count(r.get()), 2u);
      auto moved = std::move(copy);
      EXPECT_FALSE(copy);
      EXPECT_EQ(shared_arena::ref_count(r.get()), 2u);
    }
    EXPECT_EQ(shared_arena::ref_count(r.get()), 1u);
    EXPECT_EQ(destroyed, 0);
    // A message in flight carries its own reference.
    SharedRefData d = r.ref_retained();
    EXPECT_EQ(shared_arena::ref_count(r.get()), 2u);
    auto received = SharedRef<Destructible>::adopt_ref(d);
    EXPECT_EQ(received.get(), r.get());
    EXPECT_EQ(shared_arena::ref_count(r.get()), 2u);
  }
  EXPECT_EQ(destroyed, 1);
  EXPECT_EQ(shared_arena::blocks_in_use(), before);
}

TEST(SharedRef, ResolveRejectsBadReferences) {
  auto r = SharedRef<Counter>::make();
  SharedRefData d = shared_arena::ref_to(r.get());
  SharedRefData out_of_bounds = d;
  out_of_bounds.offset = kArenaSize + 4096;
  EXPECT_THROW(shared_arena::resolve(out_of_bounds), SharedMemoryError);
  SharedRefData unknown = d;
  unknown.arena_id ^= 1;
  unknown.fd = 9999;
  EXPECT_THROW(shared_arena::resolve(unknown), SharedMemoryError);
  int not_shared = 0;
  EXPECT_THROW(shared_arena::ref_to(&not_shared), SharedMemoryError);
}

TEST(SharedRef, ForkChildSeesAndChangesTheSameMemory) {
  auto r = SharedRef<Counter>::make();
  r->value = 42;
  SharedRefData d = r.ref_retained();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto child = SharedRef<Counter>::adopt_ref(d);
    int code = child->value == 42 ? 0 : 1;
    child->value = 7;
    ::_exit(code);
  }
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_EQ(r->value, 7);
  shared_arena::release(r.get());  // the reference the child's copy carried
}

// Run by ForeignProcessResolvesThroughProc in a fresh process (exec of this binary).
TEST(SharedRefChild, ResolveForeign) {
  const char* env = std::getenv("PLUA_ARENA_TEST_REF");
  if (!env) GTEST_SKIP() << "only run as the child of ForeignProcessResolvesThroughProc";
  SharedRefData d;
  unsigned long long id = 0, offset = 0;
  ASSERT_EQ(std::sscanf(env, "%llu %d %d %llu", &id, &d.pid, &d.fd, &offset), 4);
  d.arena_id = id;
  d.offset = offset;
  auto r = SharedRef<Counter>::adopt_ref(d);
  EXPECT_EQ(r->value, 42);
  r->value = 43;
  // Resolving again maps nothing new: the same address comes back.
  shared_arena::retain(r.get());
  auto again = SharedRef<Counter>::adopt_ref(d);
  EXPECT_EQ(again.get(), r.get());
}

TEST(SharedRef, ForeignProcessResolvesThroughProc) {
  auto r = SharedRef<Counter>::make();
  r->value = 42;
  SharedRefData d = r.ref_retained();
  std::string env = std::to_string(d.arena_id) + " " + std::to_string(d.pid) + " " + std::to_string(d.fd) +
                    " " + std::to_string(d.offset);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("PLUA_ARENA_TEST_REF", env.c_str(), 1);
    ::execl("/proc/self/exe", "plua_unit_tests", "--gtest_filter=SharedRefChild.ResolveForeign", nullptr);
    ::_exit(127);
  }
  EXPECT_EQ(wait_child(pid, 30), 0);
  EXPECT_EQ(r->value, 43);
}

TEST(SharedMutex, RecoversFromAHolderKilledWhileHoldingIt) {
  auto m = SharedRef<SharedMutex>::make();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    m->lock();
    char c = 'x';
    if (::write(ready[1], &c, 1) != 1) ::_exit(2);
    ::pause();
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::close(ready[1]);
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_child(pid), -SIGKILL);
  EXPECT_TRUE(m->lock());  // the holder died: told so, and the mutex is ours
  m->unlock();
  EXPECT_FALSE(m->lock());
  m->unlock();
}

TEST(SharedSeq, WaitAndNotifyAcrossFork) {
  auto s = SharedRef<Signal>::make();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    bool got = wait_until(s->seq, Deadline::after(10), [&](bool) { return s->flag.load() == 1; });
    s->flag = 2;
    s->seq.notify_all();
    ::_exit(got ? 0 : 1);
  }
  s->flag = 1;
  s->seq.notify_all();
  EXPECT_TRUE(wait_until(s->seq, Deadline::after(10), [&](bool) { return s->flag.load() == 2; }));
  EXPECT_EQ(wait_child(pid), 0);
}

TEST(SharedSeq, TimesOut) {
  auto s = SharedRef<Signal>::make();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(wait_until(s->seq, Deadline::after(0.05), [&](bool) { return false; }));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 49ms);
  EXPECT_LT(took, 2s);
  EXPECT_FALSE(wait_until(s->seq, Deadline::after(0), [&](bool) { return false; }));
}

TEST(SharedSeq, SlowChecksComeAboutOncePerSlice) {
  auto s = SharedRef<Signal>::make();
  int slow = 0;
  wait_until(s->seq, Deadline::after(0.2), [&](bool is_slow) {
    slow += is_slow;
    return false;
  });
  EXPECT_GE(slow, 3);
  EXPECT_LE(slow, 12);
}

TEST(SharedSeq, StopFlagInterruptsAWait) {
  auto s = SharedRef<Signal>::make();
  std::atomic<StopFlag*> flag{nullptr};
  std::atomic<bool> interrupted{false};
  std::thread waiter([&] {
    flag = &this_thread_stop_flag();
    try {
      wait_until(s->seq, Deadline::after(10), [&](bool) { return false; });
    } catch (const Interrupted&) {
      interrupted = true;
    }
  });
  while (!flag.load()) std::this_thread::sleep_for(1ms);
  auto t0 = std::chrono::steady_clock::now();
  flag.load()->request();
  waiter.join();
  EXPECT_TRUE(interrupted);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST(ProcessId, SelfIsAliveAndAReapedChildIsNot) {
  ProcessId me = ProcessId::self();
  EXPECT_EQ(me.pid, ::getpid());
  EXPECT_TRUE(me.alive());
  ProcessId reused = me;
  reused.start_time += 1;  // same pid, another start: a reused pid
  EXPECT_FALSE(reused.alive());
  int gate[2];
  ASSERT_EQ(::pipe(gate), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ProcessId child = ProcessId::self();
    int ok = child.pid == ::getpid() && child.start_time != 0;
    if (::write(gate[1], &child, sizeof child) != sizeof child) ::_exit(2);
    ::_exit(ok ? 0 : 1);
  }
  ProcessId child;
  ASSERT_EQ(::read(gate[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  ::close(gate[0]);
  ::close(gate[1]);
  EXPECT_EQ(wait_child(pid), 0);
  EXPECT_FALSE(child.alive());
}

TEST(ProcessId, AZombieIsNotAlive) {
  int gate[2];
  ASSERT_EQ(::pipe(gate), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ProcessId child = ProcessId::self();
    if (::write(gate[1], &child, sizeof child) != sizeof child) ::_exit(2);
    ::_exit(0);
  }
  ProcessId child;
  ASSERT_EQ(::read(gate[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  ::close(gate[0]);
  ::close(gate[1]);
  EXPECT_EQ(child.pid, pid);
  siginfo_t info{};
  // Wait for the exit without reaping, so the child stays a zombie.
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT), 0);
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  EXPECT_EQ(::access(path, F_OK), 0);
  EXPECT_FALSE(child.alive());
  EXPECT_EQ(wait_child(pid), 0);
}
