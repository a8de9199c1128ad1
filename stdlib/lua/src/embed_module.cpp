// Lua binding of `plua.embed`, the module the embedding API's workers start
// through: a worker's thread.Thread has embed.run as its target, so that the
// worker's own state is put under its ScriptControl (interrupts, memory
// budget) before the script runs. Not meant for scripts.
#include "plua/lua/errors.hpp"
#include "plua/lua/script_control.hpp"

namespace {

namespace pl = plua::lua;

// run(control_id, fn, ...): calls fn(...) under the control, returns its results.
int embed_run(lua_State* L) {
  lua_Integer id = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  std::shared_ptr<pl::ScriptControl> control = pl::ScriptControl::take(id);
  if (!control) return luaL_error(L, "plua.embed.run: no worker %I waits to start", id);
  int nargs = lua_gettop(L) - 2;
  {
    pl::ScriptRun run(L, *control, control->hook_code(), true);
    lua_call(L, nargs, LUA_MULTRET);
  }
  return lua_gettop(L) - 1;
}

constexpr luaL_Reg kFunctions[] = {
    {"run", embed_run},
    {nullptr, nullptr},
};

}  // namespace

int luaopen_plua_embed(lua_State* L) {
  luaL_newlib(L, kFunctions);
  return 1;
}
