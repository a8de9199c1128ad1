#include "sigint_guard.hpp"

#include <unistd.h>

#include "plua/core/cancel.hpp"
#include "plua/lua/interrupt.hpp"

namespace plua::host {
namespace {

// The thread a Ctrl-C is meant for, and its process (a forked child has only
// the forking thread, so there the target means nothing); written before a
// handler is installed.
pthread_t g_target{};
pid_t g_target_pid = 0;
volatile std::sig_atomic_t g_prompt_interrupted = 0;

// True (after forwarding it) if the signal landed on a thread other than the target.
bool forwarded(int sig) {
  if (getpid() != g_target_pid || pthread_equal(pthread_self(), g_target)) return false;
  pthread_kill(g_target, sig);
  return true;
}

void on_sigint_running(int sig) {
  if (forwarded(sig)) return;
  if (core::this_thread_stop_flag().requested()) {
    // The first Ctrl-C was not acted on yet: the code does not listen, so end the process as lua does.
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  lua::interrupt_this_thread();
}

void on_sigint_prompt(int sig) {
  if (forwarded(sig)) return;
  g_prompt_interrupted = 1;
}

void install(void (*handler)(int), int flags, struct sigaction* previous, pthread_t* previous_target) {
  *previous_target = g_target;
  g_target = pthread_self();
  g_target_pid = getpid();
  struct sigaction action{};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = flags;
  sigaction(SIGINT, &action, previous);
}

void restore(const struct sigaction& previous, pthread_t previous_target) {
  sigaction(SIGINT, &previous, nullptr);
  g_target = previous_target;
}

}  // namespace

// SA_RESTART: a chunk's own reads (io.read) go on after a Ctrl-C, as in lua.
SigintGuard::SigintGuard() { install(on_sigint_running, SA_RESTART, &previous_, &previous_target_); }
SigintGuard::~SigintGuard() { restore(previous_, previous_target_); }

// No SA_RESTART: the prompt's poll/read must return EINTR so the line can be dropped.
SigintAtPrompt::SigintAtPrompt() {
  g_prompt_interrupted = 0;
  install(on_sigint_prompt, 0, &previous_, &previous_target_);
}
SigintAtPrompt::~SigintAtPrompt() { restore(previous_, previous_target_); }

bool SigintAtPrompt::take() noexcept {
  bool was = g_prompt_interrupted != 0;
  g_prompt_interrupted = 0;
  return was;
}

}  // namespace plua::host
