#include <iostream>

#include <plua/lua/lua.hpp>  // Lua's C API, as plua was built with it
#include <plua/runtime.hpp>

int main(int argc, char** argv) {
  plua::Runtime rt;  // a lua_State with the standard library and the plua modules

  // Run code; a Lua error comes back as a plua::Error exception...
  rt.run_string("answer = 6 * 7");
  try {
    rt.run_string("error('boom')", "=example");
  } catch (const plua::Error& e) {
    std::cout << "caught: " << e.message() << "\n";  // "example:1: boom"; e.traceback() has the rest
  }

  // ...or as a plua::Outcome, from the try_ variants.
  if (argc > 1) {
    plua::Outcome out = rt.try_run_file(argv[1]);
    if (!out) std::cerr << out.message << "\n" << out.traceback << "\n";
  }

  // The state is yours for your own bindings.
  lua_getglobal(rt.state(), "answer");
  std::cout << "answer: " << lua_tointeger(rt.state(), -1) << "\n";
  lua_pop(rt.state(), 1);

  // A state the application made itself can get the plua modules too.
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  plua::open_modules(L);  // require "time", "thread", ... now work in L
  if (luaL_dostring(L, "return require('time').monotonic() > 0") == LUA_OK)
    std::cout << "own state: " << (lua_toboolean(L, -1) ? "ok" : "?") << "\n";
  plua::shutdown_modules(L);  // before lua_close: joins L's non-daemon threads
  lua_close(L);
}
