#include "plua/core/child_process.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <thread>

using namespace plua::core;
using namespace std::chrono_literals;

TEST(ChildProcess, ExitcodeOfAnExitAndOfASignal) {
  pid_t pid = fork_process();
  if (pid == 0) _exit(7);
  auto c = ChildProcess::adopt(pid);
  EXPECT_EQ(c->pid(), pid);
  EXPECT_EQ(c->wait(Deadline::after(10)), 7);
  EXPECT_EQ(c->poll(), 7);
  EXPECT_EQ(c->pidfd(), -1) << "reaped: the pidfd is closed";
  c->send_signal(SIGKILL);  // harmless once reaped

  pid = fork_process();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  auto k = ChildProcess::adopt(pid);
  EXPECT_EQ(k->poll(), std::nullopt);
  EXPECT_EQ(k->wait(Deadline::after(0.05)), std::nullopt);
  k->send_signal(SIGKILL);
  EXPECT_EQ(k->wait(Deadline::after(10)), -SIGKILL);
}

TEST(ChildProcess, WaitIsInterruptible) {
  pid_t pid = fork_process();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  auto c = ChildProcess::adopt(pid);
  StopFlag& flag = this_thread_stop_flag();
  std::thread asker([&] {
    std::this_thread::sleep_for(30ms);
    flag.request();
  });
  EXPECT_THROW(c->wait(Deadline::never()), Interrupted);
  asker.join();
  c->send_signal(SIGKILL);
  EXPECT_EQ(c->wait(Deadline::after(10)), -SIGKILL);
}

TEST(ChildProcess, ActiveChildrenReapsEndedOnes) {
  pid_t pid = fork_process();
  if (pid == 0) _exit(0);
  {
    auto c = ChildProcess::adopt(pid);
    (void)c;
  }
  // The handle is gone; the registry still reaps the child.
  for (int i = 0; i < 1000 && !active_children().empty(); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(active_children().empty());
  EXPECT_EQ(::kill(pid, 0), -1) << "no zombie left";
}

TEST(ChildProcess, ForkChildDoesNotOwnItsSiblings) {
  pid_t sibling = fork_process();
  if (sibling == 0) {
    pause();
    _exit(0);
  }
  auto s = ChildProcess::adopt(sibling);
  pid_t pid = fork_process();
  if (pid == 0) {
    bool ok = !s->owned_by_this_process() && s->pidfd() == -1 && active_children().empty();
    try {
      s->poll();
      ok = false;
    } catch (const std::logic_error&) {
    }
    _exit(ok ? 0 : 1);
  }
  auto c = ChildProcess::adopt(pid);
  EXPECT_EQ(c->wait(Deadline::after(10)), 0);
  s->send_signal(SIGKILL);
  EXPECT_EQ(s->wait(Deadline::after(10)), -SIGKILL);
}
