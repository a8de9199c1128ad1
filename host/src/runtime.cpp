#include "plua/runtime.hpp"

#include <string>

#include "plua/lua/interrupt.hpp"
#include "plua/lua/lua.hpp"
#include "plua/lua/modules.hpp"

namespace plua {

Error::Error(std::string message, std::string traceback)
    : std::runtime_error(traceback.empty() ? message : message + "\n" + traceback),
      message_(std::move(message)),
      traceback_(std::move(traceback)) {}

void open_modules(lua_State* L) { lua::preload_modules(L); }

void shutdown_modules(lua_State* L) { lua::run_shutdown_hooks(L); }

int traceback_handler(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

Outcome make_failure(std::string_view handled) {
  Outcome out;
  out.ok = false;
  constexpr std::string_view kMarker = "\nstack traceback:";
  auto at = handled.find(kMarker);
  if (at == std::string_view::npos) {
    out.message = std::string(handled);
  } else {
    out.message = std::string(handled.substr(0, at));
    out.traceback = std::string(handled.substr(at + 1));
  }
  return out;
}

Runtime::Runtime() : Runtime(Options{}) {}

Runtime::Runtime(const Options& options) {
  L_ = luaL_newstate();
  if (L_ == nullptr) throw std::runtime_error("plua: cannot create a Lua state (out of memory)");
  if (options.ignore_environment) {
    // The package library reads this registry flag, as lua.c's -E sets it.
    lua_pushboolean(L_, 1);
    lua_setfield(L_, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L_);
  open_modules(L_);
  lua::attach_this_thread(L_);
}

Runtime::~Runtime() { close(); }

void Runtime::close() noexcept {
  if (L_ == nullptr) return;
  lua::run_shutdown_hooks(L_);
  if (lua::attached_state() == L_) lua::detach_this_thread();
  lua_close(L_);
  L_ = nullptr;
}

Outcome Runtime::call(int nargs, int nresults) noexcept {
  int base = lua_gettop(L_) - nargs;
  lua_pushcfunction(L_, traceback_handler);
  lua_insert(L_, base);
  int status = lua_pcall(L_, nargs, nresults, base);
  lua_remove(L_, base);
  if (status == LUA_OK) return Outcome{};
  size_t len = 0;
  const char* text = lua_tolstring(L_, -1, &len);
  Outcome out = make_failure(text ? std::string_view(text, len) : std::string_view("?"));
  lua_pop(L_, 1);
  return out;
}

namespace {
Outcome load_failure(lua_State* L) {
  Outcome out;
  out.ok = false;
  const char* msg = lua_tostring(L, -1);
  out.message = msg ? msg : "(error object is not a string)";
  lua_pop(L, 1);
  return out;
}

void throw_if_failed(const Outcome& out) {
  if (!out.ok) throw Error(out.message, out.traceback);
}
}  // namespace

Outcome Runtime::try_run_file(const std::string& path) noexcept {
  if (luaL_loadfile(L_, path.c_str()) != LUA_OK) return load_failure(L_);
  return call(0, 0);
}

Outcome Runtime::try_run_string(std::string_view code, const std::string& chunkname) noexcept {
  if (luaL_loadbuffer(L_, code.data(), code.size(), chunkname.c_str()) != LUA_OK)
    return load_failure(L_);
  return call(0, 0);
}

void Runtime::run_file(const std::string& path) { throw_if_failed(try_run_file(path)); }

void Runtime::run_string(std::string_view code, const std::string& chunkname) {
  throw_if_failed(try_run_string(code, chunkname));
}

}  // namespace plua
