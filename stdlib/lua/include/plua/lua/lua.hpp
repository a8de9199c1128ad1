// The one place plua includes Lua's headers. Debian's liblua5.4-c++ exports C
// symbols but throws a C++ exception from lua_error, so C++ destructors run on
// the way out. Consequence for every binding: never `catch (...)` around code
// that may raise a Lua error, or the Lua error is swallowed.
#pragma once

extern "C" {
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
}
