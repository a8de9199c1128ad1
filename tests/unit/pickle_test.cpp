// The pickle subset: golden bytes from Python 3 (protocols 2-5) decode to the
// expected values, our encoding round-trips and Python reads it back, and
// everything outside the subset or malformed is refused without a crash.
#include "plua/core/pickle.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>

namespace pk = plua::core::pickle;
using pk::Object;

namespace plua::core::pickle {
inline void PrintTo(const Object& o, std::ostream* os) { *os << repr(o); }
}  // namespace plua::core::pickle

namespace {

struct Golden {
  const char* name;
  int protocol;
  const char* hex;
};

constexpr Golden kGolden[] = {
#include "data/pickle_golden.inc"
};

std::string unhex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string tohex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

Object T(std::vector<Object> v) { return pk::tuple(std::move(v)); }
Object L(std::vector<Object> v) { return Object(pk::List{std::move(v)}); }
Object S(const char* s) { return pk::str(s); }
Object I(std::int64_t v) { return Object(v); }
Object E(const char* module, const char* name, std::vector<Object> args = {}) {
  return Object(pk::Exception{module, name, std::move(args)});
}
Object D(std::vector<std::pair<Object, Object>> items) { return Object(pk::Dict{std::move(items)}); }

std::map<std::string, Object> expected_values() {
  std::map<std::string, Object> m;
  m["none"] = Object();
  m["true"] = Object(true);
  m["false"] = Object(false);
  m["ints"] = T({I(0), I(255), I(256), I(65535), I(65536), I(-1), I(2147483647), I(-2147483648LL),
                 I(2147483648LL), I(INT64_MAX), I(INT64_MIN)});
  m["floats"] = T({Object(1.5), Object(-0.0), Object(1e300), Object(-2.25)});
  m["strs"] = T({S(""), S("abc"), S("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), pk::str(std::string(300, 'x'))});
  m["bytes"] = T({pk::bytes(""), pk::bytes(std::string("\x00\xff", 2)), pk::bytes(std::string(300, 'y'))});
  m["tuples"] = T({T({}), T({I(1)}), T({I(1), I(2)}), T({I(1), I(2), I(3)}), T({I(1), I(2), I(3), I(4)})});
  std::vector<Object> range;
  for (int i = 0; i < 1500; ++i) range.push_back(I(i));
  m["lists"] = T({L({}), L({I(1), S("a"), Object()}), L(range)});
  m["dicts"] = T({D({}), D({{S("a"), I(1)}, {S("b"), L({I(1), I(2)})}}),
                  D({{I(1), S("one")}, {S("k"), D({{S("nested"), Object(true)}})}})});
  m["shared"] = T({L({I(1), I(2)}), L({I(1), I(2)})});
  m["reply"] = T({S("#RETURN"), T({S("7f12ab"), T({S("empty"), S("get")})})});
  m["request"] = T({Object(), S("create"), T({S("get_task_queue")}), D({})});
  m["call"] = T({S("7f12ab"), S("get"), T({}), D({{S("timeout"), I(1)}})});
  m["empty"] = T({S("#ERROR"), E("_queue", "Empty")});
  m["full"] = T({S("#ERROR"), E("queue", "Full")});
  // Protocol 2 names builtins as Python 2 did; compared by class name below.
  m["keyerror"] = T({S("#ERROR"), E("builtins", "KeyError", {S("k")})});
  m["valueerror"] = T({S("#ERROR"), E("builtins", "ValueError", {S("bad"), I(2)})});
  m["remoteerror"] = T({S("#ERROR"), E("multiprocessing.managers", "RemoteError", {S("boom")})});
  return m;
}

// Exceptions compare by class name and arguments (the module differs by protocol).
Object normalise(const Object& o) {
  if (o.is<pk::Exception>()) {
    auto e = o.as<pk::Exception>();
    if (e.module == "exceptions" || e.module == "__builtin__") e.module = "builtins";
    if (e.module == "Queue") e.module = "queue";
    return Object(e);
  }
  if (o.is<pk::Tuple>()) {
    std::vector<Object> v;
    for (auto& i : o.as<pk::Tuple>().items) v.push_back(normalise(i));
    return pk::tuple(v);
  }
  return o;
}

TEST(Pickle, GoldenBytesFromPythonDecode) {
  auto expected = expected_values();
  std::size_t seen = 0;
  for (const Golden& g : kGolden) {
    SCOPED_TRACE(std::string(g.name) + " protocol " + std::to_string(g.protocol));
    ASSERT_TRUE(expected.count(g.name));
    Object got = pk::loads(unhex(g.hex));
    EXPECT_EQ(normalise(got), expected[g.name]) << pk::repr(got);
    ++seen;
  }
  EXPECT_EQ(seen, expected.size() * 4);
}

TEST(Pickle, EncodingRoundTrips) {
  for (auto& [name, value] : expected_values()) {
    SCOPED_TRACE(name);
    EXPECT_EQ(pk::loads(pk::dumps(value)), value);
  }
}

TEST(Pickle, PythonReadsWhatWeWrite) {
  // Python loads each of our encodings and the golden protocol-4 bytes and
  // compares them (exceptions by type and args); it prints one line per case.
  std::string script = "/tmp/plua_pickle_check_" + std::to_string(::getpid()) + ".py";
  std::FILE* f = std::fopen(script.c_str(), "w");
  ASSERT_TRUE(f);
  std::fputs(
      "import pickle, sys\n"
      "def norm(v):\n"
      "    if isinstance(v, BaseException): return (type(v).__name__, v.args)\n"
      "    if isinstance(v, tuple): return tuple(norm(x) for x in v)\n"
      "    return v\n"
      "for line in sys.stdin:\n"
      "    name, ours, theirs = line.split()\n"
      "    a = pickle.loads(bytes.fromhex(ours)); b = pickle.loads(bytes.fromhex(theirs))\n"
      "    print(name, norm(a) == norm(b) and type(a) is type(b))\n",
      f);
  std::fclose(f);
  std::string input;
  auto expected = expected_values();
  for (const Golden& g : kGolden)
    if (g.protocol == 4) input += std::string(g.name) + " " + tohex(pk::dumps(expected[g.name])) + " " + g.hex + "\n";
  std::string in_path = script + ".in";
  f = std::fopen(in_path.c_str(), "w");
  ASSERT_TRUE(f);
  std::fputs(input.c_str(), f);
  std::fclose(f);
  std::FILE* p = ::popen(("python3 " + script + " < " + in_path).c_str(), "r");
  ASSERT_TRUE(p);
  char buf[256];
  int lines = 0;
  while (std::fgets(buf, sizeof buf, p)) {
    ++lines;
    EXPECT_NE(std::string(buf).find(" True"), std::string::npos) << buf;
  }
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_EQ(lines, static_cast<int>(expected.size()));
  std::remove(script.c_str());
  std::remove(in_path.c_str());
}

TEST(Pickle, RefusesGlobalsOutsideTheWhitelist) {
  // cos\nsystem\n(S'echo hi'\ntR. : the classic code-loading pickle.
  EXPECT_THROW(pk::loads("cos\nsystem\n(S'echo hi'\ntR."), pk::PickleError);
  // STACK_GLOBAL of builtins.eval.
  EXPECT_THROW(pk::loads("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93."), pk::PickleError);
  // A whitelisted class is fine, but BUILD on a list is not.
  EXPECT_THROW(pk::loads("\x80\x04]}b."), pk::PickleError);
  // Persistent ids, protocol-0 text opcodes and out-of-band buffers are refused.
  EXPECT_THROW(pk::loads("\x80\x04K\x01Q."), pk::PickleError);
  EXPECT_THROW(pk::loads("I1\n."), pk::PickleError);
  EXPECT_THROW(pk::loads("\x80\x05\x97."), pk::PickleError);
  try {
    pk::loads("\x80\x04\x8c\x02os\x8c\x06system\x93.");
    FAIL();
  } catch (const pk::PickleError& e) {
    EXPECT_NE(std::string(e.what()).find("os.system"), std::string::npos) << e.what();
  }
}

TEST(Pickle, IntegersBeyond64BitsAreRefused) {
  // LONG1 of 2**64 (9 bytes), as Python writes it.
  EXPECT_THROW(pk::loads(std::string("\x80\x04\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.", 14)), pk::PickleError);
  // 2**63 does not fit either, -2**63 does.
  EXPECT_THROW(pk::loads(std::string("\x80\x04\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.", 14)), pk::PickleError);
  EXPECT_EQ(pk::loads(std::string("\x80\x04\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80.", 13)), Object(INT64_MIN));
}

TEST(Pickle, EveryTruncationFailsCleanly) {
  for (const Golden& g : kGolden) {
    std::string data = unhex(g.hex);
    for (std::size_t n = 0; n < data.size(); ++n)
      EXPECT_THROW(pk::loads(std::string_view(data).substr(0, n)), pk::PickleError) << g.name << " cut at " << n;
  }
}

TEST(Pickle, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  std::string base = pk::dumps(expected_values()["reply"]);
  int refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string data = base;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) data[rng() % data.size()] = static_cast<char>(rng());
    try {
      pk::loads(data);
    } catch (const pk::PickleError&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
}

TEST(Pickle, LimitsBoundDepthAndExpansion) {
  // 300 nested empty lists: deeper than the default depth limit.
  std::string deep = "\x80\x04";
  for (int i = 0; i < 300; ++i) deep += "]";
  for (int i = 0; i < 299; ++i) deep += "a";
  deep += ".";
  EXPECT_THROW(pk::loads(deep), pk::PickleError);
  // A list appended to itself is a cycle: refused by the depth limit, no leak.
  EXPECT_THROW(pk::loads("\x80\x04]\x94h\x00a."), pk::PickleError);
  // Doubling shared references 40 times would expand to 2**40 objects.
  std::string bomb = "\x80\x04K\x01";
  for (int i = 0; i < 40; ++i) bomb += "2\x86";
  bomb += ".";
  EXPECT_THROW(pk::loads(bomb), pk::PickleError);
}

TEST(Pickle, ValuesBecomePythonValuesAndBack) {
  using plua::core::Value;
  Value v(Value::Map{{Value("text"), Value("h\xc3\xa9")},
                     {Value("raw"), Value(std::string("\xff\xfe", 2))},
                     {Value("list"), Value(Value::Array{Value(1), Value(2.5), Value(true)})},
                     {Value(7), Value()}});
  Object o = pk::from_value(v);
  const auto& items = o.as<pk::Dict>().items;
  EXPECT_TRUE(items[0].second.is<pk::Str>());
  EXPECT_TRUE(items[1].second.is<pk::Bytes>());
  EXPECT_TRUE(items[2].second.is<pk::List>());
  EXPECT_EQ(pk::to_value(o), v);
  // Tuples become arrays; exceptions cannot become values.
  EXPECT_EQ(pk::to_value(T({I(1), S("a")})), Value(Value::Array{Value(1), Value("a")}));
  EXPECT_THROW(pk::to_value(E("_queue", "Empty")), pk::PickleError);
  EXPECT_THROW(pk::to_value(D({{T({I(1)}), I(2)}})), pk::PickleError);
}

TEST(Pickle, Utf8Validation) {
  EXPECT_TRUE(pk::is_valid_utf8("plain"));
  EXPECT_TRUE(pk::is_valid_utf8("\xf0\x9f\x98\x80"));
  EXPECT_FALSE(pk::is_valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(pk::is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(pk::is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(pk::is_valid_utf8("\xf4\x90\x80\x80"));  // beyond U+10FFFF
}

TEST(Pickle, ExceptionMessagesReadLikePython) {
  EXPECT_EQ(pk::exception_message({"builtins", "KeyError", {S("k")}}), "'k'");
  EXPECT_EQ(pk::exception_message({"builtins", "ValueError", {S("bad")}}), "bad");
  EXPECT_EQ(pk::exception_message({"_queue", "Empty", {}}), "");
  EXPECT_EQ(pk::exception_class_for_kind("Empty"), (std::pair<std::string, std::string>{"_queue", "Empty"}));
  EXPECT_EQ(pk::exception_class_for_kind("Nonsense").second, "Exception");
}

}  // namespace
