#include "sigint_guard.hpp"

#include "plua/lua/interrupt.hpp"

namespace plua::host {
namespace {

void on_sigint(int) {
  // SA_RESETHAND already restored the default: a second Ctrl-C kills.
  plua::lua::interrupt_this_thread();
}

}  // namespace

SigintGuard::SigintGuard() {
  struct sigaction action{};
  action.sa_handler = on_sigint;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  sigaction(SIGINT, &action, &previous_);
}

SigintGuard::~SigintGuard() { sigaction(SIGINT, &previous_, nullptr); }

}  // namespace plua::host
