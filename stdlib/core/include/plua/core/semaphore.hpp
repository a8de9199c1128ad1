// Semaphore and BoundedSemaphore (Python's threading names) in process-shared
// memory.
//
// Robustness: units are accounted to the process that acquired them until
// that process releases (a table of kHolderSlots processes; more holders are
// simply not tracked). When a waiter finds the count at zero and a holder
// process gone, it takes that process's units back (Acquire::abandoned).
// Consequence, documented for users: a process that acquires units meant to be
// consumed for good (signal style, released by someone else) and then ends
// gives them back to later waiters; use an Event or a Queue for signalling
// between processes.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "plua/core/lock.hpp"

namespace plua::core {

// Python's ValueError for a bounded semaphore released too many times, or a
// count that would overflow.
class SemaphoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr int kHolderSlots = 16;

struct SemaphoreHolder {
  ProcessId process;
  std::int64_t units = 0;  // 0: slot free
};

struct SemaphoreState {
  SemaphoreState(std::int64_t v, bool b) noexcept : value(v), initial(v), bounded(b) {}
  SharedMutex mu;
  SharedSeq seq;  // bumped on every release
  std::int64_t value;    // guarded by mu
  std::int64_t initial;  // the bound of a BoundedSemaphore
  bool bounded;
  SemaphoreHolder holders[kHolderSlots];  // guarded by mu
};

class Semaphore {
 public:
  // value >= 0 (checked by the caller).
  Semaphore(std::int64_t value, bool bounded) : s_(SharedRef<SemaphoreState>::make(value, bounded)) {}
  explicit Semaphore(SharedRef<SemaphoreState> s) noexcept : s_(std::move(s)) {}

  Acquire acquire(bool blocking, const Deadline& deadline);
  // Adds n units (n >= 1); throws SemaphoreError past a bounded semaphore's
  // initial value, or when the count would pass INT64_MAX (nothing is added).
  void release(std::int64_t n = 1);
  std::int64_t value() const;
  bool bounded() const noexcept { return s_->bounded; }
  const SharedRef<SemaphoreState>& state() const noexcept { return s_; }

 private:
  SharedRef<SemaphoreState> s_;
};

}  // namespace plua::core
