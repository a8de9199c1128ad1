#include "plua/lua/thread_state.hpp"

#include <cstdio>
#include <cstring>
#include <new>
#include <string_view>

#include "plua/core/block_arena.hpp"
#include "plua/lua/modules.hpp"

namespace plua::lua {
namespace {

// Registry key marking a thread state (its address is unique).
char kThreadStateKey;
// Registry key of {path=, cpath=} waiting for the package library to open.
char kPathsKey;

struct Library {
  const char* name;
  lua_CFunction open;
};

int open_debug(lua_State* L);

// Opened on first use (base at once, package by open_package; strings get a
// stand-in metatable that opens the string library, see lazy_string_index).
constexpr Library kLazy[] = {
    {LUA_STRLIBNAME, luaopen_string},  {LUA_TABLIBNAME, luaopen_table},   {LUA_MATHLIBNAME, luaopen_math},
    {LUA_IOLIBNAME, luaopen_io},       {LUA_OSLIBNAME, luaopen_os},
    {LUA_COLIBNAME, luaopen_coroutine}, {LUA_UTF8LIBNAME, luaopen_utf8},
    {LUA_DBLIBNAME, open_debug},
};

// Opens library `lib` as luaL_openlibs would, unless it is open already;
// leaves nothing on the stack.
void open_library(lua_State* L, const Library& lib) {
  luaL_requiref(L, lib.name, lib.open, 1);
  lua_pop(L, 1);
}

int lazy_string_index(lua_State* L);

// Opens the string library unless it is open, which gives strings their real
// metatable; leaves nothing on the stack.
void open_string(lua_State* L) {
  luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 1);
  lua_pop(L, 1);
  // package.loaded.string set by hand first: the stand-in is still there, so open it for real.
  int top = lua_gettop(L);
  lua_pushliteral(L, "");
  bool stand_in = lua_getmetatable(L, -1) && lua_getfield(L, -1, "__index") == LUA_TFUNCTION &&
                  lua_tocfunction(L, -1) == lazy_string_index;
  lua_settop(L, top);
  if (stand_in) {
    lua_pushcfunction(L, luaopen_string);
    lua_call(L, 0, 0);
  }
}

// Strings' stand-in __index: s:upper() opens the string library, then looks
// the method up again through the real metatable.
int lazy_string_index(lua_State* L) {
  lua_settop(L, 2);
  open_string(L);
  lua_settop(L, 2);
  lua_gettable(L, 1);
  return 1;
}

// Does operation Op (upvalue 1) on the operands on the stack.
int do_arith(lua_State* L) {
  lua_arith(L, static_cast<int>(lua_tointeger(L, lua_upvalueindex(1))));
  return 1;
}

// Strings' stand-in arithmetic ("10" + 1): opens the library, then does the
// arithmetic again (now through the string library's metamethods). An error
// names the caller's line, as it would have without the stand-in.
template <int Op>
int lazy_string_arith(lua_State* L) {
  lua_settop(L, 2);
  open_string(L);
  int n = Op == LUA_OPUNM ? 1 : 2;
  lua_settop(L, n);
  lua_pushinteger(L, Op);
  lua_pushcclosure(L, do_arith, 1);
  lua_insert(L, 1);
  if (lua_pcall(L, n, 1, 0) == LUA_OK) return 1;
  if (lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

// The debug library, with the string library open first, so that
// debug.getmetatable("") sees the real metatable.
int open_debug(lua_State* L) {
  open_string(L);
  return luaopen_debug(L);
}

// Gives strings the stand-in metatable.
void set_string_stand_in(lua_State* L) {
  static constexpr luaL_Reg kStandIn[] = {
      {"__index", lazy_string_index},
      {"__add", lazy_string_arith<LUA_OPADD>},
      {"__sub", lazy_string_arith<LUA_OPSUB>},
      {"__mul", lazy_string_arith<LUA_OPMUL>},
      {"__mod", lazy_string_arith<LUA_OPMOD>},
      {"__pow", lazy_string_arith<LUA_OPPOW>},
      {"__div", lazy_string_arith<LUA_OPDIV>},
      {"__idiv", lazy_string_arith<LUA_OPIDIV>},
      {"__unm", lazy_string_arith<LUA_OPUNM>},
      {nullptr, nullptr},
  };
  lua_pushliteral(L, "");
  luaL_newlib(L, kStandIn);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

// package.preload's loader of a lazy library (upvalue: its Library): opens it
// as luaL_openlibs would, global included, and returns it.
int require_lazy(lua_State* L) {
  const auto* lib = static_cast<const Library*>(lua_touserdata(L, lua_upvalueindex(1)));
  luaL_requiref(L, lib->name, lib->open, 1);
  return 1;
}

// Opens the package library (require, package.*) unless it is open, with the
// paths set_package_paths() stashed; leaves nothing on the stack.
void open_package(lua_State* L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  bool open = lua_getfield(L, -1, LUA_LOADLIBNAME) == LUA_TTABLE;
  lua_pop(L, 2);
  if (open) return;
  // The package library adopts the registry's preload table: fill it first.
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (const Library& lib : kLazy) {
    lua_pushlightuserdata(L, const_cast<Library*>(&lib));
    lua_pushcclosure(L, require_lazy, 1);
    lua_setfield(L, -2, lib.name);
  }
  lua_pop(L, 1);
  preload_modules(L);
  luaL_requiref(L, LUA_LOADLIBNAME, luaopen_package, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kPathsKey) == LUA_TTABLE) {
    lua_getfield(L, -1, "path");
    lua_setfield(L, -3, "path");
    lua_getfield(L, -1, "cpath");
    lua_setfield(L, -3, "cpath");
  }
  lua_pop(L, 2);
}

// The global require until the package library is open: opens it (which
// replaces this global with the real require) and calls the real one.
int lazy_require(lua_State* L) {
  open_package(L);
  lua_getglobal(L, "require");
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

// _G's __index: a missing global that names a lazy library opens it.
int lazy_global(lua_State* L) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char* name = lua_tostring(L, 2);
    if (std::strcmp(name, LUA_LOADLIBNAME) == 0) {
      open_package(L);
      lua_getglobal(L, LUA_LOADLIBNAME);
      return 1;
    }
    for (const Library& lib : kLazy) {
      if (std::strcmp(lib.name, name) == 0) {
        luaL_requiref(L, lib.name, lib.open, 1);
        return 1;
      }
    }
  }
  return 0;
}

// getmetatable, wrapped: a string's metatable is the string library's.
int guarded_getmetatable(lua_State* L) {
  if (lua_type(L, 1) == LUA_TSTRING) open_string(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

// setmetatable, wrapped: replacing _G's metatable first opens every library,
// because the lazy ones would be unreachable afterwards.
int guarded_setmetatable(lua_State* L) {
  lua_pushglobaltable(L);
  bool globals = lua_rawequal(L, 1, -1);
  lua_pop(L, 1);
  if (globals) open_lazy_libraries(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

// The state's allocator: its BlockArena (which frees what malloc made before it took over).
void* arena_alloc(void* ud, void* p, size_t osize, size_t nsize) {
  return static_cast<core::BlockArena*>(ud)->reallocate(p, osize, nsize);
}

// What luaL_newstate's states do, for a state made with lua_newstate: an
// error outside any protected call is reported before Lua aborts, and
// warnings start off, "@on" and "@off" switching them.
int report_panic(lua_State* L) {
  const char* msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string";
  std::fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", msg);
  std::fflush(stderr);
  return 0;
}
void warn_on(void* ud, const char* msg, int tocont);
// Warnings off: only "@on" is heard.
void warn_off(void* ud, const char* msg, int tocont) {
  if (!tocont && std::strcmp(msg, "@on") == 0) lua_setwarnf(static_cast<lua_State*>(ud), warn_on, ud);
}
// The rest of a warning whose first part warn_on printed.
void warn_more(void* ud, const char* msg, int tocont) {
  std::fputs(msg, stderr);
  if (tocont) return;
  std::fputs("\n", stderr);
  std::fflush(stderr);
  lua_setwarnf(static_cast<lua_State*>(ud), warn_on, ud);
}
void warn_on(void* ud, const char* msg, int tocont) {
  if (!tocont && msg[0] == '@') {
    if (std::strcmp(msg, "@off") == 0) lua_setwarnf(static_cast<lua_State*>(ud), warn_off, ud);
    return;
  }
  std::fputs("Lua warning: ", stderr);
  if (tocont) lua_setwarnf(static_cast<lua_State*>(ud), warn_more, ud);
  warn_more(ud, msg, tocont);
}

// A state whose small blocks come from its own arena (building and closing a
// state is mostly small allocations); malloc's under AddressSanitizer, which
// checks the Lua heap only if malloc serves it.
lua_State* new_state() {
#ifndef __SANITIZE_ADDRESS__
  if (auto* arena = new (std::nothrow) core::BlockArena) {
    if (lua_State* L = lua_newstate(arena_alloc, arena)) {
      lua_atpanic(L, report_panic);
      lua_setwarnf(L, warn_off, L);
      return L;
    }
    delete arena;
  }
#endif
  return luaL_newstate();
}

}  // namespace

lua_State* new_thread_state() {
  lua_State* L = new_state();
  if (L == nullptr) throw std::bad_alloc();
  // Nothing made here is garbage: collection steps while building would only re-mark it.
  lua_gc(L, LUA_GCSTOP);
  // A globals table sized for the base library, lazy libraries and a script's
  // globals, so that filling it does not rehash it again and again.
  lua_createtable(L, 0, 64);
  lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
  lua_pop(L, 1);
  set_string_stand_in(L);
  // require "math" and require "queue" work too: open_package preloads them.
  lua_pushcfunction(L, lazy_require);
  lua_setglobal(L, "require");
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, lazy_global);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_getfield(L, -1, "setmetatable");
  lua_pushcclosure(L, guarded_setmetatable, 1);
  lua_setfield(L, -2, "setmetatable");
  lua_getfield(L, -1, "getmetatable");
  lua_pushcclosure(L, guarded_getmetatable, 1);
  lua_setfield(L, -2, "getmetatable");
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kThreadStateKey);
  lua_gc(L, LUA_GCRESTART);
  return L;
}

void close_thread_state(lua_State* L) {
  void* ud = nullptr;
  bool arena = lua_getallocf(L, &ud) == arena_alloc;
  lua_close(L);
  if (arena) delete static_cast<core::BlockArena*>(ud);
}

void open_lazy_libraries(lua_State* L) {
  open_package(L);
  for (const Library& lib : kLazy) open_library(L, lib);
}

void set_package_paths(lua_State* L, std::string_view path, std::string_view cpath) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, LUA_LOADLIBNAME) != LUA_TTABLE) {
    // Not open yet: kept for open_package.
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kPathsKey);
  }
  lua_pushlstring(L, path.data(), path.size());
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, cpath.data(), cpath.size());
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 2);
}

bool is_thread_state(lua_State* L) {
  bool yes = lua_rawgetp(L, LUA_REGISTRYINDEX, &kThreadStateKey) == LUA_TBOOLEAN;
  lua_pop(L, 1);
  return yes;
}

}  // namespace plua::lua
