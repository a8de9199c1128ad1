#include "plua/lock.hpp"

#include "embed_detail.hpp"

namespace plua {

using detail::LockBody;

Lock Lock::create() { return LockBody::wrap(core::Lock()); }

bool Lock::acquire(bool blocking, std::optional<double> timeout) {
  core::Deadline deadline = detail::deadline_of(timeout, "lock.acquire");
  // A lock abandoned by a dead process is ours now, as in Lua (which also warns).
  return body_->lock().acquire(blocking, deadline) != core::Acquire::failed;
}

void Lock::release() {
  try {
    body_->lock().release();
  } catch (const core::LockError& e) {
    throw Error(std::string("lock.release: ") + e.what(), {}, "RuntimeError");
  }
}

bool Lock::locked() const { return body_->lock().locked(); }

bool operator==(const Lock& a, const Lock& b) noexcept {
  return a.body_->lock().state().get() == b.body_->lock().state().get();
}

}  // namespace plua
