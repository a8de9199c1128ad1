// The core spawner, communicator and reaper of the subprocess module.
#include "plua/core/subprocess.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "plua/core/communicator.hpp"
#include "plua/core/subprocess_reaper.hpp"
#include "plua/core/subprocess_run.hpp"

namespace plua::core {
namespace {

SpawnOptions sh(const std::string& script) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", script};
  return o;
}

// True while /proc shows pid as a child of ours (running or zombie).
bool is_our_child(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  char state = 0;
  long ppid = 0;
  if (close == std::string::npos || std::sscanf(line.c_str() + close + 2, "%c %ld", &state, &ppid) != 2) return false;
  return ppid == ::getpid();
}

TEST(Subprocess, ExitStatusAndSignal) {
  Subprocess ok = Subprocess::spawn(sh("exit 3"));
  EXPECT_EQ(ok.wait(Deadline::after(10)), 3);
  EXPECT_EQ(ok.returncode(), 3);

  Subprocess killed = Subprocess::spawn(sh("kill -9 $$"));
  EXPECT_EQ(killed.wait(Deadline::after(10)), -9);
}

TEST(Subprocess, MissingProgramIsAnErrorInTheParent) {
  SpawnOptions o;
  o.argv = {"plua-no-such-program"};
  try {
    Subprocess::spawn(o);
    FAIL() << "spawn succeeded";
  } catch (const SpawnError& e) {
    EXPECT_EQ(e.error_number(), ENOENT);
    EXPECT_EQ(e.filename(), "plua-no-such-program");
    EXPECT_STREQ(e.what(), "[Errno 2] No such file or directory: 'plua-no-such-program'");
  }
}

TEST(Subprocess, MissingDirectoryNamesTheDirectory) {
  SpawnOptions o = sh("true");
  o.cwd = "/plua/no/such/dir";
  try {
    Subprocess::spawn(o);
    FAIL() << "spawn succeeded";
  } catch (const SpawnError& e) {
    EXPECT_EQ(e.error_number(), ENOENT);
    EXPECT_EQ(e.filename(), "/plua/no/such/dir");
  }
}

TEST(Subprocess, NonExecutableIsPermissionError) {
  char path[] = "/tmp/plua-noexec-XXXXXX";
  int fd = ::mkstemp(path);  // mode 0600: not executable, even for root
  ASSERT_GE(fd, 0);
  ::close(fd);
  SpawnOptions o;
  o.argv = {path};
  try {
    Subprocess::spawn(o);
    FAIL() << "spawn succeeded";
  } catch (const SpawnError& e) {
    EXPECT_EQ(e.error_number(), EACCES);
  }
  ::unlink(path);
}

TEST(Subprocess, WaitTimesOutThenSignalEndsIt) {
  Subprocess child = Subprocess::spawn(sh("exec sleep 30"));
  EXPECT_EQ(child.wait(Deadline::after(0.05)), std::nullopt);
  EXPECT_EQ(child.poll(), std::nullopt);
  child.send_signal(SIGTERM);
  EXPECT_EQ(child.wait(Deadline::after(10)), -SIGTERM);
  child.send_signal(SIGTERM);  // reaped: a no-op, never a stray signal
}

TEST(Subprocess, WaitIsInterruptible) {
  Subprocess child = Subprocess::spawn(sh("exec sleep 30"));
  this_thread_stop_flag().request();
  EXPECT_THROW(child.wait(Deadline::never()), Interrupted);
  child.send_signal(SIGKILL);
  EXPECT_EQ(child.wait(Deadline::after(10)), -SIGKILL);
}

TEST(Subprocess, EnvironmentReplacesTheParents) {
  SpawnOptions o = sh("printf '%s|%s' \"$PLUA_X\" \"$HOME\"");
  o.env = std::vector<std::string>{"PLUA_X=42", "PATH=/usr/bin:/bin"};
  o.stdout_ = StdioSpec::pipe();
  RunResult r = run_subprocess(o, std::nullopt, Deadline::after(10));
  EXPECT_EQ(r.output, "42|");
}

TEST(Subprocess, StderrToStdoutAndDevNull) {
  SpawnOptions o = sh("echo out; echo err >&2");
  o.stdout_ = StdioSpec::pipe();
  o.stderr_ = StdioSpec::stdout_();
  EXPECT_EQ(run_subprocess(o, std::nullopt, Deadline::after(10)).output, "out\nerr\n");
  o.stderr_ = StdioSpec::devnull();
  EXPECT_EQ(run_subprocess(o, std::nullopt, Deadline::after(10)).output, "out\n");
}

TEST(Subprocess, NoParentDescriptorLeaksIntoTheChild) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);  // deliberately not close-on-exec
  SpawnOptions o;
  o.argv = {"ls", "/proc/self/fd"};
  o.stdout_ = StdioSpec::pipe();
  RunResult r = run_subprocess(o, std::nullopt, Deadline::after(10));
  ::close(fds[0]);
  ::close(fds[1]);
  // 0, 1, 2 and the directory ls itself has open to list.
  EXPECT_EQ(r.output, "0\n1\n2\n3\n");
}

TEST(Subprocess, BlockedSignalsAreNotInherited) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  SpawnOptions o = sh("grep SigBlk /proc/self/status");
  o.stdout_ = StdioSpec::pipe();
  RunResult r = run_subprocess(o, std::nullopt, Deadline::after(10));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  EXPECT_EQ(r.output, "SigBlk:\t0000000000000000\n");
}

TEST(Communicator, LargeDataBothWaysDoesNotDeadlock) {
  std::string input(8 * 1024 * 1024, 'x');
  for (std::size_t i = 0; i < input.size(); i += 4099) input[i] = static_cast<char>('a' + i % 26);
  SpawnOptions o = sh("tee /dev/stderr");
  o.stdin_ = o.stdout_ = o.stderr_ = StdioSpec::pipe();
  RunResult r = run_subprocess(o, input, Deadline::after(60));
  EXPECT_EQ(r.returncode, 0);
  EXPECT_TRUE(r.output == input);
  EXPECT_TRUE(r.errors == input);
}

TEST(Communicator, TimeoutKeepsWhatWasReadAndResumes) {
  SpawnOptions o = sh("echo first; read line; echo \"got $line\"");
  o.stdin_ = o.stdout_ = StdioSpec::pipe();
  Subprocess child = Subprocess::spawn(o);
  Communicator comm;
  // No input given yet would close stdin; feed it by hand instead.
  bool done = comm.run(-1, child.stdout_pipe().get(), -1, Deadline::after(0.2), {});
  EXPECT_FALSE(done);
  EXPECT_EQ(comm.output(), "first\n");
  ASSERT_EQ(::write(child.stdin_pipe().get(), "x\n", 2), 2);
  child.stdin_pipe().reset();
  done = comm.run(-1, child.stdout_pipe().get(), -1, Deadline::after(10),
                  [&](Communicator::Stream s) { EXPECT_EQ(s, Communicator::kStdout); child.stdout_pipe().reset(); });
  EXPECT_TRUE(done);
  EXPECT_EQ(comm.output(), "first\ngot x\n");
  EXPECT_EQ(child.wait(Deadline::after(10)), 0);
}

TEST(Communicator, ChildThatClosesStdinEarlyIsNotAnError) {
  SpawnOptions o = sh("exec 0<&-; echo done");
  o.stdin_ = o.stdout_ = StdioSpec::pipe();
  RunResult r = run_subprocess(o, std::string(4 * 1024 * 1024, 'y'), Deadline::after(10));
  EXPECT_EQ(r.output, "done\n");
}

TEST(SubprocessRun, TimeoutKillsAndReapsTheChild) {
  SpawnOptions o = sh("echo partial; exec sleep 30");
  o.stdout_ = StdioSpec::pipe();
  auto start = std::chrono::steady_clock::now();
  try {
    run_subprocess(o, std::nullopt, Deadline::after(0.3));
    FAIL() << "no timeout";
  } catch (const SubprocessTimeout& e) {
    EXPECT_EQ(e.output, "partial\n");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(SubprocessReaper, DroppedRunningChildIsReaped) {
  pid_t pid;
  {
    Subprocess child = Subprocess::spawn(sh("exec sleep 0.2"));
    pid = child.pid();
  }
  EXPECT_TRUE(is_our_child(pid));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (is_our_child(pid) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(is_our_child(pid));
  while (reaper_pending() != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(reaper_pending(), 0u);
}

TEST(Subprocess, SpawnFromManyThreadsAtOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&good, t] {
      for (int i = 0; i < 20; ++i) {
        SpawnOptions o = sh("echo " + std::to_string(t * 100 + i));
        o.stdout_ = StdioSpec::pipe();
        if (run_subprocess(o, std::nullopt, Deadline::after(30)).output == std::to_string(t * 100 + i) + "\n") ++good;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), 80);
}

}  // namespace
}  // namespace plua::core
