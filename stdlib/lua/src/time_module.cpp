// Lua binding of the `time` module: Python's clock calls and an interruptible sleep.
#include <cmath>

#include "plua/core/cancel.hpp"
#include "plua/core/clock.hpp"
#include "plua/lua/errors.hpp"

namespace {

int time_time(lua_State* L) {
  lua_pushnumber(L, plua::core::wall_time());
  return 1;
}

int time_monotonic(lua_State* L) {
  lua_pushnumber(L, plua::core::monotonic_time());
  return 1;
}

int time_perf_counter(lua_State* L) {
  lua_pushnumber(L, plua::core::perf_counter());
  return 1;
}

// sleep(seconds): waits, but gives way to Ctrl-C and other interrupts.
int time_sleep(lua_State* L) {
  lua_Number seconds = luaL_checknumber(L, 1);
  if (seconds != seconds || seconds < 0) luaL_argerror(L, 1, "sleep length must be non-negative");
  if (std::isinf(seconds)) luaL_argerror(L, 1, "sleep length must be finite");
  auto deadline = plua::core::Deadline::after(seconds);
  plua::lua::call_core(L, "time.sleep", [&] { plua::core::sleep_until(deadline); });
  return 0;
}

constexpr luaL_Reg kFunctions[] = {
    {"time", time_time},
    {"monotonic", time_monotonic},
    {"perf_counter", time_perf_counter},
    {"sleep", time_sleep},
    {nullptr, nullptr},
};

}  // namespace

int luaopen_plua_time(lua_State* L) {
  luaL_newlib(L, kFunctions);
  return 1;
}
