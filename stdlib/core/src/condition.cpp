#include "plua/core/condition.hpp"

#include <climits>
#include <string>

namespace plua::core {
namespace {

// A waiter's entry in a condition's queue (in the condition's arena).
struct WaitNode {
  std::atomic<std::uint32_t> notified{0};
  std::int64_t next = 0;  // offsets from the ConditionState, 0: none
  std::int64_t prev = 0;
  ProcessId process;
};

WaitNode* node_at(ConditionState& s, std::int64_t off) noexcept {
  return reinterpret_cast<WaitNode*>(reinterpret_cast<std::byte*>(&s) + off);
}

std::int64_t offset_of(ConditionState& s, WaitNode* n) noexcept {
  return reinterpret_cast<std::byte*>(n) - reinterpret_cast<std::byte*>(&s);
}

// Unlinks a queued node; s.mu is held.
void unlink(ConditionState& s, WaitNode* n) noexcept {
  if (n->prev) node_at(s, n->prev)->next = n->next; else s.head = n->next;
  if (n->next) node_at(s, n->next)->prev = n->prev; else s.tail = n->prev;
  n->next = n->prev = 0;
}

void free_node(WaitNode* n) noexcept {
  n->~WaitNode();
  shared_arena::deallocate(n);
}

}  // namespace

Acquire Condition::acquire(bool blocking, const Deadline& deadline) {
  return std::visit([&](auto& l) { return l.acquire(blocking, deadline); }, lock_);
}

void Condition::release() {
  std::visit([](auto& l) { l.release(); }, lock_);
}

void Condition::require_held(const char* what) const {
  bool held = std::visit(
      [](const auto& l) {
        if constexpr (std::is_same_v<std::decay_t<decltype(l)>, RLock>) return l.owned();
        else return l.locked();
      },
      lock_);
  if (!held) throw LockError(std::string("cannot ") + what + " on un-acquired lock");
}

bool Condition::wait(const Deadline& deadline) {
  require_held("wait");
  ConditionState& s = *s_;
  auto* node = static_cast<WaitNode*>(shared_arena::allocate_near(&s, sizeof(WaitNode)));
  new (node) WaitNode;
  node->process = ProcessId::self();
  {
    SharedLockGuard g(s.mu);
    std::int64_t off = offset_of(s, node);
    node->prev = s.tail;
    if (s.tail) node_at(s, s.tail)->next = off; else s.head = off;
    s.tail = off;
  }
  std::uint32_t depth = 1;
  if (auto* r = std::get_if<RLock>(&lock_)) depth = r->release_all();
  else std::get<Lock>(lock_).release();

  StopFlag& stop = this_thread_stop_flag();
  bool interrupted = false;
  for (;;) {
    if (node->notified.load(std::memory_order_acquire)) break;
    if (stop.requested()) {
      interrupted = true;
      break;
    }
    if (deadline.expired()) break;
    futex_wait(node->notified, 0, deadline.next_slice());
  }
  bool notified;
  {
    SharedLockGuard g(s.mu);
    notified = node->notified.load(std::memory_order_acquire) != 0;
    if (!notified) unlink(s, node);
  }
  free_node(node);

  // Re-acquire whatever happens, so the caller's release (or guard) stays valid.
  if (auto* r = std::get_if<RLock>(&lock_)) {
    r->restore(depth);
  } else {
    detail::acquire_lock(*std::get<Lock>(lock_).state(), false, true, Deadline::never(), false);
  }
  if (interrupted) stop.throw_if_requested();
  return notified;
}

void Condition::notify(std::int64_t n) {
  require_held("notify");
  ConditionState& s = *s_;
  const std::int32_t me = ProcessId::self().pid;
  SharedLockGuard g(s.mu);
  while (n > 0 && s.head) {
    WaitNode* node = node_at(s, s.head);
    unlink(s, node);
    // A waiter whose process died would swallow the wake-up: drop its node instead.
    if (node->process.pid != me && !node->process.alive()) {
      free_node(node);
      continue;
    }
    node->notified.store(1, std::memory_order_release);
    futex_wake(node->notified, 1);
    --n;
  }
}

void Condition::notify_all() { notify(INT64_MAX); }

}  // namespace plua::core
