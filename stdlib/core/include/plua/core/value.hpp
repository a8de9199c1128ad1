// A plain data value as C++ sees what the codec carries: nil, boolean,
// integer, float, string (bytes), array and map. The bridge for C++ code that
// puts into or gets from the queues Lua uses, and for the manager's wire.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace plua::core {

class Value {
 public:
  using Array = std::vector<Value>;
  // Key/value pairs in insertion order; keys are unique.
  using Map = std::vector<std::pair<Value, Value>>;
  using Storage = std::variant<std::monostate, bool, std::int64_t, double, std::string, Array, Map>;

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : data_(b) {}
  Value(int i) : data_(std::int64_t{i}) {}
  Value(std::int64_t i) : data_(i) {}
  Value(double d) : data_(d) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(Array a) : data_(std::move(a)) {}
  Value(Map m) : data_(std::move(m)) {}

  bool is_nil() const noexcept { return std::holds_alternative<std::monostate>(data_); }
  bool is_bool() const noexcept { return std::holds_alternative<bool>(data_); }
  bool is_int() const noexcept { return std::holds_alternative<std::int64_t>(data_); }
  bool is_float() const noexcept { return std::holds_alternative<double>(data_); }
  bool is_string() const noexcept { return std::holds_alternative<std::string>(data_); }
  bool is_array() const noexcept { return std::holds_alternative<Array>(data_); }
  bool is_map() const noexcept { return std::holds_alternative<Map>(data_); }

  // Typed access; throw std::bad_variant_access on the wrong type.
  bool as_bool() const { return std::get<bool>(data_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(data_); }
  double as_float() const { return std::get<double>(data_); }
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const Array& as_array() const { return std::get<Array>(data_); }
  Array& as_array() { return std::get<Array>(data_); }
  const Map& as_map() const { return std::get<Map>(data_); }
  Map& as_map() { return std::get<Map>(data_); }

  const Storage& storage() const noexcept { return data_; }
  friend bool operator==(const Value&, const Value&) = default;

 private:
  Storage data_;
};

}  // namespace plua::core
