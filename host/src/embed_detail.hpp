// Internals of the embedding API shared by its source files: the bodies
// behind the public handles, and Value <-> codec message.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plua/core/event.hpp"
#include "plua/core/fork_tracked.hpp"
#include "plua/core/lock.hpp"
#include "plua/core/message_queue.hpp"
#include "plua/value.hpp"

namespace plua::detail {

// Each handle holds one counted, fork-tracked reference, as a Lua userdata does.
struct QueueBody {
  core::ForkTracked<core::SharedRef<core::MessageQueue>> ref;
  explicit QueueBody(core::SharedRef<core::MessageQueue> q) noexcept : ref(std::move(q)) {}
  core::MessageQueue& queue() const noexcept { return *ref.body(); }
  static Queue wrap(core::SharedRef<core::MessageQueue> q) {
    return Queue(std::make_shared<QueueBody>(std::move(q)));
  }
  static const QueueBody& of(const Queue& q) noexcept { return *q.body_; }
};

struct LockBody {
  core::ForkTracked<std::optional<core::Lock>> ref;
  explicit LockBody(core::Lock l) : ref(std::optional<core::Lock>(std::move(l))) {}
  core::Lock& lock() noexcept { return *ref.body(); }
  static Lock wrap(core::Lock l) { return Lock(std::make_shared<LockBody>(std::move(l))); }
  static LockBody& of(const Lock& l) noexcept { return *l.body_; }
};

struct EventBody {
  core::ForkTracked<std::optional<core::Event>> ref;
  explicit EventBody(core::Event e) : ref(std::optional<core::Event>(std::move(e))) {}
  core::Event& event() noexcept { return *ref.body(); }
  static Event wrap(core::Event e) { return Event(std::make_shared<EventBody>(std::move(e))); }
  static EventBody& of(const Event& e) noexcept { return *e.body_; }
};

// A one-value codec message C++ could not read; its references are released
// unless it was sent.
struct OpaqueBody {
  std::string message;
  std::string reason;
  std::atomic<bool> sent{false};
  OpaqueBody(std::string m, std::string r) noexcept : message(std::move(m)), reason(std::move(r)) {}
  ~OpaqueBody();
  static Opaque wrap(std::string message, std::string reason) {
    return Opaque(std::make_shared<OpaqueBody>(std::move(message), std::move(reason)));
  }
  static OpaqueBody& of(const Opaque& o) noexcept { return *o.body_; }
};

// Encodes values as one codec message (value i at path root[i], or root for
// a single value). Throws ConversionError (item nil) for what cannot be sent:
// an Opaque already sent, an Opaque holding back-references after other
// tables, a nil or NaN map key, nesting deeper than the codec allows.
std::string encode_message(const std::vector<Value>& values, const char* root);

// Decodes a message. On success takes its references over and returns the
// values; when some value is not data, touches nothing and returns nullopt
// with *reason set ("cannot convert a function to a C++ value at item.f").
// Throws core::codec::FormatError on malformed bytes.
std::optional<std::vector<Value>> decode_message(std::string_view message, const char* root,
                                                 std::string* reason);

// Decodes a message of one value; a value that is not data becomes a
// ConversionError("op: reason") holding it as an Opaque (the message is moved in).
Value decode_item(std::string&& message, const char* op, const char* root);

// Releases the references of a message that will never be decoded.
void release_message(std::string_view message) noexcept;

// Reads a timeout: nullopt is "never"; negative or NaN throws std::invalid_argument.
core::Deadline deadline_of(std::optional<double> timeout, const char* op);

}  // namespace plua::detail
