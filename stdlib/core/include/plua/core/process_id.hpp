// Which process is which, robustly: a pid plus the process's start time, so a
// pid the kernel has reused for a new process is not taken for the old one.
#pragma once

#include <cstdint>

namespace plua::core {

// The identity of a process, as stored in shared memory by lock owners.
struct ProcessId {
  std::int32_t pid = 0;
  // Start time in clock ticks after boot (field 22 of /proc/<pid>/stat).
  std::uint64_t start_time = 0;

  // The calling process (recomputed after fork).
  static ProcessId self() noexcept;
  // True while the process runs; false once it has exited, even as an unreaped
  // zombie, and false if its pid now belongs to another process.
  bool alive() const noexcept;
  friend bool operator==(const ProcessId&, const ProcessId&) = default;
};

// The calling thread's kernel thread id (gettid).
std::int32_t this_thread_tid() noexcept;

}  // namespace plua::core
