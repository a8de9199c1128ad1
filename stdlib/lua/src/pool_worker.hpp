// The task loop of a pool worker (a fork child or a thread of its own): a
// fresh Lua state with the plua modules, the start kit applied, then chunks
// run until the pool says quit. Private to the pool module.
#pragma once

#include <cstdint>
#include <string>

namespace plua::lua::pool_worker {

// Runs a worker on its two pipe ends; returns the exit status (0). The kit is
// a codec message {globals = {name = message, ...}, initializer, initargs}.
// Leaves after max_tasks chunks when max_tasks > 0. In a worker process
// (own_process), os.exit flushes stdio and leaves with _exit, as a fork
// child should (the parent's atexit work is not the worker's to run).
int run(int in_fd, int out_fd, std::string kit, std::uint64_t max_tasks, bool own_process);

// The signal that interrupts a worker thread's running task (its handler
// raises KeyboardInterrupt at the next Lua instruction and ends blocking
// waits); installed on first use.
int interrupt_signal();

}  // namespace plua::lua::pool_worker
