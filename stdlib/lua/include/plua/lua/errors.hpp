// Error objects for Python's exception kinds (api.md, rule 7), and the
// boundary where C++ exceptions from the core become Lua errors.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "plua/core/cancel.hpp"
#include "plua/lua/lua.hpp"

namespace plua::lua {

// Kind of the error raised when a blocking call or running code is interrupted.
inline constexpr const char* kKeyboardInterrupt = "KeyboardInterrupt";

// Pushes a new error object {kind=, message=} whose __tostring reads
// "kind: message" (or just message when kind is empty). Callers may set more
// fields on it before raising it with lua_error.
void push_error_object(lua_State* L, std::string_view kind, std::string_view message);

// Raises a new error object of `kind`.
[[noreturn]] void raise_error(lua_State* L, std::string_view kind, std::string_view message);

// True if the value at idx is an error object of the given kind.
bool is_error_kind(lua_State* L, int idx, std::string_view kind);

// Raises KeyboardInterrupt("interrupted!") and clears any pending interrupt
// of this thread (flag and hook), so the next statement runs normally.
[[noreturn]] void raise_interrupted(lua_State* L);

// Runs `body`, turning C++ exceptions into Lua errors: core::Interrupted into
// KeyboardInterrupt, anything else into "op: what()". The Lua error is raised
// after the try block, so no Lua error is ever thrown through a catch.
template <class Body>
auto call_core(lua_State* L, const char* op, Body&& body) -> decltype(body()) {
  std::string failure;
  bool interrupted = false;
  try {
    return std::forward<Body>(body)();
  } catch (const core::Interrupted&) {
    interrupted = true;
  } catch (const std::exception& e) {
    failure = std::string(op) + ": " + e.what();
  }
  if (interrupted) raise_interrupted(L);
  luaL_error(L, "%s", failure.c_str());
  throw;  // unreachable: luaL_error does not return
}

// Reads an optional timeout argument: nil (or none) is "forever"; otherwise a
// finite, non-negative number of seconds. Misuse is an argument error.
core::Deadline check_deadline(lua_State* L, int idx);
std::optional<double> check_timeout(lua_State* L, int idx);

// Reads an optional boolean argument (nil/none gives `fallback`), strictly:
// only booleans and nil are accepted.
bool opt_boolean(lua_State* L, int idx, bool fallback);

}  // namespace plua::lua
