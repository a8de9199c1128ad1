// Writing to a pipe whose reader is gone must give EPIPE, not kill plua with
// SIGPIPE: this blocks SIGPIPE in the calling thread for its lifetime and
// discards one that the thread's own writes raised meanwhile.
#pragma once

#include <signal.h>

namespace plua::core {

class SigpipeGuard {
 public:
  SigpipeGuard() noexcept;
  ~SigpipeGuard();
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t saved_mask_;
  bool was_pending_ = false;  // a SIGPIPE was pending before: not ours to discard
};

}  // namespace plua::core
