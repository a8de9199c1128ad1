#include "plua/runtime.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>

#include "plua/core/cancel.hpp"
#include "plua/lua/lua.hpp"
#include "plua/lua/modules.hpp"

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

namespace {

// A scratch file that removes itself.
struct TempFile {
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/plua_runtime_testXXXXXX";
    int fd = mkstemp(name);
    path = name;
    EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
  }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

bool g_hook_ran = false;

}  // namespace

TEST(Runtime, RunFileSkipsAShebangLine) {
  TempFile file("#!/usr/bin/env plua\nanswer = 42\n");
  plua::Runtime rt;
  rt.run_file(file.path);
  lua_getglobal(rt.state(), "answer");
  EXPECT_EQ(lua_tointeger(rt.state(), -1), 42);
}

TEST(Runtime, RunFileErrorsCarryFileLineAndTraceback) {
  TempFile file("local x = 1\nerror('in file')\n");
  plua::Runtime rt;
  auto out = rt.try_run_file(file.path);
  ASSERT_FALSE(out.ok);
  EXPECT_EQ(out.message, file.path + ":2: in file");
  EXPECT_EQ(out.traceback.rfind("stack traceback:", 0), 0u) << out.traceback;
  EXPECT_THROW(rt.run_file(file.path), plua::Error);
}

TEST(Runtime, NonStringErrorObjects) {
  plua::Runtime rt;
  EXPECT_EQ(rt.try_run_string("error({})").message, "(error object is a table value)");
  EXPECT_EQ(rt.try_run_string("error()").message, "(error object is a nil value)");
  EXPECT_EQ(rt.try_run_string("error(42)").message, "42");
}

TEST(Runtime, CallLeavesResults) {
  plua::Runtime rt;
  lua_State* L = rt.state();
  rt.run_string("function pair(a) return a, a * 2 end");
  lua_getglobal(L, "pair");
  lua_pushinteger(L, 21);
  ASSERT_TRUE(rt.call(1, LUA_MULTRET));
  ASSERT_EQ(lua_gettop(L), 2);
  EXPECT_EQ(lua_tointeger(L, 1), 21);
  EXPECT_EQ(lua_tointeger(L, 2), 42);
  lua_settop(L, 0);
  lua_getglobal(L, "error");
  lua_pushstring(L, "failed call");
  auto out = rt.call(1, 0);
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.message, "failed call");
  EXPECT_EQ(lua_gettop(L), 0);  // nothing left behind on failure
}

TEST(Runtime, StopFlagInterruptsABlockingCall) {
  plua::Runtime rt;
  plua::core::StopFlag& flag = plua::core::this_thread_stop_flag();
  std::thread interrupter([&flag] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    flag.request();
  });
  auto started = std::chrono::steady_clock::now();
  auto out = rt.try_run_string("require('time').sleep(30)");
  interrupter.join();
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.message, "KeyboardInterrupt: interrupted!");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  EXPECT_TRUE(rt.try_run_string("require('time').sleep(0)").ok);  // the interrupt was consumed
}

TEST(Runtime, CloseRunsShutdownHooks) {
  g_hook_ran = false;
  {
    plua::Runtime rt;
    plua::lua::add_shutdown_hook(rt.state(), [](lua_State*) -> int {
      g_hook_ran = true;
      return 0;
    });
    EXPECT_FALSE(g_hook_ran);
  }
  EXPECT_TRUE(g_hook_ran);
}

TEST(Runtime, IgnoreEnvironmentSkipsLuaPath) {
  setenv("LUA_PATH", "/from/the/environment/?.lua", 1);
  {
    plua::Runtime rt;
    rt.run_string("path = package.path");
    lua_getglobal(rt.state(), "path");
    EXPECT_STREQ(lua_tostring(rt.state(), -1), "/from/the/environment/?.lua");
  }
  {
    plua::Runtime rt(plua::Runtime::Options{true});
    rt.run_string("path = package.path");
    lua_getglobal(rt.state(), "path");
    EXPECT_EQ(std::string(lua_tostring(rt.state(), -1)).find("/from/the/environment"), std::string::npos);
  }
  unsetenv("LUA_PATH");
}

TEST(OpenModules, LeavesTheApplicationsGlobalsAlone) {
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  lua_pushinteger(L, 7);
  lua_setglobal(L, "mine");
  plua::open_modules(L);
  EXPECT_EQ(luaL_dostring(L, "return mine == 7 and time == nil and package.loaded.time == nil"), LUA_OK);
  EXPECT_TRUE(lua_toboolean(L, -1));
  g_hook_ran = false;
  plua::lua::add_shutdown_hook(L, [](lua_State*) -> int {
    g_hook_ran = true;
    return 0;
  });
  plua::shutdown_modules(L);
  EXPECT_TRUE(g_hook_ran);
  lua_close(L);
}
