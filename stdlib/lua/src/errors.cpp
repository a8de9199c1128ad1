#include "plua/lua/errors.hpp"

#include <cmath>

#include "plua/core/barrier.hpp"
#include "plua/core/connection.hpp"
#include "plua/core/lock.hpp"
#include "plua/core/manager_client.hpp"
#include "plua/core/message_queue.hpp"
#include "plua/core/semaphore.hpp"
#include "plua/core/thread.hpp"
#include "plua/core/wire_auth.hpp"
#include "plua/core/worker_pool.hpp"
#include "plua/lua/interrupt.hpp"

namespace plua::lua {
namespace {

constexpr const char* kErrorMeta = "plua.Error";

int error_tostring(lua_State* L) {
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  const char* kind = lua_tostring(L, -2);
  const char* message = lua_tostring(L, -1);
  if (!message) message = "";
  if (kind && *kind)
    lua_pushfstring(L, "%s: %s", kind, message);
  else
    lua_pushstring(L, message);
  return 1;
}

}  // namespace

void push_error_object(lua_State* L, std::string_view kind, std::string_view message) {
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, kind.data(), kind.size());
  lua_setfield(L, -2, "kind");
  lua_pushlstring(L, message.data(), message.size());
  lua_setfield(L, -2, "message");
  if (luaL_newmetatable(L, kErrorMeta)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
}

void raise_error(lua_State* L, std::string_view kind, std::string_view message) {
  push_error_object(L, kind, message);
  lua_error(L);
  throw;  // unreachable
}

const char* push_error_text(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  int type = lua_type(L, idx);
  if (type == LUA_TSTRING || type == LUA_TNUMBER) {
    lua_pushvalue(L, idx);  // a copy, so a number is not turned into a string in place
    return lua_tostring(L, -1);
  }
  if (luaL_callmeta(L, idx, "__tostring")) {
    if (lua_type(L, -1) == LUA_TSTRING) return lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  if (type == LUA_TTABLE && lua_getfield(L, idx, "kind") == LUA_TSTRING) {
    const char* kind = lua_tostring(L, -1);
    if (lua_getfield(L, idx, "message") == LUA_TNIL) {
      lua_pop(L, 1);
      return kind;
    }
    const char* message = luaL_tolstring(L, -1, nullptr);  // kind, message, its text
    lua_pushfstring(L, "%s: %s", kind, message);
    lua_replace(L, -4);
    lua_pop(L, 2);
    return lua_tostring(L, -1);
  }
  if (type == LUA_TTABLE) lua_pop(L, 1);
  return lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
}

bool is_error_kind(lua_State* L, int idx, std::string_view kind) {
  if (!lua_istable(L, idx)) return false;
  lua_getfield(L, idx, "kind");
  size_t len = 0;
  const char* s = lua_tolstring(L, -1, &len);
  bool same = s && std::string_view(s, len) == kind;
  lua_pop(L, 1);
  return same;
}

CoreFailure describe_core_exception(const std::exception& e) {
  CoreFailure f;
  f.failed = true;
  f.message = e.what();
  if (dynamic_cast<const core::Interrupted*>(&e)) {
    f.interrupted = true;
  } else if (auto* remote = dynamic_cast<const core::RemoteError*>(&e)) {
    f.kind = remote->kind();
    f.message = remote->message();
    f.traceback = remote->traceback();
    f.from_peer = true;
    // Python's Empty() and Full() carry no text; say what the queue module says.
    if (f.message.empty() && f.kind == "Empty") f.message = "queue is empty";
    if (f.message.empty() && f.kind == "Full") f.message = "queue is full";
  } else if (dynamic_cast<const core::LockError*>(&e) || dynamic_cast<const core::ThreadStateError*>(&e)) {
    f.kind = "RuntimeError";
  } else if (dynamic_cast<const core::SemaphoreError*>(&e) || dynamic_cast<const core::QueueClosed*>(&e) ||
             dynamic_cast<const core::TooManyTaskDone*>(&e) || dynamic_cast<const core::PoolNotRunning*>(&e)) {
    f.kind = "ValueError";
  } else if (dynamic_cast<const core::BrokenBarrier*>(&e)) {
    f.kind = "BrokenBarrierError";
  } else if (dynamic_cast<const core::BrokenPipe*>(&e)) {
    f.kind = "BrokenPipeError";
  } else if (dynamic_cast<const core::ConnectionError*>(&e)) {
    f.kind = "OSError";
  } else if (dynamic_cast<const core::AuthenticationError*>(&e)) {
    f.kind = "AuthenticationError";
  }
  return f;
}

void raise_core_failure(lua_State* L, const char* op, const CoreFailure& f) {
  if (f.interrupted) raise_interrupted(L);
  if (f.kind.empty()) luaL_error(L, "%s: %s", op, f.message.c_str());
  if (f.from_peer) {
    push_error_object(L, f.kind, f.message);
  } else {
    push_error_object(L, f.kind, std::string(op) + ": " + f.message);
  }
  if (!f.traceback.empty()) {
    lua_pushlstring(L, f.traceback.data(), f.traceback.size());
    lua_setfield(L, -2, "traceback");
  }
  lua_error(L);
  throw;  // unreachable: lua_error does not return
}

void raise_interrupted(lua_State* L) {
  clear_interrupt(L);
  raise_error(L, kKeyboardInterrupt, "interrupted!");
}

std::optional<double> check_timeout(lua_State* L, int idx) {
  if (lua_isnoneornil(L, idx)) return std::nullopt;
  lua_Number seconds = luaL_checknumber(L, idx);
  if (std::isnan(seconds) || seconds < 0)
    luaL_argerror(L, idx, "timeout must be a non-negative number");
  // Python refuses an infinite timeout too (OverflowError); forever is spelt nil.
  if (std::isinf(seconds)) luaL_argerror(L, idx, "timeout must be finite; nil waits forever");
  return seconds;
}

core::Deadline check_deadline(lua_State* L, int idx) {
  return core::Deadline::from_timeout(check_timeout(L, idx));
}

void check_option_names(lua_State* L, int idx, int arg, std::initializer_list<std::string_view> known) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    bool found = false;
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t len = 0;
      const char* key = lua_tolstring(L, -1, &len);
      for (std::string_view k : known) found = found || k == std::string_view(key, len);
    }
    if (!found) luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, -1, nullptr)));
  }
}

bool opt_boolean(lua_State* L, int idx, bool fallback) {
  if (lua_isnoneornil(L, idx)) return fallback;
  luaL_checktype(L, idx, LUA_TBOOLEAN);
  return lua_toboolean(L, idx);
}

}  // namespace plua::lua
