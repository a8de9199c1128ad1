// Error objects for Python's exception kinds (api.md, rule 7), and the
// boundary where C++ exceptions from the core become Lua errors.
#pragma once

#include <exception>
#include <initializer_list>
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

// Pushes the text that reports the error value at idx (as lua.c's message
// handler): a string or number as it is, else its __tostring, else
// "kind: message" for a table with a string `kind` (an error object without
// its metatable), else "(error object is a T value)". Returns the text.
const char* push_error_text(lua_State* L, int idx);

// True if the value at idx is an error object of the given kind.
bool is_error_kind(lua_State* L, int idx, std::string_view kind);

// Raises KeyboardInterrupt("interrupted!") and clears any pending interrupt
// of this thread (flag and hook), so the next statement runs normally.
[[noreturn]] void raise_interrupted(lua_State* L);

// A core exception caught at the binding's edge, kept until the catch block
// is left: a Lua error is never thrown through a catch.
struct CoreFailure {
  bool failed = false;
  bool interrupted = false;  // core::Interrupted: raised as KeyboardInterrupt
  std::string kind;          // the error object's kind; empty: a plain "op: message" error
  std::string message;
  std::string traceback;     // a manager peer's own, sent with its error
  bool from_peer = false;    // raised as the peer worded it, without the op
  explicit operator bool() const noexcept { return failed; }
};

// The one table that gives each core exception its Python kind (errors.cpp).
CoreFailure describe_core_exception(const std::exception& e);

// Raises f (which must have failed): KeyboardInterrupt, an error object of
// f.kind reading "op: message", or a plain "op: message" error.
[[noreturn]] void raise_core_failure(lua_State* L, const char* op, const CoreFailure& f);

// Runs `body` and returns its core exception, if any, for a caller that must
// clean up before raising it with raise_core_failure.
template <class Body>
CoreFailure attempt_core(Body&& body) {
  try {
    std::forward<Body>(body)();
    return {};
  } catch (const std::exception& e) {
    return describe_core_exception(e);
  }
}

// Runs `body`, turning a core exception into a Lua error as raise_core_failure does.
template <class Body>
auto call_core(lua_State* L, const char* op, Body&& body) -> decltype(body()) {
  CoreFailure failure;
  try {
    return std::forward<Body>(body)();
  } catch (const std::exception& e) {
    failure = describe_core_exception(e);
  }
  raise_core_failure(L, op, failure);
}

// Reads an optional timeout argument: nil (or none) is "forever"; otherwise a
// finite, non-negative number of seconds. Misuse is an argument error.
core::Deadline check_deadline(lua_State* L, int idx);
std::optional<double> check_timeout(lua_State* L, int idx);

// Refuses an option table (at idx) with a key not in `known`, as an argument
// error on argument `arg`: "unknown option 'name'" (a misspelt option would
// otherwise be ignored).
void check_option_names(lua_State* L, int idx, int arg, std::initializer_list<std::string_view> known);

// Reads an optional boolean argument (nil/none gives `fallback`), strictly:
// only booleans and nil are accepted.
bool opt_boolean(lua_State* L, int idx, bool fallback);

}  // namespace plua::lua
