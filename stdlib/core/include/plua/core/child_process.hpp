// Child processes of this process: fork that leaves nothing of ours locked in
// the child, a handle that reaps its child (no zombies) and waits on it
// interruptibly, and the process-wide registry behind active_children().
//
// Reaping is by pid only (waitid on the child's pidfd, never waitpid(-1)), so
// children started by other code (subprocess) are never stolen from it.
// Signals go through the pidfd, so a reaped pid that the kernel reuses is
// never signalled by mistake.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "plua/core/cancel.hpp"

namespace plua::core {

// Python's exitcode for a wait status: the exit status, or -N for signal N.
int exitcode_from_status(int status) noexcept;

class ChildProcess {
 public:
  // Adopts a child of the calling process (just forked or spawned) and
  // records it in the registry. Throws std::system_error if pidfd_open fails.
  static std::shared_ptr<ChildProcess> adopt(pid_t pid);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const noexcept { return pid_; }
  // False in a fork child for the handles it inherited (they are its siblings).
  bool owned_by_this_process() const noexcept;
  // The child's exitcode once it has ended (reaping it), nullopt while it runs.
  std::optional<int> poll();
  // Waits until the child ends or the deadline passes; returns poll().
  // Throws Interrupted if the calling thread is asked to stop.
  std::optional<int> wait(const Deadline& deadline);
  // Sends a signal unless the child was already reaped.
  void send_signal(int sig);
  // A descriptor that polls readable once the child has ended (-1 once reaped).
  int pidfd() const noexcept { return pidfd_.load(std::memory_order_acquire); }

 private:
  explicit ChildProcess(pid_t pid, int pidfd);
  void check_owner(const char* op) const;
  friend struct ChildRegistry;

  const pid_t pid_;
  const pid_t owner_;                // the process that may wait for it
  std::atomic<int> pidfd_;
  std::mutex mu_;                    // serialises reaping
  std::optional<int> exitcode_;      // guarded by mu_
  std::atomic<bool> ended_{false};   // exitcode_ is set
};

// fork() with our own registries consistent in the child (they are held
// across the fork by the forking thread). Returns as fork does; throws
// std::system_error when fork fails. Output buffered in C stdio is flushed
// first, so it is not written twice. The arena references the child inherits
// in ForkTracked holders are counted as its own (fork_tracked.hpp).
pid_t fork_process();

// The children of this process that were started and not yet reaped; reaps
// those that ended (as Python's active_children()).
std::vector<std::shared_ptr<ChildProcess>> active_children();

// Reaps ended children that nobody holds a handle to any more.
void reap_orphans();

// How many children the registry lists: running ones, and ended ones not yet
// dropped (a reaped child leaves at the next adoption). For tests.
std::size_t tracked_children();

// Functions a fork child runs right before it leaves with _exit (after its
// target): how objects it inherited give back what they hold in shared
// memory. Registration is process-wide and idempotent. After the hooks, the
// run releases every ForkTracked holder (fork_tracked::release_all).
void add_fork_child_exit_hook(void (*fn)());
void run_fork_child_exit_hooks() noexcept;

// Handlers fork_process runs outside everything else it holds across fork():
// prepare runs first, before any of our registries is locked, so it may wait
// for a lock whose holder needs one of those registries to let go (a
// shared.table's); parent and child run last. Process-wide, idempotent, at
// most 8 sets; prepare handlers run in registration order, the others in reverse.
struct OuterForkHandlers {
  void (*prepare)();
  void (*parent)();
  void (*child)();
};
void add_outer_fork_handlers(const OuterForkHandlers& handlers);

// The pid this process had when it last forked or started (cheap; updated in
// fork children).
pid_t current_pid() noexcept;

}  // namespace plua::core
