// A mutex that lives in shared memory and works between processes: robust, so
// a holder that dies (even by SIGKILL) hands it to the next locker instead of
// wedging everyone.
//
// Use it only for short critical sections over plain state: never wait, call
// user code or take another SharedMutex while holding it (the arena's mutex,
// a leaf, is the one exception). Blocking waits use SharedSeq instead, since a
// waiter killed inside a glibc process-shared condition variable can wedge it.
#pragma once

#include <pthread.h>

namespace plua::core {

class SharedMutex {
 public:
  // Initialises in place (PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST).
  SharedMutex();
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;
  // Trivial on Linux; destroying a robust mutex a dead process held is fine.
  ~SharedMutex() = default;

  // Locks; returns true if the previous holder died holding it (the mutex was
  // made consistent again, but the state it guards may be half-updated).
  bool lock() noexcept;
  void unlock() noexcept;

 private:
  pthread_mutex_t mutex_;
};

// Scoped lock of a SharedMutex that remembers whether the last holder died.
class SharedLockGuard {
 public:
  explicit SharedLockGuard(SharedMutex& m) noexcept : m_(m), owner_died_(m.lock()) {}
  ~SharedLockGuard() { m_.unlock(); }
  SharedLockGuard(const SharedLockGuard&) = delete;
  SharedLockGuard& operator=(const SharedLockGuard&) = delete;
  bool owner_died() const noexcept { return owner_died_; }

 private:
  SharedMutex& m_;
  bool owner_died_;
};

}  // namespace plua::core
