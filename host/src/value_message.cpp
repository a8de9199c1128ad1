// plua::Value <-> the codec's byte format (plua/core/codec_format.hpp), with
// queues, locks and events as the same by-reference objects the Lua bindings
// write, so a message made here decodes in Lua and the other way round.
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "embed_detail.hpp"
#include "plua/core/codec_format.hpp"
#include "plua/lua/codec.hpp"

namespace plua::detail {
namespace {

namespace fmt = core::codec;

// The Lua bindings' names for the objects a Value can hold (module, __name).
constexpr const char* kQueueModule = "queue";
constexpr const char* kQueueType = "plua.Queue";
constexpr const char* kLockModule = "lock";
constexpr const char* kLockType = "plua.lock.Lock";
constexpr const char* kEventType = "plua.lock.Event";

// Thrown inside the decoder for content that is not data.
struct NotData {
  std::string reason;
};

bool is_identifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

std::string root_path(const char* root, std::size_t i, std::size_t count) {
  return count == 1 ? std::string(root) : std::string(root) + "[" + std::to_string(i + 1) + "]";
}

std::string key_path(const std::string& path, const Value& key) {
  if (key.is_string() && is_identifier(key.as_string())) return path + "." + key.as_string();
  if (key.is_int()) return path + "[" + std::to_string(key.as_int()) + "]";
  if (key.is_string()) return path + "[\"" + key.as_string() + "\"]";
  return path + "[" + key.type_name() + "]";
}

void append_ref(std::string& out, const core::SharedRefData& d) {
  out.append(reinterpret_cast<const char*>(&d), sizeof d);
}

bool read_ref(std::string_view ref, core::SharedRefData& d) {
  if (ref.size() != sizeof d) return false;
  std::memcpy(&d, ref.data(), sizeof d);
  return true;
}

// ---- Encoding: check everything first, then write (which cannot refuse).

class Encoder {
 public:
  // Pass 1: throws ConversionError for what cannot be sent; counts ids.
  void check(const Value& v, const std::string& path, int depth) {
    switch (v.storage().index()) {
      case 5:
      case 6: {
        if (depth > fmt::kMaxDepth)
          throw ConversionError("value nested too deeply (limit " + std::to_string(fmt::kMaxDepth) + ") at " + path, {});
        ++ids_;
        if (v.is_array()) {
          const auto& a = v.as_array();
          for (std::size_t i = 0; i < a.size(); ++i) check(a[i], path + "[" + std::to_string(i + 1) + "]", depth + 1);
        } else {
          for (const auto& [key, value] : v.as_map()) {
            if (key.is_nil() || (key.is_float() && std::isnan(key.as_float())))
              throw ConversionError(std::string("table key is ") + (key.is_nil() ? "nil" : "NaN") + " at " + path, {});
            check(key, path + "<key>", depth + 1);
            check(value, key_path(path, key), depth + 1);
          }
        }
        break;
      }
      case 7:
      case 8:
      case 9:
        ++ids_;
        break;
      case 10: {
        OpaqueBody& o = OpaqueBody::of(v.as_opaque());
        if (o.sent.load(std::memory_order_acquire))
          throw ConversionError("this Lua value was sent already (an opaque value travels once) at " + path, {});
        // Its back-references count ids from 0: only valid when nothing with an id came before.
        if (ids_ != 0 && (static_cast<std::uint8_t>(o.message[1]) & fmt::kFlagRefs))
          throw ConversionError("this Lua value holds shared references; send it first or on its own at " + path, {});
        ids_ += 1000000;  // unknown inside: nothing that holds references may follow
        opaques_.push_back(&o);
        break;
      }
      default:
        break;
    }
  }

  // Claims every opaque (two threads may race to send the same one).
  void claim() {
    for (std::size_t i = 0; i < opaques_.size(); ++i) {
      if (opaques_[i]->sent.exchange(true, std::memory_order_acq_rel)) {
        for (std::size_t k = 0; k < i; ++k) opaques_[k]->sent.store(false, std::memory_order_release);
        throw ConversionError("this Lua value was sent already (an opaque value travels once)", {});
      }
    }
  }

  bool has_refs() const {
    for (const OpaqueBody* o : opaques_)
      if (static_cast<std::uint8_t>(o->message[1]) & fmt::kFlagRefs) return true;
    return false;
  }

  // Pass 2.
  void write(fmt::Writer& w, const Value& v) {
    switch (v.storage().index()) {
      case 0:
        w.u8(fmt::kNil);
        break;
      case 1:
        w.u8(v.as_bool() ? fmt::kTrue : fmt::kFalse);
        break;
      case 2:
        w.u8(fmt::kInt);
        w.i64(v.as_int());
        break;
      case 3:
        w.u8(fmt::kFloat);
        w.f64(v.as_float());
        break;
      case 4:
        w.u8(fmt::kString);
        w.str(v.as_string());
        break;
      case 5: {
        const auto& a = v.as_array();
        w.u8(fmt::kTable);
        w.u32(static_cast<std::uint32_t>(a.size()));
        w.u32(0);
        for (const Value& item : a) write(w, item);
        break;
      }
      case 6: {
        const auto& m = v.as_map();
        w.u8(fmt::kTable);
        w.u32(0);
        w.u32(static_cast<std::uint32_t>(m.size()));
        for (const auto& [key, value] : m) {
          write(w, key);
          write(w, value);
        }
        break;
      }
      case 7:
        object(w, kQueueModule, kQueueType, QueueBody::of(v.as_queue()).ref.body().ref_retained());
        break;
      case 8:
        object(w, kLockModule, kLockType, LockBody::of(v.as_lock()).lock().state().ref_retained());
        break;
      case 9:
        object(w, kLockModule, kEventType, EventBody::of(v.as_event()).event().state().ref_retained());
        break;
      case 10: {
        // The one value after the opaque message's header, as it is.
        OpaqueBody& o = OpaqueBody::of(v.as_opaque());
        fmt::Reader r(o.message);
        fmt::read_header(r);
        std::string_view body = std::string_view(o.message).substr(r.position());
        w.out().append(body.data(), body.size());
        break;
      }
    }
  }

 private:
  static void object(fmt::Writer& w, const char* module, const char* tname, const core::SharedRefData& d) {
    w.u8(fmt::kObject);
    w.str(module);
    w.str(tname);
    std::string ref;
    append_ref(ref, d);
    w.str(ref);
  }

  std::size_t ids_ = 0;
  std::vector<OpaqueBody*> opaques_;
};

// ---- Decoding: one reader for both passes (check, then build).

class Decoder {
 public:
  Decoder(fmt::Reader& r, bool build) : r_(r), build_(build) {}

  Value read(const std::string& path, int depth) {
    std::uint8_t tag = r_.u8();
    switch (tag) {
      case fmt::kNil:
        return Value();
      case fmt::kFalse:
        return Value(false);
      case fmt::kTrue:
        return Value(true);
      case fmt::kInt:
        return Value(r_.i64());
      case fmt::kFloat:
        return Value(r_.f64());
      case fmt::kString:
        return Value(std::string(r_.str()));
      case fmt::kTable:
        return read_table(path, depth);
      case fmt::kRef: {
        std::uint64_t id = r_.varint();
        if (id >= ids_.size()) throw fmt::FormatError("reference to an unknown value");
        if (!ids_[id]) throw NotData{"cannot convert a table that contains itself to a C++ value at " + path};
        return *ids_[id];
      }
      case fmt::kFunction:
      case fmt::kCFunction:
        throw NotData{"cannot convert a function to a C++ value at " + path};
      case fmt::kGlobals:
      case fmt::kModule:
        throw NotData{"cannot convert a module table to a C++ value at " + path};
      case fmt::kObject:
        return read_object(path);
      default:
        throw fmt::FormatError("unknown tag");
    }
  }

 private:
  Value read_object(const std::string& path) {
    r_.str();  // module
    std::string_view tname = r_.str();
    std::string_view ref = r_.str();
    core::SharedRefData d;
    bool known = tname == kQueueType || tname == kLockType || tname == kEventType;
    if (!known || !read_ref(ref, d))
      throw NotData{"cannot convert a " + std::string(tname) + " to a C++ value at " + path};
    Value v;
    if (build_) {
      if (tname == kQueueType)
        v = QueueBody::wrap(core::SharedRef<core::MessageQueue>::adopt_ref(d));
      else if (tname == kLockType)
        v = LockBody::wrap(core::Lock(core::SharedRef<core::LockState>::adopt_ref(d)));
      else
        v = EventBody::wrap(core::Event(core::SharedRef<core::EventState>::adopt_ref(d)));
    }
    ids_.emplace_back(v);
    return v;
  }

  Value read_table(const std::string& path, int depth) {
    if (depth > fmt::kMaxDepth) throw fmt::FormatError("value nested too deeply");
    std::size_t id = ids_.size();
    ids_.emplace_back();  // in progress: a Ref to it is a cycle
    std::size_t narr = r_.count(r_.u32(), 1);
    std::size_t nhash = r_.count(r_.u32(), 2);
    if (narr + 2 * nhash > r_.remaining()) throw fmt::FormatError("count larger than the message");
    Value::Array items;
    items.reserve(narr);
    for (std::size_t i = 0; i < narr; ++i) items.push_back(read(path + "[" + std::to_string(i + 1) + "]", depth + 1));
    Value::Map map;
    for (std::size_t i = 0; i < nhash; ++i) {
      Value key = read(path + "<key>", depth + 1);
      if (key.is_nil() || (key.is_float() && std::isnan(key.as_float())))
        throw fmt::FormatError("table key is nil or NaN");
      Value value = read(key_path(path, key), depth + 1);
      if (!value.is_nil()) map.emplace_back(std::move(key), std::move(value));
    }
    Value result;
    if (map.empty()) {
      result = Value(std::move(items));
    } else {
      Value::Map all;
      all.reserve(items.size() + map.size());
      for (std::size_t i = 0; i < items.size(); ++i)
        if (!items[i].is_nil()) all.emplace_back(Value(static_cast<std::int64_t>(i + 1)), std::move(items[i]));
      for (auto& kv : map) all.push_back(std::move(kv));
      result = Value(std::move(all));
    }
    ids_[id] = result;
    return result;
  }

  fmt::Reader& r_;
  bool build_;
  std::vector<std::optional<Value>> ids_;
};

std::vector<Value> decode_pass(std::string_view message, const char* root, bool build) {
  fmt::Reader r(message);
  std::size_t count = fmt::read_header(r);
  Decoder d(r, build);
  std::vector<Value> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(d.read(root_path(root, i, count), 1));
  if (!r.at_end()) throw fmt::FormatError("trailing bytes");
  return out;
}

void release_one(void*, std::string_view, std::string_view tname, std::string_view ref) {
  core::SharedRefData d;
  try {
    if (tname == kQueueType && read_ref(ref, d)) {
      core::SharedRef<core::MessageQueue>::adopt_ref(d);
    } else if ((tname == kLockType) && read_ref(ref, d)) {
      core::SharedRef<core::LockState>::adopt_ref(d);
    } else if (tname == kEventType && read_ref(ref, d)) {
      core::SharedRef<core::EventState>::adopt_ref(d);
    } else if (const lua::SendableClass* cls = lua::find_sendable_class(tname); cls && cls->drop_ref) {
      cls->drop_ref(ref);
    }
  } catch (const std::exception&) {
    // The arena is gone, and with it the count to drop.
  }
}

}  // namespace

std::string encode_message(const std::vector<Value>& values, const char* root) {
  Encoder e;
  for (std::size_t i = 0; i < values.size(); ++i) e.check(values[i], root_path(root, i, values.size()), 1);
  e.claim();
  std::string out;
  fmt::Writer w(out);
  w.u8(fmt::kMagic);
  w.u8(e.has_refs() ? fmt::kFlagRefs : 0);
  w.varint(values.size());
  for (const Value& v : values) e.write(w, v);
  return out;
}

std::optional<std::vector<Value>> decode_message(std::string_view message, const char* root, std::string* reason) {
  try {
    decode_pass(message, root, false);
  } catch (const NotData& e) {
    *reason = e.reason;
    return std::nullopt;
  }
  return decode_pass(message, root, true);
}

Value decode_item(std::string&& message, const char* op, const char* root) {
  std::string reason;
  auto values = decode_message(message, root, &reason);
  if (!values) {
    std::string what = std::string(op) + ": " + reason;
    throw ConversionError(what, OpaqueBody::wrap(std::move(message), std::move(reason)));
  }
  if (values->size() != 1) throw fmt::FormatError("one value expected");
  return std::move(values->front());
}

void release_message(std::string_view message) noexcept {
  try {
    fmt::visit_objects(message, release_one, nullptr);
  } catch (const std::exception&) {
    // Malformed: nothing more can be found to release.
  }
}

core::Deadline deadline_of(std::optional<double> timeout, const char* op) {
  if (timeout && (std::isnan(*timeout) || *timeout < 0))
    throw std::invalid_argument(std::string(op) + ": timeout must be a non-negative number");
  return core::Deadline::from_timeout(timeout);
}

}  // namespace plua::detail
