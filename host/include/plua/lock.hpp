// plua::Lock: the C++ side of lock.Lock (process-shared, like the Lua one).
// Hand it to a script as a global, a worker's argument or inside an item,
// and both sides lock the same lock; a lock.Lock read from a script comes
// back as a Lock.
//
// Thread-safety: every member may be called from any thread; copies are
// handles to the same lock. Any thread may release (as Python's Lock).
#pragma once

#include <memory>
#include <optional>

namespace plua {

namespace detail {
struct LockBody;
}

class Lock {
 public:
  // A new unlocked lock.
  static Lock create();

  // One try when !blocking; otherwise waits until acquired (true) or the
  // timeout (false; nullopt waits for ever). Throws plua::core::Interrupted
  // when the calling thread's stop flag is requested while it waits, and
  // std::invalid_argument for a negative timeout.
  bool acquire(bool blocking = true, std::optional<double> timeout = std::nullopt);
  // Throws plua::Error("lock.release: release unlocked lock") if not locked.
  void release();
  bool locked() const;

  friend bool operator==(const Lock& a, const Lock& b) noexcept;

 private:
  friend struct detail::LockBody;
  explicit Lock(std::shared_ptr<detail::LockBody> body) noexcept : body_(std::move(body)) {}
  std::shared_ptr<detail::LockBody> body_;
};

}  // namespace plua
