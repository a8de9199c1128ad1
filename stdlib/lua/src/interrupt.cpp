#include "plua/lua/interrupt.hpp"

#include "plua/core/cancel.hpp"
#include "plua/lua/errors.hpp"

namespace plua::lua {
namespace {

thread_local lua_State* g_attached = nullptr;

// Runs at the next instruction after an interrupt: removes itself and raises.
void interrupt_hook(lua_State* L, lua_Debug*) {
  raise_interrupted(L);
}

}  // namespace

void attach_this_thread(lua_State* L) noexcept { g_attached = L; }
void detach_this_thread() noexcept { g_attached = nullptr; }
lua_State* attached_state() noexcept { return g_attached; }

void interrupt_this_thread() noexcept {
  core::this_thread_stop_flag().request();
  // As lua.c's lstop: setting a hook is the one Lua call safe in a signal handler.
  if (lua_State* L = g_attached)
    lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void clear_interrupt(lua_State* L) noexcept {
  core::this_thread_stop_flag().clear();
  if (L && lua_gethook(L) == interrupt_hook) lua_sethook(L, nullptr, 0, 0);
}

}  // namespace plua::lua
