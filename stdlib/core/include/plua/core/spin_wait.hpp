// Polling briefly before blocking. On an idle virtual machine a thread that
// blocks lets its vCPU halt, and waking a halted vCPU costs tens of
// microseconds: more than the whole wait when the awaited event is near (a
// short thread's end, the next start() on a parked thread).
//
// Thread-safety: spin_until only runs the caller's predicate.
#pragma once

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

// Polls `ready` for up to `budget`, true as soon as it holds. It never
// yields the CPU: under load a sched_yield() hands it to a busy process for a
// whole time slice (milliseconds), far longer than the wait. With a single
// CPU there is nothing to wait for by spinning, and `ready` is checked once.
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
  } while (std::chrono::steady_clock::now() < end);
  return ready();
}

// The memory of one waiting site's spins: a spin that comes up empty (the
// awaited event was far, or the CPUs are contended and spinning only takes
// time from what is waited for) makes the next 1, 3, 7, ... up to 63 waits at
// that site block at once; one that succeeds restores spinning.
// Thread-safety: one object per waiting thread (or guarded by the caller).
class SpinBackoff {
 public:
  // Whether this wait may spin; false (counting it) while empty spins say block at once.
  bool may_spin() noexcept {
    if (skip_ == 0) return true;
    --skip_;
    return false;
  }
  void found() noexcept { backoff_ = 0; }
  void came_up_empty() noexcept {
    backoff_ = backoff_ >= kMaxSkip ? kMaxSkip : backoff_ * 2 + 1;
    skip_ = backoff_;
  }

 private:
  static constexpr unsigned kMaxSkip = 63;
  unsigned skip_ = 0;
  unsigned backoff_ = 0;
};

// spin_until with a SpinBackoff, for one waiting site.
// Thread-safety: one object per waiting thread (or guarded by the caller).
class AdaptiveSpin {
 public:
  template <class Ready>
  bool until(Ready ready, std::chrono::nanoseconds budget) {
    if (!backoff_.may_spin()) return ready();
    if (spin_until(ready, budget)) {
      backoff_.found();
      return true;
    }
    backoff_.came_up_empty();
    return false;
  }

 private:
  SpinBackoff backoff_;
};

}  // namespace plua::core
