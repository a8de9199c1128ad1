#include "plua/runtime.hpp"

#include <gtest/gtest.h>

#include "plua/lua/lua.hpp"

TEST(Runtime, RunsAString) {
  plua::Runtime rt;
  rt.run_string("x = 6 * 7");
  lua_getglobal(rt.state(), "x");
  EXPECT_EQ(lua_tointeger(rt.state(), -1), 42);
}

TEST(Runtime, ErrorsBecomeExceptionsWithTraceback) {
  plua::Runtime rt;
  try {
    rt.run_string("local function f() error('boom') end f()", "=chunk");
    FAIL() << "expected plua::Error";
  } catch (const plua::Error& e) {
    EXPECT_EQ(e.message(), "chunk:1: boom");
    EXPECT_NE(e.traceback().find("stack traceback:"), std::string::npos);
    EXPECT_NE(e.traceback().find("in local 'f'"), std::string::npos) << e.traceback();
  }
}

TEST(Runtime, TryRunReportsSyntaxErrors) {
  plua::Runtime rt;
  auto out = rt.try_run_string("x = = 1", "=chunk");
  EXPECT_FALSE(out.ok);
  EXPECT_NE(out.message.find("unexpected symbol"), std::string::npos) << out.message;
}

TEST(Runtime, ErrorObjectsAreShownThroughTostring) {
  plua::Runtime rt;
  auto out = rt.try_run_string(
      "error(setmetatable({}, {__tostring = function() return 'custom' end}))");
  EXPECT_EQ(out.message, "custom");
}

TEST(Runtime, PluaModulesArePreloaded) {
  plua::Runtime rt;
  EXPECT_TRUE(rt.try_run_string("assert(require('time').monotonic() > 0)").ok);
}

TEST(Runtime, RunFileMissing) {
  plua::Runtime rt;
  auto out = rt.try_run_file("/nonexistent/x.lua");
  EXPECT_FALSE(out.ok);
  EXPECT_NE(out.message.find("cannot open"), std::string::npos);
}

TEST(Runtime, CloseTwiceIsHarmless) {
  plua::Runtime rt;
  rt.close();
  rt.close();
  EXPECT_EQ(rt.state(), nullptr);
}

TEST(OpenModules, WorksInAnApplicationsOwnState) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  plua::open_modules(L);
  EXPECT_EQ(luaL_dostring(L, "return require('time').time() > 0"), LUA_OK);
  EXPECT_TRUE(lua_toboolean(L, -1));
  lua_close(L);
}
