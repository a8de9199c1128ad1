// Fuzzes plua::lua::decode, which turns bytes read from a queue, a pipe or a
// spawn child's start message into Lua values, each input into a fresh
// lua_State with the standard libraries and the plua modules preloaded.
//
// Checked: malformed bytes raise a Lua error (never a crash, an out-of-bounds
// read, or memory out of proportion to the input); a successful decode
// pushes exactly the values it reports; after a failed decode the state is
// balanced and still decodes a good message; what decodes re-encodes, and that
// message decodes again.
//
// Surface, honestly: the codec trusts its peers for code (codec.hpp, "Trust").
// Inputs holding a Function value are rejected unrun: Lua 5.4's own bytecode
// loader is not safe on malformed chunks (this target found a 171-byte chunk
// on which Debian's liblua5.4 lua_load writes through a null pointer, with no
// plua code involved), so fuzzing it would only find that again. What decode
// does around bytecode (the load's memory budget, upvalue counts, joins) is
// covered by decoder_hostile_test. Everything else is fuzzed, by-reference
// object lookups included. The harness's state has an empty package.path and
// package.cpath, so a Module or CFunction value can only require plua's
// preloaded modules and the standard libraries, not files.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include "plua/core/codec_format.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/lua.hpp"
#include "plua/lua/modules.hpp"

namespace {

namespace fmt = plua::core::codec;

struct Input {
  std::string_view message;
  int count = 0;
};

// decode, with a check that it pushed what it says (runs under lua_pcall).
int decode_checked(lua_State* L) {
  auto* in = static_cast<Input*>(lua_touserdata(L, 1));
  int base = lua_gettop(L);
  in->count = plua::lua::decode(L, in->message);
  if (in->count < 0 || lua_gettop(L) != base + in->count) std::abort();
  return in->count;
}

// encode of the values on the stack, then decode of the result (runs under lua_pcall).
int reencode(lua_State* L) {
  int n = lua_gettop(L);
  std::string again = plua::lua::encode(L, 1, n);
  Input in{again};
  lua_settop(L, 0);
  lua_pushcfunction(L, decode_checked);
  lua_pushlightuserdata(L, &in);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    // A message encode just made must decode.
    std::fprintf(stderr, "re-encoded message failed to decode: %s\n", lua_tostring(L, -1));
    std::abort();
  }
  if (in.count != n) std::abort();
  return 0;
}

// True if the message holds a Function value anywhere (a walk of the format
// in codec_format.hpp; malformed bytes answer false and go to decode).
bool skip_value(fmt::Reader& r, bool* code, int depth) {
  if (depth > fmt::kMaxDepth) return false;
  switch (r.u8()) {
    case fmt::kNil:
    case fmt::kFalse:
    case fmt::kTrue:
    case fmt::kGlobals:
      return true;
    case fmt::kInt:
    case fmt::kFloat:
      r.bytes(8);
      return true;
    case fmt::kString:
    case fmt::kModule:
      r.str();
      return true;
    case fmt::kRef:
      r.varint();
      return true;
    case fmt::kCFunction:
      r.str();
      r.str();
      return true;
    case fmt::kObject:
      r.str();
      r.str();
      r.str();
      return true;
    case fmt::kTable: {
      std::uint64_t n = r.u32();
      n += 2 * std::uint64_t{r.u32()};
      if (n > r.remaining()) return false;
      for (std::uint64_t i = 0; i < n; ++i)
        if (!skip_value(r, code, depth + 1)) return false;
      return true;
    }
    case fmt::kFunction:
      *code = true;
      return false;
    default:
      return false;
  }
}

bool holds_code(std::string_view message) {
  bool code = false;
  try {
    fmt::Reader r(message);
    std::size_t n = fmt::read_header(r);
    for (std::size_t i = 0; i < n && skip_value(r, &code, 1); ++i) {
    }
  } catch (const fmt::FormatError&) {
  }
  return code;
}

lua_State* fresh_state() {
  lua_State* L = luaL_newstate();
  if (!L) std::abort();
  luaL_openlibs(L);
  plua::lua::preload_modules(L);
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  return L;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view message(reinterpret_cast<const char*>(data), size);
  if (holds_code(message)) return -1;  // not kept in the corpus (see "Surface" above)
  lua_State* L = fresh_state();

  // The queues' fast path first: it must agree with decode when it answers.
  if (plua::lua::decode_scalar(L, message)) lua_pop(L, 1);

  Input in{message};
  lua_pushcfunction(L, decode_checked);
  lua_pushlightuserdata(L, &in);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) == LUA_OK) {
    // Re-encode what was decoded (a refusal is fine: e.g. a received object
    // the encoder may not send on); what encode makes must decode.
    lua_pushcfunction(L, reencode);
    lua_insert(L, 1);
    lua_pcall(L, lua_gettop(L) - 1, 0, 0);
  } else {
    // Failed: only the error value is left, and the state still works.
    if (lua_gettop(L) != 1) std::abort();
    lua_settop(L, 0);
    static const char kGood[] = "\xB7\x00\x02\x03\x07\x00\x00\x00\x00\x00\x00\x00\x05\x02hi";
    Input good{std::string_view(kGood, sizeof kGood - 1)};
    lua_pushcfunction(L, decode_checked);
    lua_pushlightuserdata(L, &good);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK || good.count != 2 || lua_tointeger(L, 1) != 7 ||
        std::string_view(lua_tostring(L, 2)) != "hi")
      std::abort();
  }
  lua_settop(L, 0);
  plua::lua::run_shutdown_hooks(L);
  lua_close(L);
  return 0;
}
