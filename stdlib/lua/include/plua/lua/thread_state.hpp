// The lua_State of a plua thread (or of a thread pool's worker): made for one
// OS thread and cheap to create. Opening every standard library costs more
// than starting the OS thread, so only base is opened at once; package opens
// on the first `require` or use of `package`; string, table, math, io, os,
// coroutine, utf8 and debug open on first use (as globals through a
// metatable on _G, or with require; strings start with a stand-in metatable
// whose methods and arithmetic open the string library, and getmetatable of
// a string opens it first); the plua modules are in package.preload.
//
// The lazy globals live in _G's metatable (__index). A script that replaces
// _G's metatable (setmetatable(_G, mt)) first gets every library opened, so
// nothing is missing afterwards.
#pragma once

#include <string_view>

#include "plua/lua/lua.hpp"

namespace plua::lua {

// A new state as above; throws std::bad_alloc when out of memory. Its small
// blocks come from its own core::BlockArena, so it must be closed with
// close_thread_state, on one thread at a time.
lua_State* new_thread_state();

// Closes a state made by new_thread_state() (lua_close, then its arena).
void close_thread_state(lua_State* L);

// Opens every library still waiting to be opened (a no-op when all are).
void open_lazy_libraries(lua_State* L);

// Sets package.path and package.cpath (now, or when package opens).
void set_package_paths(lua_State* L, std::string_view path, std::string_view cpath);

// True for a state made by new_thread_state().
bool is_thread_state(lua_State* L);

}  // namespace plua::lua
