// Inputs the fuzz targets (tests/fuzz) found or aimed at, kept as plain
// tests: bytes a hostile or broken peer might send to the codec and the
// manager's framing must end in an error, not a crash or a huge allocation.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <new>
#include <string>

#include "plua/core/codec_format.hpp"
#include "plua/core/frame_connection.hpp"
#include "plua/lua/codec.hpp"

namespace codec = plua::core::codec;

namespace {

// A class that travels by in-process reference, for the forged-reference tests.
struct Box {
  int value;
};
constexpr const char* kBox = "decoder_hostile_test.Box";

void push_box(lua_State* L, std::shared_ptr<Box> box) {
  auto* slot = static_cast<std::shared_ptr<Box>*>(lua_newuserdatauv(L, sizeof(std::shared_ptr<Box>), 0));
  new (slot) std::shared_ptr<Box>(std::move(box));
  luaL_setmetatable(L, kBox);
}
int box_gc(lua_State* L) {
  static_cast<std::shared_ptr<Box>*>(luaL_checkudata(L, 1, kBox))->~shared_ptr();
  return 0;
}
void box_write(lua_State* L, int idx, std::string& out) {
  plua::lua::write_shared_ref(out, *static_cast<std::shared_ptr<Box>*>(luaL_checkudata(L, idx, kBox)));
}
void box_push(lua_State* L, std::string_view ref) { push_box(L, plua::lua::take_shared_ref<Box>(L, ref, kBox)); }

struct State {
  lua_State* L = luaL_newstate();
  State() {
    luaL_openlibs(L);
    luaL_newmetatable(L, kBox);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    // The decoder requires the class's module: an empty one will do.
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_newtable(L);
    lua_setfield(L, -2, "decoder_hostile_test");
    lua_pop(L, 1);
    plua::lua::register_sendable_class(
        {"decoder_hostile_test", kBox, box_write, box_push, plua::lua::drop_shared_ref<Box>});
  }
  ~State() { lua_close(L); }
};

struct Decoded {
  std::string_view message;
  int count = 0;
};

// decode under lua_pcall: "" on success, else the error message.
std::string try_decode(lua_State* L, std::string_view message) {
  Decoded d{message};
  lua_pushcfunction(L, [](lua_State* L) {
    auto* d = static_cast<Decoded*>(lua_touserdata(L, 1));
    d->count = plua::lua::decode(L, d->message);
    return d->count;
  });
  lua_pushlightuserdata(L, &d);
  int base = lua_gettop(L) - 2;
  std::string error;
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) error = lua_tostring(L, -1) ? lua_tostring(L, -1) : "?";
  lua_settop(L, base);
  return error;
}

std::string encode_box(lua_State* L, std::shared_ptr<Box> box) {
  push_box(L, std::move(box));
  std::string m = plua::lua::encode(L, -1, 1);
  lua_pop(L, 1);
  return m;
}

}  // namespace

TEST(DecoderHostile, BytecodeWithAHugeCountFailsWithoutTheAllocation) {
  // Found by codec_fuzz: a Function whose bytecode announces about 10^16 bytes.
  std::ifstream in(PLUA_SOURCE_DIR "/tests/fuzz/corpus/codec/regress-bytecode-huge-count", std::ios::binary);
  ASSERT_TRUE(in) << "missing regression input";
  std::string message((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  State s;
  EXPECT_NE(try_decode(s.L, message).find("codec: malformed message (bad bytecode"), std::string::npos);
  EXPECT_EQ(lua_gettop(s.L), 0);
  // The state's allocator is its own again and works.
  EXPECT_EQ(try_decode(s.L, codec::encode_values({plua::core::Value("still fine")})), "");
}

TEST(DecoderHostile, BytecodeAnnouncingAGigabyteStringIsRefusedBeforeAllocating) {
  State s;
  ASSERT_EQ(luaL_dostring(s.L, "return function() return 'q' end"), LUA_OK);
  std::string m = plua::lua::encode(s.L, -1, 1);
  lua_settop(s.L, 0);
  // Lua 5.4 dumps the constant 'q' as size+1 (a 1-byte varint, 0x82) then 'q':
  // announce 1.5 GB instead. Plain malloc would grant that (and the load then
  // fail as truncated); the load budget refuses it first.
  std::size_t at = m.find("\x82q");
  ASSERT_NE(at, std::string::npos);
  std::string big = "\x05\x4b\x20\x5e\x81";  // varint of 1,500,000,001, most significant group first
  m.replace(at, 1, big);
  std::uint32_t len;
  std::memcpy(&len, m.data() + 4, sizeof len);  // magic, flags, count, tag, then the u32 length
  len += static_cast<std::uint32_t>(big.size() - 1);
  std::memcpy(m.data() + 4, &len, sizeof len);
  std::string error = try_decode(s.L, m);
  EXPECT_NE(error.find("bad bytecode: not enough memory"), std::string::npos) << error;
  EXPECT_EQ(try_decode(s.L, codec::encode_values({plua::core::Value(1)})), "");
}

TEST(DecoderHostile, ARealFunctionStillLoads) {
  State s;
  ASSERT_EQ(luaL_dostring(s.L, "local k = {} for i = 1, 2000 do k[i] = 's' .. i end "
                               "return function() return k, 'x', 1.5, 2 end"), LUA_OK);
  std::string m = plua::lua::encode(s.L, -1, 1);
  lua_settop(s.L, 0);
  EXPECT_EQ(try_decode(s.L, m), "");
}

TEST(DecoderHostile, AnInProcessReferenceIsTakenOnce) {
  State s;
  auto box = std::make_shared<Box>(Box{7});
  std::string m = encode_box(s.L, box);
  EXPECT_EQ(try_decode(s.L, m), "");
  // The same bytes again (a replay): refused, not a second delete of the copy.
  EXPECT_NE(try_decode(s.L, m).find("codec: malformed message (bad " + std::string(kBox) + " reference)"),
            std::string::npos);
  lua_gc(s.L, LUA_GCCOLLECT, 0);
  EXPECT_EQ(box.use_count(), 1);
}

TEST(DecoderHostile, AForgedAddressIsNeverFollowed) {
  State s;
  auto box = std::make_shared<Box>(Box{7});
  std::string m = encode_box(s.L, box);
  // The reference's last 8 bytes are the address: point it elsewhere.
  std::string forged = m;
  std::size_t at = forged.size() - sizeof(void*);
  void* elsewhere = &forged;
  std::memcpy(forged.data() + at, &elsewhere, sizeof elsewhere);
  EXPECT_NE(try_decode(s.L, forged).find("reference)"), std::string::npos);
  plua::lua::discard(forged);  // nothing listed at that address: nothing freed
  plua::lua::discard(m);       // the real one is released
  lua_gc(s.L, LUA_GCCOLLECT, 0);
  EXPECT_EQ(box.use_count(), 1);
}

TEST(DecoderHostile, SharedTablesDoNotExpandExponentiallyIntoValues) {
  // Value i is a table {ref(i-1), ref(i-1)}: 40 values, 2^40 copies as a tree.
  std::string m;
  codec::Writer w(m);
  const int n = 40;
  w.u8(codec::kMagic);
  w.u8(codec::kFlagRefs);
  w.varint(n);
  w.u8(codec::kTable);
  w.u32(0);
  w.u32(0);
  for (int i = 1; i < n; ++i) {
    w.u8(codec::kTable);
    w.u32(2);
    w.u32(0);
    for (int k = 0; k < 2; ++k) {
      w.u8(codec::kRef);
      w.varint(static_cast<std::uint64_t>(i - 1));
    }
  }
  EXPECT_THROW(codec::decode_values(m), codec::FormatError);
}

TEST(DecoderHostile, AFrameAnnouncedButNeverSentEndsInConnectionClosed) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  // 60 MB announced (under the 64 MiB limit), 10 bytes sent, then EOF: the
  // body grows as bytes arrive, so this costs about 1 MiB, not 60 MB.
  const unsigned char head[4] = {0x03, 0x93, 0x87, 0x00};
  ASSERT_EQ(::write(fds[0], head, 4), 4);
  ASSERT_EQ(::write(fds[0], "0123456789", 10), 10);
  ::close(fds[0]);
  plua::core::FrameConnection conn(fds[1]);
  EXPECT_THROW(conn.recv_bytes(plua::core::Deadline::after(10)), plua::core::ConnectionClosed);
}
