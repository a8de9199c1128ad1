#include "plua/core/process_id.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace plua::core {
namespace {

struct StatFields {
  char state = 0;
  std::uint64_t start_time = 0;
};

// Reads state (field 3) and start time (field 22) of /proc/<pid>/stat; false if gone.
bool read_stat(std::int32_t pid, StatFields& out) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (!p || p[1] != ' ') return false;
  p += 2;
  out.state = *p;
  // Skip fields 3..21 to reach field 22.
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (!p) return false;
    ++p;
  }
  out.start_time = std::strtoull(p, nullptr, 10);
  return true;
}

std::atomic<std::int32_t> g_cached_pid{0};
std::atomic<std::uint64_t> g_cached_start{0};

}  // namespace

ProcessId ProcessId::self() noexcept {
  std::int32_t pid = static_cast<std::int32_t>(::getpid());
  // getpid() is cheap; re-reading /proc only when it changed covers fork children.
  if (g_cached_pid.load(std::memory_order_acquire) != pid) {
    StatFields f;
    read_stat(pid, f);
    g_cached_start.store(f.start_time, std::memory_order_relaxed);
    g_cached_pid.store(pid, std::memory_order_release);
  }
  return ProcessId{pid, g_cached_start.load(std::memory_order_relaxed)};
}

bool ProcessId::alive() const noexcept {
  if (pid <= 0) return false;
  StatFields f;
  if (!read_stat(pid, f)) return false;
  if (f.state == 'Z' || f.state == 'X' || f.state == 'x') return false;
  return f.start_time == start_time;
}

std::int32_t this_thread_tid() noexcept {
  thread_local std::int32_t tid = 0;
  thread_local std::int32_t tid_pid = 0;
  std::int32_t pid = static_cast<std::int32_t>(::getpid());
  // A fork child's only thread has a new tid, though thread_locals were copied.
  if (tid == 0 || tid_pid != pid) {
    tid = static_cast<std::int32_t>(::syscall(SYS_gettid));
    tid_pid = pid;
  }
  return tid;
}

}  // namespace plua::core
