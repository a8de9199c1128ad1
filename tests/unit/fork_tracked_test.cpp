#include "plua/core/fork_tracked.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <optional>
#include <thread>
#include <variant>

#include "plua/core/cancel.hpp"
#include "plua/core/child_process.hpp"
#include "plua/core/shared_arena.hpp"

using namespace plua::core;
using namespace std::chrono_literals;

namespace {

struct Cell {
  std::atomic<int> value{0};
};

using Tracked = ForkTracked<SharedRef<Cell>>;

// Waits for a child with a deadline; returns its exit code, or -signal.
int wait_child(pid_t pid, double seconds = 20) {
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

std::uint32_t count(const Tracked& t) { return shared_arena::ref_count(t.body().get()); }

}  // namespace

TEST(ForkTracked, ListedWhileAlive) {
  std::size_t before = fork_tracked::listed();
  {
    Tracked a(SharedRef<Cell>::make());
    Tracked b(SharedRef<Cell>::make());
    EXPECT_EQ(fork_tracked::listed(), before + 2);
    b.reset();
    EXPECT_FALSE(b.body());
    EXPECT_EQ(fork_tracked::listed(), before + 2);  // an empty holder stays listed until destroyed
  }
  EXPECT_EQ(fork_tracked::listed(), before);
}

TEST(ForkTracked, TakeHandsTheReferenceOver) {
  auto blocks = shared_arena::blocks_in_use();
  Tracked t(SharedRef<Cell>::make());
  SharedRef<Cell> r = t.take();
  EXPECT_FALSE(t.body());
  EXPECT_EQ(shared_arena::ref_count(r.get()), 1u);
  r.reset();
  EXPECT_EQ(shared_arena::blocks_in_use(), blocks);
}

// The reported crash: each child drops what it inherited; the parent's
// object must survive all of them with its count intact.
TEST(ForkTracked, ChildrenThatDropInheritedHoldersLeaveTheParentsCount) {
  Tracked t(SharedRef<Cell>::make());
  t.body()->value = 5;
  for (int i = 0; i < 3; ++i) {
    pid_t pid = fork_process();
    if (pid == 0) {
      int rc = count(t) == 2 ? 0 : 10;  // the parent's count and the child's own
      t.body()->value.fetch_add(1);
      t.reset();
      std::_Exit(rc);
    }
    ASSERT_EQ(wait_child(pid), 0);
    EXPECT_EQ(count(t), 1u);
  }
  EXPECT_EQ(t.body()->value.load(), 8);
}

TEST(ForkTracked, ExitHooksReleaseWhatTheChildDidNotDestroy) {
  Tracked t(SharedRef<Cell>::make());
  // A holder nobody in the child will destroy (a Lua state of another thread).
  auto* orphan = new Tracked(t.body());
  EXPECT_EQ(count(t), 2u);
  pid_t pid = fork_process();
  if (pid == 0) {
    int rc = count(t) == 4 ? 0 : 10;
    run_fork_child_exit_hooks();
    if (orphan->body() || t.body()) rc = 11;
    std::_Exit(rc);
  }
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_EQ(count(t), 2u);
  delete orphan;
  EXPECT_EQ(count(t), 1u);
}

TEST(ForkTracked, ExitInAForkChildReleases) {
  Tracked t(SharedRef<Cell>::make());
  pid_t pid = fork_process();
  if (pid == 0) std::exit(count(t) == 2 ? 0 : 10);
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_EQ(count(t), 1u);
}

TEST(ForkTracked, GrandchildrenCountTheirOwn) {
  Tracked t(SharedRef<Cell>::make());
  pid_t pid = fork_process();
  if (pid == 0) {
    pid_t inner = fork_process();
    if (inner == 0) {
      int rc = count(t) == 3 ? 0 : 10;
      t.reset();
      std::_Exit(rc);
    }
    int rc = wait_child(inner) == 0 && count(t) == 2 ? 0 : 12;
    run_fork_child_exit_hooks();
    std::_Exit(rc);
  }
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_EQ(count(t), 1u);
}

TEST(ForkTracked, AFailedForkGivesTheChildsCountsBack) {
  Tracked t(SharedRef<Cell>::make());
  ForkTracked<std::optional<SharedRef<Cell>>> copy(t.body());
  fork_tracked::before_fork();
  EXPECT_EQ(count(t), 4u);  // two holders, each retained once more for the child
  fork_tracked::after_fork_parent(true);
  EXPECT_EQ(count(t), 2u);
}

TEST(ForkTracked, BodiesOfSeveralReferences) {
  using Pair = std::variant<std::monostate, SharedRef<Cell>, std::pair<SharedRef<Cell>, SharedRef<Cell>>>;
  auto a = SharedRef<Cell>::make();
  auto b = SharedRef<Cell>::make();
  ForkTracked<Pair> t(Pair(std::in_place_index<2>, a, b));
  pid_t pid = fork_process();
  if (pid == 0) {
    int rc = shared_arena::ref_count(a.get()) == 3 && shared_arena::ref_count(b.get()) == 3 ? 0 : 10;
    t.reset();
    std::_Exit(rc);
  }
  ASSERT_EQ(wait_child(pid), 0);
  EXPECT_EQ(shared_arena::ref_count(a.get()), 2u);
  EXPECT_EQ(shared_arena::ref_count(b.get()), 2u);
  t.reset();
  EXPECT_TRUE(std::holds_alternative<std::monostate>(t.body()));
  EXPECT_EQ(shared_arena::ref_count(a.get()), 1u);
}
