#include "pretty_printer.hpp"

#include <gtest/gtest.h>

#include <string>

#include "plua/runtime.hpp"

namespace {

// Evaluates `expr` in a fresh runtime and renders its value.
std::string show(const std::string& expr, const plua::host::PrettyOptions& options = {}) {
  plua::Runtime rt;
  lua_State* L = rt.state();
  std::string code = "return " + expr;
  if (luaL_loadstring(L, code.c_str()) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    return std::string("<lua error: ") + lua_tostring(L, -1) + ">";
  return plua::host::pretty(L, -1, options);
}

TEST(PrettyPrinter, Scalars) {
  EXPECT_EQ(show("nil"), "nil");
  EXPECT_EQ(show("true"), "true");
  EXPECT_EQ(show("42"), "42");
  EXPECT_EQ(show("1.0"), "1.0");
  EXPECT_EQ(show("0.5"), "0.5");
  EXPECT_EQ(show("'hi'"), "\"hi\"");
}

TEST(PrettyPrinter, StringsAreQuotedWithEscapes) {
  EXPECT_EQ(show(R"("a\"b\\c\n\t\0")"), R"("a\"b\\c\n\t\x00")");
  EXPECT_EQ(plua::host::quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // UTF-8 stays readable
}

TEST(PrettyPrinter, SequenceThenSortedKeys) {
  EXPECT_EQ(show("{}"), "{}");
  EXPECT_EQ(show("{3, 2, 1}"), "{3, 2, 1}");
  EXPECT_EQ(show("{1, 2, z = 1, a = 2, [10] = 'ten', [-1.5] = 0, ['not id'] = 3, ['end'] = 4}"),
            "{1, 2, [-1.5] = 0, [10] = \"ten\", a = 2, [\"end\"] = 4, [\"not id\"] = 3, z = 1}");
  EXPECT_EQ(show("{[true] = 1}"), "{[true] = 1}");
}

TEST(PrettyPrinter, NestedTables) {
  EXPECT_EQ(show("{a = {b = {c = {}}}}"), "{a = {b = {c = {}}}}");
}

TEST(PrettyPrinter, CyclesAreMarked) {
  EXPECT_EQ(show("(function() local t = {1} t.me = t return t end)()"), "{1, me = <cycle>}");
  // A table seen twice but not inside itself is shown both times.
  EXPECT_EQ(show("(function() local s = {1} return {s, s} end)()"), "{{1}, {1}}");
}

TEST(PrettyPrinter, DepthIsBounded) {
  plua::host::PrettyOptions options;
  options.max_depth = 2;
  EXPECT_EQ(show("{{{{}}}}", options), "{{{...}}}");
}

TEST(PrettyPrinter, LongTablesAreTruncated) {
  plua::host::PrettyOptions options;
  options.max_items = 3;
  options.width = 1000;
  EXPECT_EQ(show("{1, 2, 3, 4, 5, x = 1}", options), "{1, 2, 3, ... (3 more)}");
  options.max_total = 4;
  EXPECT_EQ(show("{{1, 2, 3}, {4, 5, 6}}", options), "{{1, 2, 3}, ... (1 more)}");
}

TEST(PrettyPrinter, LongStringsInsideTablesAreCut) {
  plua::host::PrettyOptions options;
  options.max_string = 4;
  EXPECT_EQ(show("{'abcdefgh'}", options), "{\"abcd\"... (8 bytes)}");
  EXPECT_EQ(show("'abcdefgh'", options), "\"abcdefgh\"");  // the value itself is shown whole
}

TEST(PrettyPrinter, WideTablesAreLaidOutOneEntryALine) {
  plua::host::PrettyOptions options;
  options.width = 20;
  EXPECT_EQ(show("{alpha = 'aaaaaa', beta = {1, 2}}", options),
            "{\n  alpha = \"aaaaaa\",\n  beta = {1, 2},\n}");
}

TEST(PrettyPrinter, TostringMetamethodIsUsed) {
  EXPECT_EQ(show("setmetatable({}, {__tostring = function() return 'custom' end})"), "custom");
  EXPECT_EQ(show("{setmetatable({}, {__tostring = function() return 'inner' end})}"), "{inner}");
}

TEST(PrettyPrinter, OtherValuesUseTostring) {
  EXPECT_EQ(show("print").rfind("function: ", 0), 0u);
  EXPECT_EQ(show("io.stdout").rfind("file (0x", 0), 0u);
}

TEST(PrettyPrinter, FailingTostringRaises) {
  plua::Runtime rt;
  auto out = rt.try_run_string("x = setmetatable({}, {__tostring = function() error('no') end})");
  ASSERT_TRUE(out.ok);
  lua_State* L = rt.state();
  lua_pushcfunction(L, [](lua_State* L) -> int {
    lua_getglobal(L, "x");
    plua::host::pretty(L, -1);
    return 0;
  });
  EXPECT_NE(lua_pcall(L, 0, 0, 0), LUA_OK);
  EXPECT_NE(std::string(lua_tostring(L, -1)).find("no"), std::string::npos);
}

}  // namespace
