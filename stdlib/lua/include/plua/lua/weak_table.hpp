// Weak tables, the caches that map a shared object to this state's userdata
// for it (or a value to something derived from it) without keeping either alive.
#pragma once

#include "plua/lua/lua.hpp"

namespace plua::lua {

// Pushes a new table whose keys ("k"), values ("v") or both ("kv") are weak.
void push_weak_table(lua_State* L, const char* mode);

// Pushes the state's weak table kept in the registry under `key`, made on first use.
void push_registry_weak_table(lua_State* L, const void* key, const char* mode);

}  // namespace plua::lua
