// Condition (Python's threading.Condition) over a Lock or RLock, in
// process-shared memory. Each waiter queues a node (a block in the
// condition's arena, FIFO) with its own futex word; notify(n) hands the first
// n nodes a wake-up, so a notification is never stolen by a later waiter.
// Nodes of waiter processes that died are dropped by notify.
//
// Lock ordering: the condition's SharedMutex is taken alone (never with the
// user lock's state mutex); the user lock is released after the node is
// queued and re-acquired after it is dequeued, as in Python.
#pragma once

#include <cstdint>
#include <variant>

#include "plua/core/lock.hpp"

namespace plua::core {

struct ConditionState {
  SharedMutex mu;
  // Guarded by mu: the waiter queue, as offsets of nodes from this object (0: none).
  std::int64_t head = 0;
  std::int64_t tail = 0;
};

class Condition {
 public:
  using AnyLock = std::variant<Lock, RLock>;

  // A new condition over `lock` (Python's default is a new RLock).
  explicit Condition(AnyLock lock) : s_(SharedRef<ConditionState>::make()), lock_(std::move(lock)) {}
  Condition(SharedRef<ConditionState> s, AnyLock lock) noexcept : s_(std::move(s)), lock_(std::move(lock)) {}

  Acquire acquire(bool blocking, const Deadline& deadline);
  void release();

  // Releases the lock, waits for a notify or the deadline, re-acquires the
  // lock (even when interrupted) and returns whether it was notified. The lock
  // must be held (LockError otherwise). Interrupted is thrown after re-acquiring.
  bool wait(const Deadline& deadline);
  // Wakes up to n waiters / all waiters; the lock must be held.
  void notify(std::int64_t n);
  void notify_all();

  const AnyLock& lock() const noexcept { return lock_; }
  const SharedRef<ConditionState>& state() const noexcept { return s_; }

 private:
  void require_held(const char* what) const;

  SharedRef<ConditionState> s_;
  AnyLock lock_;
};

}  // namespace plua::core
