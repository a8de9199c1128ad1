// Lock and RLock (Python's threading.Lock / RLock) in process-shared memory:
// the same object works between threads and between processes (fork children
// share the arena; other processes resolve a SharedRefData).
//
// Robustness: the holder's process is recorded (pid + start time). A waiter
// that finds the holder's process gone (killed, or exited without releasing)
// takes the lock over and is told so (Acquire::abandoned): the data the lock
// protects may be half-written. Threads of a live process are not tracked
// this way (as in Python, a thread that ends holding a lock leaves it held).
//
// Each object's state is guarded by its SharedMutex for a few instructions at
// a time; waiting happens on its SharedSeq with no mutex held.
#pragma once

#include <cstdint>
#include <stdexcept>

#include "plua/core/cancel.hpp"
#include "plua/core/process_id.hpp"
#include "plua/core/shared_arena.hpp"
#include "plua/core/shared_mutex.hpp"
#include "plua/core/shared_seq.hpp"

namespace plua::core {

// Python's RuntimeError for lock misuse ("release unlocked lock").
class LockError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The outcome of an acquire.
enum class Acquire {
  failed,     // not acquired (non-blocking try, or timeout)
  acquired,   // acquired
  abandoned,  // acquired from a holder process that died: protected data may be half-written
};

// Who holds a lock.
struct LockOwner {
  ProcessId process;
  std::int32_t tid = 0;
  static LockOwner self() noexcept { return LockOwner{ProcessId::self(), this_thread_tid()}; }
  friend bool operator==(const LockOwner&, const LockOwner&) = default;
};

// The shared state of a Lock or RLock.
struct LockState {
  SharedMutex mu;
  SharedSeq seq;           // bumped on every release
  std::uint32_t count = 0;  // guarded by mu: 0 free; Lock 1; RLock the recursion depth
  LockOwner owner;          // guarded by mu: meaningful while count > 0
};

// Internal: the acquire loop shared by Lock and RLock.
namespace detail {
// recursive: an RLock (re-entry by the owner thread counts up).
// interruptible: false only for Condition's re-acquire (which must not be abandoned half-way).
Acquire acquire_lock(LockState& s, bool recursive, bool blocking, const Deadline& deadline,
                     bool interruptible = true, std::uint32_t depth = 1);
}  // namespace detail

class Lock {
 public:
  // A new, unlocked lock in this process's arena.
  Lock() : s_(SharedRef<LockState>::make()) {}
  explicit Lock(SharedRef<LockState> s) noexcept : s_(std::move(s)) {}

  // One try if !blocking; otherwise waits until acquired or the deadline.
  // Throws Interrupted if the thread is asked to stop while waiting.
  Acquire acquire(bool blocking, const Deadline& deadline) {
    return detail::acquire_lock(*s_, false, blocking, deadline);
  }
  // Any thread may release; throws LockError("release unlocked lock") if not locked.
  void release();
  bool locked() const;
  const SharedRef<LockState>& state() const noexcept { return s_; }

 private:
  SharedRef<LockState> s_;
};

class RLock {
 public:
  RLock() : s_(SharedRef<LockState>::make()) {}
  explicit RLock(SharedRef<LockState> s) noexcept : s_(std::move(s)) {}

  // As Lock::acquire; the owning thread re-enters at once.
  Acquire acquire(bool blocking, const Deadline& deadline) {
    return detail::acquire_lock(*s_, true, blocking, deadline);
  }
  // Throws LockError("cannot release un-acquired lock") unless the calling thread owns it.
  void release();
  // True if the calling thread holds it.
  bool owned() const;
  // Recursion depth (0 when free).
  std::uint32_t depth() const;
  // For Condition: fully release (returning the depth) and later restore.
  std::uint32_t release_all();
  Acquire restore(std::uint32_t depth) { return detail::acquire_lock(*s_, true, true, Deadline::never(), false, depth); }
  const SharedRef<LockState>& state() const noexcept { return s_; }

 private:
  SharedRef<LockState> s_;
};

}  // namespace plua::core
