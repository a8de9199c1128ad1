#include "plua/core/subprocess_run.hpp"

#include <signal.h>

#include "plua/core/communicator.hpp"

namespace plua::core {
namespace {

// Kills the child unless it was seen to end: run() never leaves one behind
// after an error (the Subprocess then hands it to the reaper).
class KillUnlessDone {
 public:
  explicit KillUnlessDone(Subprocess& child) : child_(child) {}
  ~KillUnlessDone() {
    if (child_.returncode()) return;
    try {
      child_.send_signal(SIGKILL);
    } catch (const std::system_error&) {
      // Already gone: the reaper still collects it.
    }
  }
  KillUnlessDone(const KillUnlessDone&) = delete;
  KillUnlessDone& operator=(const KillUnlessDone&) = delete;

 private:
  Subprocess& child_;
};

[[noreturn]] void kill_and_throw(Subprocess& child, Communicator& comm) {
  child.send_signal(SIGKILL);
  child.wait(Deadline::never());
  throw SubprocessTimeout(std::move(comm.output()), std::move(comm.errors()));
}

}  // namespace

RunResult run_subprocess(const SpawnOptions& options, const std::optional<std::string>& input,
                         const Deadline& deadline) {
  Subprocess child = Subprocess::spawn(options);
  KillUnlessDone guard(child);
  Communicator comm(input.value_or(std::string()));
  auto close = [&child](Communicator::Stream s) {
    OwnedFd* fds[3] = {&child.stdin_pipe(), &child.stdout_pipe(), &child.stderr_pipe()};
    fds[s]->reset();
  };
  if (!comm.run(child.stdin_pipe().get(), child.stdout_pipe().get(), child.stderr_pipe().get(), deadline, close))
    kill_and_throw(child, comm);
  if (!child.wait(deadline)) kill_and_throw(child, comm);
  return RunResult{*child.returncode(), std::move(comm.output()), std::move(comm.errors())};
}

}  // namespace plua::core
