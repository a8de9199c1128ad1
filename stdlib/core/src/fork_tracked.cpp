#include "plua/core/fork_tracked.hpp"

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace plua::core {

// The process's holders: an intrusive list, so listing never allocates.
struct ForkTrackedList {
  std::mutex mu;
  ForkTrackedNode* head = nullptr;  // guarded by mu
  std::size_t size = 0;             // guarded by mu

  static ForkTrackedList& get() {
    // Leaked on purpose: holders in Lua states may outlive static destructors.
    static ForkTrackedList* list = new ForkTrackedList;
    return *list;
  }

  template <class F>
  void each(F&& f) {
    for (ForkTrackedNode* n = head; n; n = n->next_) f(*n);
  }
  static const ForkTrackedNode::Ops& ops(const ForkTrackedNode& n) { return *n.ops_; }
};

namespace {

// Set in fork children (and inherited by theirs): they release at exit().
std::atomic<bool> g_fork_child{false};

void release_at_exit() {
  if (g_fork_child.load(std::memory_order_relaxed)) fork_tracked::release_all();
}

}  // namespace

void ForkTrackedNode::link() noexcept {
  ForkTrackedList& l = ForkTrackedList::get();
  std::lock_guard lock(l.mu);
  next_ = l.head;
  if (l.head) l.head->prev_ = this;
  l.head = this;
  ++l.size;
}

void ForkTrackedNode::unlink() noexcept {
  ForkTrackedList& l = ForkTrackedList::get();
  std::lock_guard lock(l.mu);
  if (prev_) prev_->next_ = next_; else l.head = next_;
  if (next_) next_->prev_ = prev_;
  prev_ = next_ = nullptr;
  --l.size;
}

void ForkTrackedNode::lock_list() noexcept { ForkTrackedList::get().mu.lock(); }
void ForkTrackedNode::unlock_list() noexcept { ForkTrackedList::get().mu.unlock(); }

namespace fork_tracked {

void before_fork() noexcept {
  // Registered in the parent: a fork child cannot safely register anything.
  static const bool registered = [] { return std::atexit(release_at_exit) == 0; }();
  (void)registered;
  ForkTrackedList& l = ForkTrackedList::get();
  l.mu.lock();
  l.each([](ForkTrackedNode& n) { ForkTrackedList::ops(n).retain(n); });
}

void after_fork_parent(bool fork_failed) noexcept {
  ForkTrackedList& l = ForkTrackedList::get();
  if (fork_failed) l.each([](ForkTrackedNode& n) { ForkTrackedList::ops(n).unretain(n); });
  l.mu.unlock();
}

void after_fork_child() noexcept {
  g_fork_child.store(true, std::memory_order_relaxed);
  ForkTrackedList::get().mu.unlock();
}

void release_all() noexcept {
  ForkTrackedList& l = ForkTrackedList::get();
  std::lock_guard lock(l.mu);
  l.each([](ForkTrackedNode& n) { ForkTrackedList::ops(n).drop(n); });
}

std::size_t listed() noexcept {
  ForkTrackedList& l = ForkTrackedList::get();
  std::lock_guard lock(l.mu);
  return l.size;
}

}  // namespace fork_tracked
}  // namespace plua::core
