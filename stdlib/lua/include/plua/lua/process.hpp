// What other bindings and the host need from the `process` module: Process
// handles as wait() sentinels, and the entry point of a spawned child.
#pragma once

#include <memory>

#include "plua/core/child_process.hpp"
#include "plua/lua/lua.hpp"

namespace plua::lua {

// Metatable name of Process handles.
inline constexpr const char* kProcessTypeName = "plua.Process";

// The child behind the Process handle at idx: nullptr if idx is not a Process
// or the process was not started by this process.
std::shared_ptr<core::ChildProcess> to_child_process(lua_State* L, int idx);

// The hidden option that makes `plua` a spawned child: `plua OPTION FD`, FD
// being a descriptor holding the child's start message.
inline constexpr const char* kSpawnChildOption = "--plua-spawn-child";

// Runs a spawned child in L (a fresh state with the plua modules): reads the
// start message from descriptor `fd_text`, applies the globals snapshot, runs
// the target. Returns the exit status (0, or 1 if the target raised, after
// printing "Process NAME:" and the traceback). The caller then closes the
// state (running the child's own shutdown hooks) and exits with that status.
int run_spawned_child(lua_State* L, const char* fd_text);

// Pool worker processes are children of their owner as Python's are
// (ForkPoolWorker-N). In the owner, on the thread about to fork a worker:
// takes the next number of this process's children counter (shared with
// Process names). In the worker, forked by that thread: current_process()
// becomes "ForkPoolWorker-N" (daemon), parent_process() the owner.
void prepare_pool_worker();
void become_pool_worker();

}  // namespace plua::lua

namespace plua::lua {

// Descriptor passing to spawned children, for objects that are descriptors
// (Pipe connections). While a spawn start message is being encoded on the
// calling thread, spawn_pass_fd(fd) arranges for fd to be inherited by the
// child and returns true; otherwise it returns false (the object then
// travels by in-process reference only).
bool spawn_pass_fd(int fd);

// True while a spawn start message is being encoded on the calling thread
// (descriptors can then go with it).
bool spawn_collecting_fds();

// In a spawned child: the local descriptor for what was descriptor `fd` of
// process `pid` when it spawned this child, or -1 if none was passed. The
// first caller for a pair takes it over (later ones get -1).
int spawn_take_inherited_fd(int pid, int fd);

}  // namespace plua::lua
