// A safe data subset of Python's pickle format, as the multiprocessing.managers
// wire uses it: None, bool, int (within int64), float, str, bytes, tuple, list,
// dict, and instances of a fixed whitelist of exception classes. Anything else
// (arbitrary globals, BUILD of unknown classes, persistent ids, out-of-band
// buffers) is refused, so no code is ever loaded from the network.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "plua/core/value.hpp"

namespace plua::core::pickle {

// Raised for bytes that are not a pickle of the subset, or exceed a limit.
class PickleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Object;

// Python's str (UTF-8 text) and bytes, kept apart because Python keeps them apart.
struct Str {
  std::string text;
  friend bool operator==(const Str&, const Str&) = default;
};
struct Bytes {
  std::string data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};
struct Tuple {
  std::vector<Object> items;
  // Defined below, once Object is complete (clang needs it to be for std::pair).
  friend bool operator==(const Tuple&, const Tuple&);
};
struct List {
  std::vector<Object> items;
  friend bool operator==(const List&, const List&);
};
// Key/value pairs in insertion order; a later equal key replaces an earlier one.
struct Dict {
  std::vector<std::pair<Object, Object>> items;
  friend bool operator==(const Dict&, const Dict&);
};
// An instance of a whitelisted exception class, e.g. {"_queue", "Empty", {}}.
struct Exception {
  std::string module;
  std::string name;
  std::vector<Object> args;
  friend bool operator==(const Exception&, const Exception&);
};

// One Python value of the subset. None is the default.
class Object {
 public:
  using Storage = std::variant<std::monostate, bool, std::int64_t, double, Str, Bytes, Tuple,
                               List, Dict, Exception>;

  Object() = default;
  Object(std::nullptr_t) {}
  Object(bool b) : data_(b) {}
  Object(int i) : data_(std::int64_t{i}) {}
  Object(std::int64_t i) : data_(i) {}
  Object(double d) : data_(d) {}
  Object(Str s) : data_(std::move(s)) {}
  Object(Bytes b) : data_(std::move(b)) {}
  Object(Tuple t) : data_(std::move(t)) {}
  Object(List l) : data_(std::move(l)) {}
  Object(Dict d) : data_(std::move(d)) {}
  Object(Exception e) : data_(std::move(e)) {}

  bool is_none() const noexcept { return std::holds_alternative<std::monostate>(data_); }
  template <class T>
  bool is() const noexcept { return std::holds_alternative<T>(data_); }
  // Typed access; throws std::bad_variant_access on the wrong type.
  template <class T>
  const T& as() const { return std::get<T>(data_); }
  template <class T>
  T& as() { return std::get<T>(data_); }
  // The str's text, or nullptr when this is not a str.
  const std::string* str() const noexcept {
    auto* s = std::get_if<Str>(&data_);
    return s ? &s->text : nullptr;
  }

  const Storage& storage() const noexcept { return data_; }
  friend bool operator==(const Object&, const Object&) = default;

 private:
  Storage data_;
};

inline bool operator==(const Tuple& a, const Tuple& b) { return a.items == b.items; }
inline bool operator==(const List& a, const List& b) { return a.items == b.items; }
inline bool operator==(const Dict& a, const Dict& b) { return a.items == b.items; }
inline bool operator==(const Exception& a, const Exception& b) {
  return a.module == b.module && a.name == b.name && a.args == b.args;
}

// Shorthands for building messages.
inline Object str(std::string s) { return Object(Str{std::move(s)}); }
inline Object bytes(std::string s) { return Object(Bytes{std::move(s)}); }
Object tuple(std::vector<Object> items);

// Limits on what loads() accepts from the network.
struct Limits {
  // Containers may nest this deep.
  std::size_t max_depth = 200;
  // At most this many values in the result, shared references counted each time.
  std::size_t max_objects = 1u << 20;
};

// Decodes one pickle (protocols 2 to 5) of the subset; throws PickleError.
Object loads(std::string_view data, const Limits& limits = {});

// Encodes obj as a protocol-4 pickle that Python 3.4+ reads; throws PickleError
// for values nested deeper than Limits::max_depth.
std::string dumps(const Object& obj);

// The whitelist: true if module.name is an exception class loads() accepts.
bool is_allowed_exception(std::string_view module, std::string_view name);

// Python's exception class name for a kind (as module, name), e.g. "Empty" ->
// {"_queue", "Empty"}; unknown kinds become builtins.Exception.
std::pair<std::string, std::string> exception_class_for_kind(std::string_view kind);

// str(e) as Python prints it: its single argument, or the tuple of them.
std::string exception_message(const Exception& e);

// True if s is well-formed UTF-8 (no overlong forms, no surrogates).
bool is_valid_utf8(std::string_view s) noexcept;

// plua values <-> Python values: strings that are valid UTF-8 become str, others
// bytes; arrays become lists, maps dicts. Back: None -> nil, tuples and lists ->
// arrays, dicts -> maps, str and bytes -> strings. Exceptions and dict keys that
// are containers or None cannot become Values (PickleError).
Object from_value(const Value& v);
Value to_value(const Object& obj);

// A readable rendering of obj, like Python's repr (for messages and tests).
std::string repr(const Object& obj);

}  // namespace plua::core::pickle
