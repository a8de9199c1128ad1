// The codec's byte format (plua/lua/codec.hpp turns Lua values into it), its
// bounds-checked primitives, and the bridge to plua::core::Value for C++ code
// that sends to or receives from the same queues as Lua.
//
// Format (all integers little-endian):
//   message := 0xB7 flags:u8 count:varint value{count}
//              flags bit 0: the message holds back-references (Ref or a joined upvalue)
//   value   := Nil | False | True
//            | Int i64 | Float f64
//            | String len:varint byte{len}
//            | Table narr:u32 nhash:u32 value{narr} (key value){nhash}   -- gets the next id
//            | Ref id:varint                   -- an object (table/function/object) seen before
//            | Globals                         -- the receiver's globals table
//            | Module name:str                 -- package.loaded[name], required if needed
//            | CFunction module:str field:str  -- a C function, looked up by name
//            | Function len:u32 bytecode{len} nups:u8 upvalue{nups}  -- gets the next id
//            | Object module:str tname:str ref:str                   -- gets the next id
//   upvalue := 0 value | 1 closure_id:varint index:u8   -- share that closure's upvalue
//   str     := len:varint byte{len}
// Ids number Table, Function and Object values from 0 in the order they
// start; a Ref may name an object whose contents are still being read (cycles).
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "plua/core/value.hpp"

namespace plua::core::codec {

inline constexpr std::uint8_t kMagic = 0xB7;
inline constexpr std::uint8_t kFlagRefs = 0x01;
// Values nested deeper than this are refused on both sides (no C-stack overflow).
inline constexpr int kMaxDepth = 1000;

enum Tag : std::uint8_t {
  kNil = 0,
  kFalse,
  kTrue,
  kInt,
  kFloat,
  kString,
  kTable,
  kRef,
  kGlobals,
  kModule,
  kCFunction,
  kFunction,
  kObject,
  kTagCount
};

enum UpvalueKind : std::uint8_t { kUpvalueValue = 0, kUpvalueJoin = 1 };

// Malformed bytes: a length past the end, an unknown tag, a bad reference ...
// what() reads "codec: malformed message (<why>)".
class FormatError : public std::runtime_error {
 public:
  explicit FormatError(const std::string& why)
      : std::runtime_error("codec: malformed message (" + why + ")") {}
};

// Appends primitives to a message under construction.
class Writer {
 public:
  explicit Writer(std::string& out) noexcept : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) { raw(&v, sizeof v); }
  void i64(std::int64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void varint(std::uint64_t v) {
    char buf[10];
    int n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }
  void str(std::string_view s) {
    varint(s.size());
    out_.append(s.data(), s.size());
  }
  // Reserves a u32 to be filled in later by patch_u32; returns its offset.
  std::size_t reserve_u32() {
    std::size_t at = out_.size();
    out_.append(4, '\0');
    return at;
  }
  void patch_u32(std::size_t at, std::uint32_t v) noexcept { std::memcpy(out_.data() + at, &v, sizeof v); }
  std::string& out() noexcept { return out_; }
  const std::string& out() const noexcept { return out_; }

 private:
  void raw(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string& out_;
};

// Reads primitives from a message; every read is bounds-checked and throws
// FormatError past the end.
class Reader {
 public:
  explicit Reader(std::string_view in) noexcept : in_(in) {}
  std::size_t remaining() const noexcept { return in_.size() - pos_; }
  std::size_t position() const noexcept { return pos_; }
  bool at_end() const noexcept { return pos_ == in_.size(); }

  std::uint8_t u8() {
    need(1);
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  std::uint32_t u32() { return fixed<std::uint32_t>(); }
  std::int64_t i64() { return fixed<std::int64_t>(); }
  double f64() { return fixed<double>(); }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      std::uint8_t b = u8();
      v |= std::uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return v;
    }
    throw FormatError("varint too long");
  }
  std::string_view bytes(std::size_t n) {
    need(n);
    std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view str() { return bytes(length()); }
  // A count of items that take at least `min_size` bytes each, checked
  // against what is left so that no allocation is sized by a bogus count.
  std::size_t count(std::uint64_t n, std::size_t min_size) const {
    if (n > remaining() / min_size) throw FormatError("count larger than the message");
    return static_cast<std::size_t>(n);
  }
  // A byte length that fits in what is left.
  std::size_t length() { return count(varint(), 1); }

 private:
  void need(std::size_t n) const {
    if (n > remaining()) throw FormatError("truncated");
  }
  template <class T>
  T fixed() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

// Reads a message header; returns the value count (checked against the size).
std::size_t read_header(Reader& r, std::uint8_t* flags = nullptr);

// Encodes plain values: Array as a sequence (a Lua table 1..n), Map as a table
// of its pairs.
std::string encode_values(const std::vector<Value>& values);

// Decodes a message of plain data. Throws FormatError on malformed bytes and
// std::runtime_error on content that is not data ("cannot convert a function
// to a C++ value"; tables that contain themselves). A table with no keys
// besides 1..n becomes an Array (the empty table too), any other a Map. A
// table reached twice becomes two equal copies (Value is a tree).
std::vector<Value> decode_values(std::string_view message);

// Calls visit(ctx, module, tname, ref) for each by-reference object of a
// message, in order. Throws FormatError on malformed bytes (objects met
// before the fault have been visited).
using ObjectVisitor = void (*)(void* ctx, std::string_view module, std::string_view tname,
                               std::string_view ref);
void visit_objects(std::string_view message, ObjectVisitor visit, void* ctx);

// The same over a single value starting at r's position (used to release the
// objects of a partly written message).
void visit_value_objects(Reader& r, ObjectVisitor visit, void* ctx);

}  // namespace plua::core::codec
