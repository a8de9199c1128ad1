// Writes the seed corpora of codec_fuzz and codec_values_fuzz from real
// encodings: each Lua expression below is evaluated in a plua state (with the
// plua modules preloaded) and encoded as the codec sends it; plain values are
// also encoded by the C++ side. Run from the fuzz build:
//   plua_make_codec_corpus tests/fuzz/corpus
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "plua/core/codec_format.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/lua.hpp"
#include "plua/lua/modules.hpp"

namespace {

const char* const kLuaSeeds[] = {
    "return nil",
    "return true, false",
    "return 42, -7, math.maxinteger, math.mininteger",
    "return 1.5, -0.0, 1/0, -1/0, 0/0",
    "return 'hello', '', string.rep('x', 300)",
    "return '\\0\\1\\2\\255 binary'",
    "return {1, 2, 3}",
    "return {a = 1, b = 'two', [3.5] = true, [false] = 0}",
    "return {1, nil, 3, n = 3}",
    "return {{}, {{}}, {{{}}}}",
    "local t = {} t.self = t return t",
    "local s = {1} return {s, s, k = s}",
    "local a, b = {}, {} a.b = b b.a = a return a, b",
    "local x = 10 return function(y) return x + y end",
    "local n = 0 local function inc() n = n + 1 return n end "
    "local function get() return n end return inc, get",
    "local function fact(k) if k < 2 then return 1 end return k * fact(k - 1) end return fact",
    "return function() return print end",
    "return _G",
    "return string, table, math",
    "return print, string.format, os.time",
    "return require('queue').Queue()",
    "return require('lock').Lock(), require('lock').Event()",
    "return require('shared').table({x = 1})",
    "return require('shared').Value('int', 5)",
    "return {q = require('queue').Queue(), n = 1}",
    "local t = {} for i = 1, 40 do t[i] = {i} end return t",
    "local t = {} for i = 1, 40 do t['k' .. i] = i end return t",
};

void write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::path root = argv[1];
  lua_State* L = luaL_newstate();
  luaL_openlibs(L);
  plua::lua::preload_modules(L);
  int n = 0;
  for (const char* src : kLuaSeeds) {
    lua_settop(L, 0);
    if (luaL_loadstring(L, src) != LUA_OK || lua_pcall(L, 0, LUA_MULTRET, 0) != LUA_OK) {
      std::fprintf(stderr, "seed %d: %s\n", n, lua_tostring(L, -1));
      return 1;
    }
    std::string message = plua::lua::encode(L, 1, lua_gettop(L));
    char name[32];
    std::snprintf(name, sizeof name, "seed-%02d", n++);
    write(root / "codec", name, message);
    // The by-reference objects in it hold references: let them go.
    plua::lua::discard(message);
  }
  lua_settop(L, 0);
  plua::lua::run_shutdown_hooks(L);
  lua_close(L);

  using plua::core::Value;
  const std::vector<std::vector<Value>> plain = {
      {},
      {Value()},
      {Value(true), Value(std::int64_t{-5}), Value(2.25), Value("text")},
      {Value(Value::Array{Value(1), Value(2), Value(Value::Array{Value("x")})})},
      {Value(Value::Map{{Value("k"), Value(1)}, {Value(7), Value(Value::Map{{Value(true), Value("v")}})}})},
      {Value(std::string("\0bin\xff", 5)), Value(Value::Array{})},
  };
  n = 0;
  for (const auto& values : plain) {
    char name[32];
    std::snprintf(name, sizeof name, "plain-%02d", n++);
    write(root / "codec_values", name, plua::core::codec::encode_values(values));
  }
  // The Lua side's messages of plain data are the C++ side's input too.
  for (const auto& entry : std::filesystem::directory_iterator(root / "codec")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write(root / "codec_values", "lua-" + entry.path().filename().string(), bytes);
  }
  return 0;
}
