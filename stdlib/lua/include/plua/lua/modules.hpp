// The plua modules (thread, queue, time, ...) as Lua sees them.
#pragma once

#include "plua/lua/lua.hpp"

namespace plua::lua {

// Registers every plua module in package.preload, so `require "thread"` works
// with no search path; the standard package searchers stay as they are.
void preload_modules(lua_State* L);

// True if `name` is one of the plua modules.
bool is_plua_module(const char* name);

}  // namespace plua::lua

namespace plua::lua {

// Registers fn to run when the state's owner shuts it down (before lua_close):
// how the thread module joins non-daemon threads at exit. Hooks run in order
// of registration, each in protected mode.
void add_shutdown_hook(lua_State* L, lua_CFunction fn);

// Runs and forgets the registered shutdown hooks. Errors are written to stderr.
void run_shutdown_hooks(lua_State* L);

}  // namespace plua::lua
