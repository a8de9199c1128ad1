#include "plua/core/semaphore.hpp"

#include <vector>

namespace plua::core {
namespace {

// Accounts one unit to process p; mu is held.
void note_holder(SemaphoreState& s, const ProcessId& p) noexcept {
  SemaphoreHolder* free_slot = nullptr;
  for (SemaphoreHolder& h : s.holders) {
    if (h.units > 0 && h.process == p) {
      ++h.units;
      return;
    }
    if (h.units == 0 && !free_slot) free_slot = &h;
  }
  if (free_slot) *free_slot = SemaphoreHolder{p, 1};
}

// Takes back the units of holder processes that are gone; true if any.
bool reclaim_dead(SemaphoreState& s, const ProcessId& me) {
  std::vector<SemaphoreHolder> others;
  {
    SharedLockGuard g(s.mu);
    for (const SemaphoreHolder& h : s.holders)
      if (h.units > 0 && h.process.pid != me.pid) others.push_back(h);
  }
  bool any = false;
  for (const SemaphoreHolder& gone : others) {
    if (gone.process.alive()) continue;
    SharedLockGuard g(s.mu);
    for (SemaphoreHolder& h : s.holders)
      if (h.units > 0 && h.process == gone.process) {
        s.value += h.units;
        h.units = 0;
        any = true;
      }
  }
  return any;
}

}  // namespace

Acquire Semaphore::acquire(bool blocking, const Deadline& deadline) {
  SemaphoreState& s = *s_;
  const ProcessId me = ProcessId::self();
  bool reclaimed = false;
  auto attempt = [&](bool slow) {
    if (slow && reclaim_dead(s, me)) reclaimed = true;
    SharedLockGuard g(s.mu);
    if (s.value <= 0) return false;
    --s.value;
    note_holder(s, me);
    return true;
  };
  bool got = attempt(false) || (!blocking && attempt(true));
  if (!got && blocking) got = wait_until(s.seq, deadline, attempt);
  if (!got) return Acquire::failed;
  return reclaimed ? Acquire::abandoned : Acquire::acquired;
}

void Semaphore::release(std::int64_t n) {
  SemaphoreState& s = *s_;
  const ProcessId me = ProcessId::self();
  {
    SharedLockGuard g(s.mu);
    // value <= initial for a bounded one, so these differences cannot overflow.
    if (s.bounded && n > s.initial - s.value) throw SemaphoreError("Semaphore released too many times");
    if (n > INT64_MAX - s.value) throw SemaphoreError("Semaphore value would overflow (more than math.maxinteger)");
    s.value += n;
    std::int64_t left = n;
    for (SemaphoreHolder& h : s.holders)
      if (left > 0 && h.units > 0 && h.process == me) {
        std::int64_t k = h.units < left ? h.units : left;
        h.units -= k;
        left -= k;
      }
  }
  s.seq.notify(n > 0x7fffffff ? 0x7fffffff : static_cast<int>(n));
}

std::int64_t Semaphore::value() const {
  SharedLockGuard g(s_->mu);
  return s_->value;
}

}  // namespace plua::core
