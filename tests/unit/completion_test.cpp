#include "completion.hpp"

#include <gtest/gtest.h>

#include "plua/runtime.hpp"

namespace {

using Words = std::vector<std::string>;

class Completion : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_.run_string(R"(
      config = {alpha = 1, beta = {gamma = 2}, ["not a name"] = 3, [1] = 4}
      local methods = {greet = function() end, grow = function() end, grade = 5}
      obj = setmetatable({own = true}, {__index = methods})
      loop = setmetatable({}, {}) getmetatable(loop).__index = loop
      trap = setmetatable({}, {__index = function() error("must not run") end})
    )");
  }
  Words complete(std::string_view word) { return plua::host::completions(rt_.state(), word); }
  plua::Runtime rt_;
};

TEST_F(Completion, Globals) {
  EXPECT_EQ(complete("conf"), (Words{"config"}));
  EXPECT_EQ(complete("pri"), (Words{"print"}));
}

TEST_F(Completion, KeywordsToo) {
  EXPECT_EQ(complete("functio"), (Words{"function"}));
  EXPECT_EQ(complete("whil"), (Words{"while"}));
}

TEST_F(Completion, TableFields) {
  EXPECT_EQ(complete("config."), (Words{"config.alpha", "config.beta"}));
  EXPECT_EQ(complete("config.beta.g"), (Words{"config.beta.gamma"}));
  EXPECT_EQ(complete("string.for"), (Words{"string.format"}));
}

TEST_F(Completion, FieldsThroughIndexTables) {
  EXPECT_EQ(complete("obj.g"), (Words{"obj.grade", "obj.greet", "obj.grow"}));
  EXPECT_EQ(complete("obj."), (Words{"obj.grade", "obj.greet", "obj.grow", "obj.own"}));
}

TEST_F(Completion, MethodsOnlyAfterColon) {
  EXPECT_EQ(complete("obj:g"), (Words{"obj:greet", "obj:grow"}));
  EXPECT_EQ(complete("obj:"), (Words{"obj:greet", "obj:grow"}));
}

TEST_F(Completion, StringMethods) {
  rt_.run_string("s = 'text'");
  EXPECT_EQ(complete("s:up"), (Words{"s:upper"}));
}

TEST_F(Completion, NothingForUnknownOrNonTables) {
  EXPECT_TRUE(complete("nosuch.").empty());
  EXPECT_TRUE(complete("config.alpha.").empty());
  EXPECT_TRUE(complete("obj:greet.").empty());
  EXPECT_TRUE(complete("config..x").empty());
}

TEST_F(Completion, NeverRunsMetamethodsAndStopsOnLoops) {
  EXPECT_TRUE(complete("trap.x").empty());
  EXPECT_TRUE(complete("loop.x").empty());
  EXPECT_EQ(lua_gettop(rt_.state()), 0);
}

}  // namespace
