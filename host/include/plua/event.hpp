// plua::Event: the C++ side of lock.Event (process-shared, like the Lua one).
// Hand it to a script as a global, a worker's argument or inside an item;
// a lock.Event read from a script comes back as an Event.
//
// Thread-safety: every member may be called from any thread; copies are
// handles to the same event.
#pragma once

#include <memory>
#include <optional>

namespace plua {

namespace detail {
struct EventBody;
}

class Event {
 public:
  // A new event, not set.
  static Event create();

  void set() noexcept;
  void clear() noexcept;
  bool is_set() const noexcept;
  // True once set; false at the timeout (nullopt waits for ever). Throws
  // plua::core::Interrupted when the calling thread's stop flag is requested,
  // std::invalid_argument for a negative timeout.
  bool wait(std::optional<double> timeout = std::nullopt);

  friend bool operator==(const Event& a, const Event& b) noexcept;

 private:
  friend struct detail::EventBody;
  explicit Event(std::shared_ptr<detail::EventBody> body) noexcept : body_(std::move(body)) {}
  std::shared_ptr<detail::EventBody> body_;
};

}  // namespace plua
