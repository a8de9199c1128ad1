#include "plua/lua/modules.hpp"

#include <cstdio>
#include <cstring>
#include <iterator>

// Each module's opener lives in its own binding file.
int luaopen_plua_time(lua_State* L);
int luaopen_plua_thread(lua_State* L);
int luaopen_plua_threadlocal(lua_State* L);
int luaopen_plua_manager(lua_State* L);
int luaopen_plua_lock(lua_State* L);
int luaopen_plua_shared(lua_State* L);
int luaopen_plua_subprocess(lua_State* L);
int luaopen_plua_process(lua_State* L);
int luaopen_plua_pool(lua_State* L);
int luaopen_plua_queue(lua_State* L);
int luaopen_plua_embed(lua_State* L);

namespace plua::lua {
namespace {

struct Module {
  const char* name;
  lua_CFunction open;
};

// The plua modules, in api.md's order.
constexpr Module kModules[] = {
    {"time", luaopen_plua_time},
    {"thread", luaopen_plua_thread},
    {"threadlocal", luaopen_plua_threadlocal},
    {"manager", luaopen_plua_manager},
    {"queue", luaopen_plua_queue},
    {"lock", luaopen_plua_lock},
    {"shared", luaopen_plua_shared},
    {"subprocess", luaopen_plua_subprocess},
    {"process", luaopen_plua_process},
    {"pool", luaopen_plua_pool},
    {"plua.embed", luaopen_plua_embed},  // the embedding API's worker entry, not for scripts
};

}  // namespace

void preload_modules(lua_State* L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const Module& m : kModules) {
    lua_pushcfunction(L, m.open);
    lua_setfield(L, -2, m.name);
  }
  lua_pop(L, 1);
}

bool is_plua_module(const char* name) {
  for (const Module& m : kModules)
    if (std::strcmp(m.name, name) == 0) return true;
  return false;
}

}  // namespace plua::lua

namespace plua::lua {
namespace {
constexpr const char* kShutdownHooks = "plua.shutdown_hooks";
}

void add_shutdown_hook(lua_State* L, lua_CFunction fn) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, kShutdownHooks);
  lua_pushcfunction(L, fn);
  lua_rawseti(L, -2, static_cast<lua_Integer>(lua_rawlen(L, -2)) + 1);
  lua_pop(L, 1);
}

void run_shutdown_hooks(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, kShutdownHooks) != LUA_TTABLE) {
    lua_pop(L, 1);
    return;
  }
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, kShutdownHooks);
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, -1, i);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
      const char* msg = luaL_tolstring(L, -1, nullptr);
      std::fprintf(stderr, "plua: error at shutdown: %s\n", msg ? msg : "?");
      std::fflush(stderr);
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
}

}  // namespace plua::lua
