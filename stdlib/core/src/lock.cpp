#include "plua/core/lock.hpp"

namespace plua::core {
namespace detail {
namespace {

enum class Try { taken, busy, holder_dead };

// One attempt under the state's mutex. `check_dead`: also look whether the
// holder's process is gone (costly: reads /proc, done with the mutex released).
Try try_take(LockState& s, const LockOwner& me, bool recursive, std::uint32_t depth, bool check_dead) {
  LockOwner holder;
  {
    SharedLockGuard g(s.mu);
    if (s.count == 0) {
      s.count = depth;
      s.owner = me;
      return Try::taken;
    }
    if (recursive && s.owner == me) {
      s.count += depth;
      return Try::taken;
    }
    if (!check_dead || s.owner.process.pid == me.process.pid) return Try::busy;
    holder = s.owner;
  }
  if (holder.process.alive()) return Try::busy;
  SharedLockGuard g(s.mu);
  // Only the waiter that still sees the same dead holder takes over.
  if (s.count == 0 || !(s.owner == holder)) return Try::busy;
  s.count = depth;
  s.owner = me;
  return Try::holder_dead;
}

}  // namespace

Acquire acquire_lock(LockState& s, bool recursive, bool blocking, const Deadline& deadline, bool interruptible,
                     std::uint32_t depth) {
  const LockOwner me = LockOwner::self();
  Try t = try_take(s, me, recursive, depth, !blocking);
  if (t == Try::taken) return Acquire::acquired;
  if (t == Try::holder_dead) return Acquire::abandoned;
  if (!blocking) return Acquire::failed;
  Acquire result = Acquire::failed;
  auto attempt = [&](bool slow) {
    Try r = try_take(s, me, recursive, depth, slow);
    if (r == Try::busy) return false;
    result = r == Try::taken ? Acquire::acquired : Acquire::abandoned;
    return true;
  };
  if (interruptible) {
    wait_until(s.seq, deadline, attempt);
    return result;
  }
  // Uninterruptible (Condition's re-acquire): a pending stop request is left for the caller.
  SharedSeq::Waiting counted(s.seq);
  auto last_slow = Deadline::Clock::now();
  bool slow = false;
  for (;;) {
    std::uint32_t seen = s.seq.load();
    if (attempt(slow)) return result;
    s.seq.wait(seen, kWaitSlice);
    auto now = Deadline::Clock::now();
    slow = now - last_slow >= kWaitSlice;
    if (slow) last_slow = now;
  }
}

}  // namespace detail

void Lock::release() {
  {
    SharedLockGuard g(s_->mu);
    if (s_->count == 0) throw LockError("release unlocked lock");
    s_->count = 0;
  }
  s_->seq.notify(1);
}

bool Lock::locked() const {
  SharedLockGuard g(s_->mu);
  return s_->count != 0;
}

void RLock::release() {
  {
    SharedLockGuard g(s_->mu);
    if (s_->count == 0 || !(s_->owner == LockOwner::self())) throw LockError("cannot release un-acquired lock");
    if (--s_->count != 0) return;
  }
  s_->seq.notify(1);
}

bool RLock::owned() const {
  SharedLockGuard g(s_->mu);
  return s_->count != 0 && s_->owner == LockOwner::self();
}

std::uint32_t RLock::depth() const {
  SharedLockGuard g(s_->mu);
  return s_->count;
}

std::uint32_t RLock::release_all() {
  std::uint32_t depth;
  {
    SharedLockGuard g(s_->mu);
    if (s_->count == 0 || !(s_->owner == LockOwner::self())) throw LockError("cannot release un-acquired lock");
    depth = std::exchange(s_->count, 0u);
  }
  s_->seq.notify(1);
  return depth;
}

}  // namespace plua::core
