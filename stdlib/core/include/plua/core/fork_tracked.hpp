// Arena references held in process-local memory, kept counted across fork.
//
// A SharedRef lives in ordinary memory (the body of a Lua userdata, say) but
// its count lives in the shared arena. A fork child inherits a copy of the
// holder, not a count: without help it would release a reference it never
// took, and could destroy an object its parent still uses. ForkTracked<Body>
// is the holder that gets this right:
//
//  - every ForkTracked is listed while it lives;
//  - fork_process() (child_process.hpp) retains every listed body's references
//    once for the child, in the parent before fork() (so the parent cannot
//    drop the last count while the child is starting), and gives them back if
//    fork() fails;
//  - a fork child that leaves without destroying its holders (exit() without
//    closing its Lua states, _exit after a Process target, a pool worker)
//    releases every listed body first: run_fork_child_exit_hooks() does it,
//    and so does an atexit handler in fork children.
//
// Body is a value made of SharedRefs (a SharedRef, a core::Lock, a
// std::optional or std::variant of those, a struct of them): copying it must
// retain exactly the references it holds and nothing else, and Body{} must
// hold none. Change the references only through reset() or take(), which
// hold the list lock, so a concurrent fork sees a body whole.
//
// Cost: creation and destruction lock one process-wide mutex; using the body
// costs nothing. Each holder keeps room for one more Body (the copy that
// carries the child's counts across fork()).
//
// Lock ordering: the list mutex is taken before the arena's mutexes (a body
// released under it may free arena blocks), and never while holding any other
// lock of ours.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace plua::core {

namespace fork_tracked {

// Called by fork_process() only: locks the list and retains every listed body
// for the child.
void before_fork() noexcept;
// In the parent: gives the child's references back if fork() failed; unlocks.
void after_fork_parent(bool fork_failed) noexcept;
// In the child: the retained references are the child's now; unlocks, and
// arranges for release_all() at exit().
void after_fork_child() noexcept;

// Releases every listed body (each becomes Body{}): what a fork child does
// right before it leaves. Safe to call more than once.
void release_all() noexcept;

// Holders listed in this process now (for tests and diagnostics).
std::size_t listed() noexcept;

}  // namespace fork_tracked

// The list node, type-erased; see ForkTracked.
class ForkTrackedNode {
 public:
  ForkTrackedNode(const ForkTrackedNode&) = delete;
  ForkTrackedNode& operator=(const ForkTrackedNode&) = delete;

 protected:
  // Each with the list locked.
  using Op = void (*)(ForkTrackedNode&) noexcept;
  struct Ops {
    Op retain;   // copies the body into the fork copy (retaining it)
    Op unretain; // destroys the fork copy (a failed fork)
    Op drop;     // replaces the body with Body{}, releasing its references
  };

  explicit ForkTrackedNode(const Ops* ops) noexcept : ops_(ops) {}
  ~ForkTrackedNode() = default;

  // List membership, each under the list lock.
  void link() noexcept;
  void unlink() noexcept;
  static void lock_list() noexcept;
  static void unlock_list() noexcept;

 private:
  friend struct ForkTrackedList;
  const Ops* ops_;
  ForkTrackedNode* prev_ = nullptr;  // guarded by the list lock
  ForkTrackedNode* next_ = nullptr;  // guarded by the list lock
};

template <class Body>
class ForkTracked final : public ForkTrackedNode {
  static_assert(std::is_default_constructible_v<Body> && std::is_copy_constructible_v<Body>,
                "Body must be a copyable value of SharedRefs whose Body{} holds none");

 public:
  // Takes over the references in `body` and lists them.
  explicit ForkTracked(Body body) noexcept(std::is_nothrow_move_constructible_v<Body>)
      : ForkTrackedNode(&kOps), body_(std::move(body)) {
    link();
  }
  ~ForkTracked() { unlink(); }

  Body& body() noexcept { return body_; }
  const Body& body() const noexcept { return body_; }

  // Hands the references over to the caller; the body becomes Body{}.
  Body take() noexcept {
    lock_list();
    Body out = std::exchange(body_, Body{});
    unlock_list();
    return out;
  }
  // Releases the references (safe to call twice).
  void reset() noexcept { take(); }

 private:
  static void retain(ForkTrackedNode& n) noexcept {
    auto& self = static_cast<ForkTracked&>(n);
    new (self.fork_copy_) Body(self.body_);
  }
  static void unretain(ForkTrackedNode& n) noexcept {
    std::launder(reinterpret_cast<Body*>(static_cast<ForkTracked&>(n).fork_copy_))->~Body();
  }
  static void drop(ForkTrackedNode& n) noexcept {
    Body gone = std::exchange(static_cast<ForkTracked&>(n).body_, Body{});
  }
  static constexpr Ops kOps{&retain, &unretain, &drop};

  Body body_;
  // The copy made for a fork child: destroyed if fork() fails, otherwise
  // abandoned (its counts are the child's).
  alignas(Body) unsigned char fork_copy_[sizeof(Body)];
};

}  // namespace plua::core
