// The registry of children does not grow with the number of children a
// process has had: found by the pool_workers soak (a Pool replacing its
// workers kept one registry entry per worker ever started).
#include "plua/core/child_process.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

using namespace plua::core;

namespace {

// A child that exits at once, adopted, and waited for by its holder.
void start_and_reap_one() {
  pid_t pid = fork_process();
  if (pid == 0) _exit(0);
  auto c = ChildProcess::adopt(pid);
  ASSERT_EQ(c->wait(Deadline::after(30)), 0);
}

}  // namespace

TEST(ChildRegistry, ReapedChildrenDoNotAccumulate) {
  start_and_reap_one();
  std::size_t base = tracked_children();
  for (int i = 0; i < 200; ++i) start_and_reap_one();
  // The last one may still be listed until the next adoption.
  EXPECT_LE(tracked_children(), base + 1);
}

TEST(ChildRegistry, RunningAndUnreapedChildrenStayListed) {
  int gate[2];
  ASSERT_EQ(::pipe(gate), 0);
  pid_t pid = fork_process();
  if (pid == 0) {
    char c;
    ::close(gate[1]);
    [[maybe_unused]] ssize_t n = ::read(gate[0], &c, 1);  // until the parent closes its end
    _exit(3);
  }
  ::close(gate[0]);
  auto running = ChildProcess::adopt(pid);
  for (int i = 0; i < 20; ++i) start_and_reap_one();
  bool listed = false;
  for (auto& c : active_children()) listed = listed || c->pid() == pid;
  EXPECT_TRUE(listed) << "a running child is still an active child";
  ::close(gate[1]);
  EXPECT_EQ(running->wait(Deadline::after(30)), 3);
}
