// The codec's scalar fast path (encode_scalar / decode_scalar, used by queue
// put and get) against the general encoder and decoder: the same bytes, the
// same values, and a clean refusal of everything it does not handle.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "plua/lua/codec.hpp"

namespace {

using plua::lua::decode;
using plua::lua::decode_scalar;
using plua::lua::encode;
using plua::lua::encode_scalar;
using plua::lua::kScalarMessageMax;

class CodecScalar : public ::testing::Test {
 protected:
  CodecScalar() : L(luaL_newstate()) { luaL_openlibs(L); }
  ~CodecScalar() override { lua_close(L); }

  // Evaluates `expr` and leaves its value on the stack.
  void push(const std::string& expr) {
    std::string code = "return " + expr;
    ASSERT_EQ(luaL_loadstring(L, code.c_str()), LUA_OK);
    ASSERT_EQ(lua_pcall(L, 0, 1, 0), LUA_OK) << lua_tostring(L, -1);
  }

  // True when the two stack values are the same type and value (NaN equals NaN,
  // -0.0 differs from 0.0, integer differs from float).
  bool same(int a, int b) {
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_setglobal(L, "b_");
    lua_setglobal(L, "a_");
    push(R"((function(a, b)
      if math.type(a) ~= math.type(b) or type(a) ~= type(b) then return false end
      if a ~= a then return b ~= b end
      if type(a) == "number" and a == 0 then return 1 / a == 1 / b end
      return a == b
    end)(a_, b_))");
    bool r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
  }

  lua_State* L;
};

TEST_F(CodecScalar, WritesWhatEncodeWritesAndReadsItBack) {
  const char* values[] = {
      "nil", "true", "false", "0", "42", "-7", "math.maxinteger", "math.mininteger",
      "42.0", "-0.0", "0.0", "1/0", "-1/0", "0/0", "3.25", "''", "'a\\0b\\255'",
      "('x'):rep(59)",
  };
  for (const char* v : values) {
    SCOPED_TRACE(v);
    lua_settop(L, 0);
    push(v);
    char buf[kScalarMessageMax];
    std::size_t n = encode_scalar(L, 1, buf);
    ASSERT_GT(n, 0u);
    ASSERT_LE(n, kScalarMessageMax);
    EXPECT_EQ(std::string(buf, n), encode(L, 1, 1, "item"));
    ASSERT_TRUE(decode_scalar(L, std::string_view(buf, n)));
    EXPECT_TRUE(same(1, 2));
  }
}

TEST_F(CodecScalar, LongStringsAreWrittenByEncodeAndReadByEither) {
  for (const char* v : {"('x'):rep(60)", "('y'):rep(127)", "('z'):rep(128)", "('w'):rep(5000)"}) {
    SCOPED_TRACE(v);
    lua_settop(L, 0);
    push(v);
    char buf[kScalarMessageMax];
    EXPECT_EQ(encode_scalar(L, 1, buf), 0u);
    std::string message = encode(L, 1, 1, "item");
    if (!decode_scalar(L, message)) {
      EXPECT_EQ(lua_gettop(L), 1);
      EXPECT_EQ(decode(L, message), 1);
    }
    EXPECT_TRUE(same(1, 2));
  }
}

TEST_F(CodecScalar, LeavesEverythingElseToTheGeneralCodec) {
  for (const char* v : {"{}", "{1, 2}", "{x = 'y'}", "print", "function() end"}) {
    SCOPED_TRACE(v);
    lua_settop(L, 0);
    push(v);
    char buf[kScalarMessageMax];
    EXPECT_EQ(encode_scalar(L, 1, buf), 0u);
    // decode_scalar declines what encode wrote, pushing nothing; decode reads it.
    std::string message = encode(L, 1, 1, "item");
    EXPECT_FALSE(decode_scalar(L, message));
    EXPECT_EQ(lua_gettop(L), 1);
    EXPECT_EQ(decode(L, message), 1);
    EXPECT_EQ(lua_type(L, 2), lua_type(L, 1));
  }
}

TEST_F(CodecScalar, DeclinesOtherMessagesAndMalformedBytes) {
  lua_settop(L, 0);
  push("1");
  push("2");
  std::string two = encode(L, 1, 2, "args");
  std::string none = encode(L, 1, 0, "args");
  std::string one = encode(L, 1, 1, "args");
  lua_settop(L, 0);
  std::string bad_magic = one;
  bad_magic[0] = 0;
  const std::string cases[] = {two, none, one.substr(0, 11), one + "x", bad_magic, "", std::string("\xB7\x00\x01\x05\x05" "abc", 8)};
  for (const std::string& m : cases) {
    EXPECT_FALSE(decode_scalar(L, m));
    EXPECT_EQ(lua_gettop(L), 0);
  }
  EXPECT_TRUE(decode_scalar(L, one));
  EXPECT_EQ(lua_tointeger(L, -1), 1);
}

}  // namespace
