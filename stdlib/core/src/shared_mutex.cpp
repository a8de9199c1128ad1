#include "plua/core/shared_mutex.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace plua::core {

SharedMutex::SharedMutex() {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&mutex_, &attr);
  pthread_mutexattr_destroy(&attr);
}

bool SharedMutex::lock() noexcept {
  int rc = pthread_mutex_lock(&mutex_);
  if (rc == 0) return false;
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(&mutex_);
    return true;
  }
  // ENOTRECOVERABLE cannot happen (we always make it consistent); anything else is memory corruption.
  std::fprintf(stderr, "plua: fatal: shared mutex lock failed (error %d)\n", rc);
  std::abort();
}

void SharedMutex::unlock() noexcept { pthread_mutex_unlock(&mutex_); }

}  // namespace plua::core
