// Internal to the process module: the spawn start method, and what its two
// source files share.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "plua/core/child_process.hpp"
#include "plua/lua/lua.hpp"

namespace plua::lua {

// Starts a fresh plua (/proc/self/exe) that runs the target and args of the
// Process handle at handle_idx, with this state's globals snapshot.
std::shared_ptr<core::ChildProcess> spawn_process(lua_State* L, int handle_idx,
                                                  const std::string& name,
                                                  const std::vector<int>& identity, bool daemon);

// Registers Process handles with the codec (by reference, within a process).
void register_process_sendable();

// In a spawned child: makes the module's current/parent process what the
// start message says.
void become_spawned(const std::string& name, const std::vector<int>& identity, bool daemon,
                    pid_t parent_pid, const std::string& parent_name);

// The name of the process this code runs in ("MainProcess", "Process-1" ...).
std::string current_process_name();

// Runs [target, args-table] on top of L's stack as a process body; returns
// the exit status (1 after printing "Process NAME:" and the traceback).
int run_target_on_stack(lua_State* L, const std::string& name);

}  // namespace plua::lua
