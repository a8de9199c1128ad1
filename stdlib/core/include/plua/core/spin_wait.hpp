// Polling briefly before blocking. On an idle virtual machine a thread that
// blocks lets its vCPU halt, and waking a halted vCPU costs tens of
// microseconds: more than the whole wait when the awaited event is near (a
// short thread's end, the next start() on a parked thread).
//
// Thread-safety: spin_until only runs the caller's predicate.
#pragma once

#include <sched.h>

#include <chrono>
#include <thread>

namespace plua::core {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `ready` for up to `budget`, true as soon as it holds. The CPU is
// yielded between rounds, so under load the thread being waited for can run
// here; with a single CPU there is nothing to wait for by spinning, and
// `ready` is checked once.
template <class Ready>
bool spin_until(Ready ready, std::chrono::nanoseconds budget) {
  if (ready()) return true;
  static const bool several_cpus = std::thread::hardware_concurrency() > 1;
  if (!several_cpus) return false;
  auto end = std::chrono::steady_clock::now() + budget;
  do {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      cpu_relax();
    }
    sched_yield();
  } while (std::chrono::steady_clock::now() < end);
  return ready();
}

}  // namespace plua::core
