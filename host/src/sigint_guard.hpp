// Ctrl-C while Lua code runs: as lua.c, the first SIGINT asks the code to stop
// at a safe point (or a blocking call to give up); a second one, before the
// first is handled, ends the process the default way.
#pragma once

#include <csignal>

namespace plua::host {

class SigintGuard {
 public:
  SigintGuard();   // arms the handler for the current chunk
  ~SigintGuard();  // back to the default action
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction previous_{};
};

}  // namespace plua::host
