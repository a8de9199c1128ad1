// Lua binding of the `threadlocal` module (Python's threading.local): an
// object whose fields each thread reads and writes separately. Every thread
// has its own lua_State, so each state keeps its own fields for the object:
// they are the uservalue of that state's userdata for it.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/weak_table.hpp"

namespace {

namespace pl = plua::lua;

constexpr const char* kLocal = "plua.threadlocal.Local";

// Registry key of this state's weak table: object id -> its userdata here.
char kObjectsKey;

// The identity every state's userdata for one thread-local shares.
struct Identity {
  std::uint64_t id;
};

struct Box {
  std::shared_ptr<Identity> identity;
};

std::uint64_t next_id() {
  static std::atomic<std::uint64_t> counter{0};
  return ++counter;
}

Box* check_box(lua_State* L, int idx) { return static_cast<Box*>(luaL_checkudata(L, idx, kLocal)); }

// Pushes this state's userdata for the identity, with empty fields if new here.
void push_local(lua_State* L, const std::shared_ptr<Identity>& identity) {
  plua::lua::push_registry_weak_table(L, &kObjectsKey, "v");
  auto key = static_cast<lua_Integer>(identity->id);
  if (lua_rawgeti(L, -1, key) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  auto* box = static_cast<Box*>(lua_newuserdatauv(L, sizeof(Box), 1));
  new (box) Box{identity};
  luaL_setmetatable(L, kLocal);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, key);
  lua_remove(L, -2);
}

int local_new(lua_State* L) {
  push_local(L, std::make_shared<Identity>(Identity{next_id()}));
  return 1;
}

// threadlocal(): the module table is callable, like threading.local().
int module_call(lua_State* L) {
  push_local(L, std::make_shared<Identity>(Identity{next_id()}));
  return 1;
}

// Every key is data: reads and writes go to this state's fields.
int local_index(lua_State* L) {
  check_box(L, 1);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

int local_newindex(lua_State* L) {
  check_box(L, 1);
  luaL_checkany(L, 3);
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);  // raises for a nil or NaN key, as a table would
  return 0;
}

// pairs(local): this thread's fields.
int local_pairs(lua_State* L) {
  check_box(L, 1);
  lua_getglobal(L, "next");
  lua_getiuservalue(L, 1, 1);
  lua_pushnil(L);
  return 3;
}

int local_tostring(lua_State* L) {
  Box* box = check_box(L, 1);
  lua_pushfstring(L, "<threadlocal %I>", static_cast<lua_Integer>(box->identity->id));
  return 1;
}

int local_gc(lua_State* L) {
  auto* box = static_cast<Box*>(lua_touserdata(L, 1));
  if (box) box->~Box();
  return 0;
}

void local_write_ref(lua_State* L, int idx, std::string& out) {
  pl::write_shared_ref(out, check_box(L, idx)->identity);
}

void local_push_ref(lua_State* L, std::string_view ref) {
  push_local(L, pl::take_shared_ref<Identity>(L, ref, kLocal));
}

constexpr luaL_Reg kMeta[] = {
    {"__index", local_index},       {"__newindex", local_newindex}, {"__pairs", local_pairs},
    {"__tostring", local_tostring}, {"__gc", local_gc},             {nullptr, nullptr},
};

constexpr luaL_Reg kFunctions[] = {
    {"new", local_new},
    {nullptr, nullptr},
};

}  // namespace

int luaopen_plua_threadlocal(lua_State* L) {
  if (luaL_newmetatable(L, kLocal)) luaL_setfuncs(L, kMeta, 0);
  lua_pop(L, 1);
  pl::register_sendable_class(
      pl::SendableClass{"threadlocal", kLocal, local_write_ref, local_push_ref, pl::drop_shared_ref<Identity>, true});
  luaL_newlib(L, kFunctions);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, module_call);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);
  return 1;
}
