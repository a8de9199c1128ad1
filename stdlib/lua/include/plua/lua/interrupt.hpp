// Interrupting Lua code: the SIGINT path of lua.c (a hook that raises at the
// next safe point) joined with the core's stop flag (which ends blocking waits).
#pragma once

#include "plua/lua/lua.hpp"

namespace plua::lua {

// Makes L the state that interrupts of the calling OS thread are aimed at.
// Every OS thread that runs plua Lua code attaches its state first.
void attach_this_thread(lua_State* L) noexcept;
// Forgets the calling thread's state (before the state is closed).
void detach_this_thread() noexcept;
// The state attached to the calling thread, or nullptr.
lua_State* attached_state() noexcept;

// Asks the calling thread to stop what it runs: blocking calls end with
// core::Interrupted, running Lua code raises KeyboardInterrupt at its next
// instruction. Async-signal-safe, so a signal handler may call it.
void interrupt_this_thread() noexcept;

// Drops a pending interrupt of the calling thread (flag and hook on L).
void clear_interrupt(lua_State* L) noexcept;

}  // namespace plua::lua
