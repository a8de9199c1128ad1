#include "plua/core/barrier.hpp"

namespace plua::core {
namespace {

// kAction: the last arrival runs the action; nobody enters or leaves meanwhile.
constexpr std::int32_t kFilling = 0, kDraining = 1, kAction = 2, kResetting = -1, kBroken = -2;

// The last one out of a draining or resetting cycle reopens the barrier; mu is held.
void leave(BarrierState& s) noexcept {
  if (--s.count == 0 && (s.phase == kResetting || s.phase == kDraining)) {
    s.phase = kFilling;
    s.seq.notify_all();
  }
}

void break_barrier(BarrierState& s) noexcept {
  s.phase = kBroken;
  s.seq.notify_all();
}

}  // namespace

std::uint32_t Barrier::wait(std::optional<double> timeout, const std::function<bool()>& action) {
  BarrierState& s = *s_;
  Deadline deadline = Deadline::from_timeout(timeout ? timeout : default_timeout());
  // Wait for a previous cycle to drain or a reset to finish (no deadline, as Python).
  wait_until(s.seq, Deadline::never(), [&](bool) {
    SharedLockGuard g(s.mu);
    return s.phase != kDraining && s.phase != kResetting && s.phase != kAction;
  });
  std::uint32_t index;
  {
    SharedLockGuard g(s.mu);
    if (s.phase == kBroken) throw BrokenBarrier();
    if (s.phase != kFilling) return wait(timeout, action);  // a new drain began meanwhile
    index = s.count++;
    if (index + 1 == s.parties) s.phase = kAction;
  }
  if (index + 1 == s.parties) {
    // Last to arrive: run the action (with no lock held), then release everyone.
    bool ok = !action || action();
    SharedLockGuard g(s.mu);
    if (!ok || s.phase != kAction) {  // the action failed, or abort() came meanwhile
      break_barrier(s);
      leave(s);
      throw BrokenBarrier();
    }
    s.phase = kDraining;
    s.seq.notify_all();
    leave(s);
    return index;
  }
  bool released = false;
  try {
    released = wait_until(s.seq, deadline, [&](bool) {
      SharedLockGuard g(s.mu);
      return s.phase != kFilling && s.phase != kAction;
    });
  } catch (...) {
    SharedLockGuard g(s.mu);
    break_barrier(s);
    leave(s);
    throw;
  }
  SharedLockGuard g(s.mu);
  if (!released) break_barrier(s);
  bool broken = s.phase == kBroken || s.phase == kResetting;
  leave(s);
  if (broken) throw BrokenBarrier();
  return index;
}

void Barrier::reset() {
  BarrierState& s = *s_;
  SharedLockGuard g(s.mu);
  if (s.count > 0) {
    if (s.phase == kFilling || s.phase == kBroken) s.phase = kResetting;
  } else {
    s.phase = kFilling;
  }
  s.seq.notify_all();
}

void Barrier::abort() {
  SharedLockGuard g(s_->mu);
  break_barrier(*s_);
}

std::uint32_t Barrier::n_waiting() const {
  SharedLockGuard g(s_->mu);
  return s_->phase == kFilling || s_->phase == kAction ? s_->count : 0;
}

bool Barrier::broken() const {
  SharedLockGuard g(s_->mu);
  return s_->phase == kBroken;
}

}  // namespace plua::core
