// plua::Value: a value as C++ sees what plua's codec carries between Lua
// states, threads and processes: nil, boolean, integer, float (kept apart,
// as math.type does), string (bytes), array, map, and the objects that
// travel by reference: Queue, Lock and Event. It is what C++ puts into and
// gets from a Queue, passes to a worker, sets as a global and reads back.
//
// (plua::core::Value is the same tree without objects, for the manager's wire.)
//
// To Lua: Array becomes a sequence {v1, v2, ...}; Map a table of its pairs;
// Queue/Lock/Event the same object the script then shares.
// From Lua: a table whose keys are exactly 1..n (or none) becomes an Array,
// any other a Map (pairs in the table's traversal order); a table met twice
// becomes two equal copies. A value C++ cannot read (a function, a table
// that contains itself, a coroutine's sibling objects such as threads or
// shared tables) is refused with ConversionError: the error holds the item
// as an Opaque value, which can be sent on (put into a queue, passed to a
// worker, set as a global) exactly once, so nothing is lost.
//
// Thread-safety: a Value is a plain value; distinct Values may be used from
// any threads. Copies share handles (Queue, Lock, Event) and an Opaque's
// single send.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "plua/error.hpp"
#include "plua/event.hpp"
#include "plua/lock.hpp"
#include "plua/queue.hpp"

namespace plua {

namespace detail {
struct OpaqueBody;
}

// A Lua value C++ cannot read, kept as the codec message it came in.
class Opaque {
 public:
  // Why it could not be converted, e.g. "cannot convert a function to a C++ value at item.f".
  const std::string& reason() const noexcept;
  // False once it was sent (its references belong to the receiver then).
  bool sendable() const noexcept;
  friend bool operator==(const Opaque& a, const Opaque& b) noexcept { return a.body_ == b.body_; }

 private:
  friend struct detail::OpaqueBody;
  explicit Opaque(std::shared_ptr<detail::OpaqueBody> body) noexcept : body_(std::move(body)) {}
  std::shared_ptr<detail::OpaqueBody> body_;
};

class Value {
 public:
  using Array = std::vector<Value>;
  // Key/value pairs; keys are unique and never nil.
  using Map = std::vector<std::pair<Value, Value>>;
  using Storage = std::variant<std::monostate, bool, std::int64_t, double, std::string, Array, Map,
                               Queue, Lock, Event, Opaque>;

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : data_(b) {}
  Value(int i) : data_(std::int64_t{i}) {}
  Value(long i) : data_(std::int64_t{i}) {}
  Value(long long i) : data_(static_cast<std::int64_t>(i)) {}
  Value(double d) : data_(d) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(std::string_view s) : data_(std::string(s)) {}
  Value(Array a) : data_(std::move(a)) {}
  Value(Map m) : data_(std::move(m)) {}
  Value(Queue q) : data_(std::move(q)) {}
  Value(Lock l) : data_(std::move(l)) {}
  Value(Event e) : data_(std::move(e)) {}
  Value(Opaque o) : data_(std::move(o)) {}

  bool is_nil() const noexcept { return std::holds_alternative<std::monostate>(data_); }
  bool is_bool() const noexcept { return std::holds_alternative<bool>(data_); }
  bool is_int() const noexcept { return std::holds_alternative<std::int64_t>(data_); }
  bool is_float() const noexcept { return std::holds_alternative<double>(data_); }
  bool is_string() const noexcept { return std::holds_alternative<std::string>(data_); }
  bool is_array() const noexcept { return std::holds_alternative<Array>(data_); }
  bool is_map() const noexcept { return std::holds_alternative<Map>(data_); }
  bool is_queue() const noexcept { return std::holds_alternative<Queue>(data_); }
  bool is_lock() const noexcept { return std::holds_alternative<Lock>(data_); }
  bool is_event() const noexcept { return std::holds_alternative<Event>(data_); }
  bool is_opaque() const noexcept { return std::holds_alternative<Opaque>(data_); }

  // Typed access; throws std::bad_variant_access on the wrong type.
  bool as_bool() const { return std::get<bool>(data_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(data_); }
  double as_float() const { return std::get<double>(data_); }
  // An integer or a float as a double (Lua's number).
  double as_number() const { return is_int() ? static_cast<double>(as_int()) : as_float(); }
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const Array& as_array() const { return std::get<Array>(data_); }
  Array& as_array() { return std::get<Array>(data_); }
  const Map& as_map() const { return std::get<Map>(data_); }
  Map& as_map() { return std::get<Map>(data_); }
  const Queue& as_queue() const { return std::get<Queue>(data_); }
  const Lock& as_lock() const { return std::get<Lock>(data_); }
  const Event& as_event() const { return std::get<Event>(data_); }
  const Opaque& as_opaque() const { return std::get<Opaque>(data_); }

  // In a Map: the value under a string key, or nullptr (also for non-maps).
  const Value* find(std::string_view key) const noexcept;
  // Lua's type name of the value ("nil", "boolean", "number", "string",
  // "table", "plua.Queue", "plua.lock.Lock", "plua.lock.Event", "opaque").
  const char* type_name() const noexcept;

  const Storage& storage() const noexcept { return data_; }
  friend bool operator==(const Value&, const Value&) = default;

 private:
  Storage data_;
};

// A value that cannot cross between C++ and Lua, with what it was: item() is
// the Opaque value when a script's value could not be read in C++ (nil when
// a C++ value could not be sent).
class ConversionError : public Error {
 public:
  ConversionError(const std::string& message, Value item) : Error(message, {}), item_(std::move(item)) {}
  const Value& item() const noexcept { return item_; }

 private:
  Value item_;
};

}  // namespace plua
