// The `lock` module's objects as other bindings see them: pushing a core lock
// as its Lua object (shared.Value:get_lock pushes an RLock this way).
#pragma once

#include "plua/core/lock.hpp"
#include "plua/lua/lua.hpp"

namespace plua::lua {

// Pushes a Lua RLock object over the given core RLock (sharing its state).
void push_rlock(lua_State* L, core::RLock lock);

}  // namespace plua::lua
