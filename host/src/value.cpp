#include "plua/value.hpp"

#include "embed_detail.hpp"
#include "plua/lua/codec.hpp"

namespace plua {

const Value* Value::find(std::string_view key) const noexcept {
  if (!is_map()) return nullptr;
  for (const auto& [k, v] : as_map())
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

const char* Value::type_name() const noexcept {
  static constexpr const char* kNames[] = {"nil",   "boolean",    "number",         "number",
                                           "string", "table",     "table",          "plua.Queue",
                                           "plua.lock.Lock", "plua.lock.Event", "opaque"};
  static_assert(std::size(kNames) == std::variant_size_v<Storage>);
  return kNames[data_.index()];
}

const std::string& Opaque::reason() const noexcept { return body_->reason; }

bool Opaque::sendable() const noexcept { return !body_->sent.load(std::memory_order_acquire); }

namespace detail {

OpaqueBody::~OpaqueBody() {
  if (!sent.load(std::memory_order_acquire)) release_message(message);
}

}  // namespace detail
}  // namespace plua
