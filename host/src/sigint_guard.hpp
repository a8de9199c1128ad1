// Ctrl-C in the plua executable. While Lua code runs, as lua.c: the first
// SIGINT asks the code to stop at a safe point (or a blocking call to give
// up); a second one, before the first is handled, ends the process the default
// way. At the REPL's prompt, Ctrl-C only drops the line being typed.
//
// Both guards aim the signal at the thread that created them: a SIGINT the
// kernel delivers to another thread (a plua thread, say) is forwarded there.
#pragma once

#include <csignal>
#include <pthread.h>

namespace plua::host {

// Armed while a chunk runs on the calling thread.
class SigintGuard {
 public:
  SigintGuard();   // arms the handler for the current chunk
  ~SigintGuard();  // back to the previous action
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction previous_{};
  pthread_t previous_target_{};
};

// Armed while the REPL waits for a line: Ctrl-C sets a flag and makes the
// blocking read return (EINTR), so the reader can discard the line.
class SigintAtPrompt {
 public:
  SigintAtPrompt();
  ~SigintAtPrompt();
  SigintAtPrompt(const SigintAtPrompt&) = delete;
  SigintAtPrompt& operator=(const SigintAtPrompt&) = delete;

  // True once after each Ctrl-C.
  static bool take() noexcept;

 private:
  struct sigaction previous_{};
  pthread_t previous_target_{};
};

}  // namespace plua::host
