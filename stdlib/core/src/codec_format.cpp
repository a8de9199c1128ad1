#include "plua/core/codec_format.hpp"

#include <cmath>
#include <optional>

namespace plua::core::codec {

std::size_t read_header(Reader& r, std::uint8_t* flags) {
  if (r.u8() != kMagic) throw FormatError("not a plua message");
  std::uint8_t f = r.u8();
  if (f & ~kFlagRefs) throw FormatError("unknown flags");
  if (flags) *flags = f;
  return r.count(r.varint(), 1);
}

namespace {

void check_depth(int depth) {
  if (depth > kMaxDepth)
    throw std::runtime_error("codec: value nested too deeply (limit " + std::to_string(kMaxDepth) + ")");
}

void write_value(Writer& w, const Value& v, int depth) {
  const auto& s = v.storage();
  switch (s.index()) {
    case 0:
      w.u8(kNil);
      break;
    case 1:
      w.u8(v.as_bool() ? kTrue : kFalse);
      break;
    case 2:
      w.u8(kInt);
      w.i64(v.as_int());
      break;
    case 3:
      w.u8(kFloat);
      w.f64(v.as_float());
      break;
    case 4:
      w.u8(kString);
      w.str(v.as_string());
      break;
    case 5: {
      check_depth(depth);
      const auto& a = v.as_array();
      w.u8(kTable);
      w.u32(static_cast<std::uint32_t>(a.size()));
      w.u32(0);
      for (const Value& item : a) write_value(w, item, depth + 1);
      break;
    }
    case 6: {
      check_depth(depth);
      const auto& m = v.as_map();
      w.u8(kTable);
      w.u32(0);
      w.u32(static_cast<std::uint32_t>(m.size()));
      for (const auto& [key, value] : m) {
        write_value(w, key, depth + 1);
        write_value(w, value, depth + 1);
      }
      break;
    }
  }
}

// Reads plain data into Values; tables are kept by id so shared references copy.
class ValueReader {
 public:
  // A table reached twice is copied (Value is a tree), so a small message of
  // references to references could expand exponentially: the values made are
  // counted, copies in full, up to one per byte plus kMaxCopiedValues.
  static constexpr std::size_t kMaxCopiedValues = std::size_t{1} << 20;
  ValueReader(Reader& r, std::size_t message_size) : r_(r), budget_(message_size + kMaxCopiedValues) {}

  Value read(int depth) {
    spend(1);
    std::uint8_t tag = r_.u8();
    switch (tag) {
      case kNil:
        return Value();
      case kFalse:
        return Value(false);
      case kTrue:
        return Value(true);
      case kInt:
        return Value(r_.i64());
      case kFloat:
        return Value(r_.f64());
      case kString:
        return Value(std::string(r_.str()));
      case kTable:
        return read_table(depth);
      case kRef: {
        std::uint64_t id = r_.varint();
        if (id >= tables_.size()) throw FormatError("reference to an unknown value");
        if (!tables_[id]) throw std::runtime_error("cannot convert a table that contains itself to a C++ value");
        spend(sizes_[id]);
        return *tables_[id];
      }
      case kFunction:
      case kCFunction:
        throw std::runtime_error("cannot convert a function to a C++ value");
      case kGlobals:
      case kModule:
        throw std::runtime_error("cannot convert a module table to a C++ value");
      case kObject:
        throw std::runtime_error("cannot convert a plua object to a C++ value");
      default:
        throw FormatError("unknown tag");
    }
  }

 private:
  Value read_table(int depth) {
    if (depth > kMaxDepth) throw FormatError("value nested too deeply");
    std::size_t id = tables_.size();
    std::size_t made_before = made_;
    tables_.emplace_back();  // in progress: a Ref to it is a cycle
    sizes_.push_back(0);
    std::size_t narr = r_.count(r_.u32(), 1);
    std::size_t nhash = r_.count(r_.u32(), 2);
    if (narr + 2 * nhash > r_.remaining()) throw FormatError("count larger than the message");
    Value::Array items;
    items.reserve(narr);
    for (std::size_t i = 0; i < narr; ++i) items.push_back(read(depth + 1));
    if (nhash == 0) {
      tables_[id].emplace(std::move(items));
    } else {
      Value::Map map;
      map.reserve(narr + nhash);
      for (std::size_t i = 0; i < narr; ++i)
        if (!items[i].is_nil()) {
          map.emplace_back();
          map.back().first = Value(static_cast<std::int64_t>(i + 1));
          map.back().second = std::move(items[i]);
        }
      for (std::size_t i = 0; i < nhash; ++i) {
        Value key = read(depth + 1);
        Value value = read(depth + 1);
        if (key.is_nil() || (key.is_float() && std::isnan(key.as_float())))
          throw FormatError("table key is nil or NaN");
        if (!value.is_nil()) map.emplace_back(std::move(key), std::move(value));
      }
      tables_[id].emplace(std::move(map));
    }
    sizes_[id] = made_ - made_before;
    return *tables_[id];
  }

  void spend(std::size_t n) {
    made_ += n;
    if (made_ > budget_) throw FormatError("shared tables copy into more than " + std::to_string(budget_) + " values");
  }

  Reader& r_;
  std::vector<std::optional<Value>> tables_;
  std::vector<std::size_t> sizes_;  // values each finished table copies into
  std::size_t made_ = 0;
  const std::size_t budget_;
};

// Skips over one value, visiting by-reference objects.
void walk(Reader& r, ObjectVisitor visit, void* ctx, int depth) {
  std::uint8_t tag = r.u8();
  if ((tag == kTable || tag == kFunction) && depth > kMaxDepth) throw FormatError("value nested too deeply");
  switch (tag) {
    case kNil:
    case kFalse:
    case kTrue:
    case kGlobals:
      return;
    case kInt:
    case kFloat:
      r.bytes(8);
      return;
    case kString:
    case kModule:
      r.str();
      return;
    case kRef:
      r.varint();
      return;
    case kCFunction:
      r.str();
      r.str();
      return;
    case kTable: {
      std::size_t narr = r.count(r.u32(), 1);
      std::size_t nhash = r.count(r.u32(), 2);
      for (std::size_t i = 0; i < narr; ++i) walk(r, visit, ctx, depth + 1);
      for (std::size_t i = 0; i < 2 * nhash; ++i) walk(r, visit, ctx, depth + 1);
      return;
    }
    case kFunction: {
      r.bytes(r.count(r.u32(), 1));
      int nups = r.u8();
      for (int i = 0; i < nups; ++i) {
        std::uint8_t kind = r.u8();
        if (kind == kUpvalueValue) {
          walk(r, visit, ctx, depth + 1);
        } else if (kind == kUpvalueJoin) {
          r.varint();
          r.u8();
        } else {
          throw FormatError("unknown upvalue kind");
        }
      }
      return;
    }
    case kObject: {
      std::string_view module = r.str();
      std::string_view tname = r.str();
      std::string_view ref = r.str();
      if (visit) visit(ctx, module, tname, ref);
      return;
    }
    default:
      throw FormatError("unknown tag");
  }
}

}  // namespace

std::string encode_values(const std::vector<Value>& values) {
  std::string out;
  out.reserve(32);
  Writer w(out);
  w.u8(kMagic);
  w.u8(0);
  w.varint(values.size());
  for (const Value& v : values) write_value(w, v, 1);
  return out;
}

std::vector<Value> decode_values(std::string_view message) {
  Reader r(message);
  std::size_t count = read_header(r);
  ValueReader values(r, message.size());
  std::vector<Value> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(values.read(1));
  if (!r.at_end()) throw FormatError("trailing bytes");
  return out;
}

void visit_value_objects(Reader& r, ObjectVisitor visit, void* ctx) { walk(r, visit, ctx, 1); }

void visit_objects(std::string_view message, ObjectVisitor visit, void* ctx) {
  Reader r(message);
  std::size_t count = read_header(r);
  for (std::size_t i = 0; i < count; ++i) walk(r, visit, ctx, 1);
}

}  // namespace plua::core::codec
