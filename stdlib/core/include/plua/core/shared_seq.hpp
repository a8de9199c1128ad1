// Process-shared waiting without condition variables: a 32-bit sequence word in
// shared memory that notifiers bump and waiters sleep on with a futex
// (FUTEX_WAIT/FUTEX_WAKE without FUTEX_PRIVATE_FLAG, so the kernel keys it by
// the shared page and it works across processes, whatever address each maps).
//
// Protocol (no lost wake-ups):
//   waiter:   seen = seq.load(); check the condition (under the state's
//             SharedMutex); if false, seq.wait(seen, slice) (with no lock held).
//   notifier: change the state (under the SharedMutex), then seq.notify_*().
// A notify between the load and the wait changes the word, so FUTEX_WAIT
// returns at once. Memory ordering: the state itself is ordered by its
// SharedMutex; load() is acquire and notify's increment is seq_cst, paired
// with the seq_cst waiter count so a notifier that sees no waiter can skip
// the system call without losing one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "plua/core/cancel.hpp"

namespace plua::core {

class SharedSeq {
 public:
  SharedSeq() = default;
  SharedSeq(const SharedSeq&) = delete;
  SharedSeq& operator=(const SharedSeq&) = delete;

  std::uint32_t load() const noexcept { return word_.load(std::memory_order_acquire); }
  // Bumps the word and wakes every waiter / at most n waiters.
  void notify_all() noexcept;
  void notify(int n) noexcept;
  // notify(n) when somebody waits, else nothing (no atomic write, no system
  // call). Only for state guarded by a SharedMutex that every waiter takes in
  // its check after counting itself (wait_until does): a waiter whose check
  // came first is counted by the time the notifier, which changed the state
  // under the same mutex, looks; one whose check came later sees the change.
  void notify_waiters(int n) noexcept {
    if (waiters_.load(std::memory_order_acquire) != 0) notify(n);
  }
  // Sleeps while the word is still `seen`, at most `slice`; may return early
  // (spuriously, on a signal, or on a notify).
  void wait(std::uint32_t seen, std::chrono::nanoseconds slice) noexcept;

  // Counts the calling thread as a waiter for its lifetime (so notify knows
  // whether to wake). A process killed while counted only costs spare wake-ups.
  class Waiting {
   public:
    explicit Waiting(SharedSeq& s) noexcept : s_(s) { s_.waiters_.fetch_add(1, std::memory_order_seq_cst); }
    ~Waiting() { s_.waiters_.fetch_sub(1, std::memory_order_seq_cst); }
    Waiting(const Waiting&) = delete;
    Waiting& operator=(const Waiting&) = delete;

   private:
    SharedSeq& s_;
  };

 private:
  std::atomic<std::uint32_t> word_{0};
  std::atomic<std::uint32_t> waiters_{0};
  static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "futex words must be plain words");
};

// Wakes the futex at `word` (shared, not private): at most n waiters.
void futex_wake(std::atomic<std::uint32_t>& word, int n) noexcept;
// Sleeps while *word == seen, at most `slice` (shared, not private futex).
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t seen,
                std::chrono::nanoseconds slice) noexcept;

// Waits until try_now(slow) returns true (then true) or the deadline passes
// (false); throws Interrupted if the calling thread is asked to stop. try_now
// takes the state's SharedMutex itself; `slow` is true about once per
// kWaitSlice, for costly checks such as "is the holder still alive".
template <class TryNow>
bool wait_until(SharedSeq& seq, const Deadline& deadline, TryNow try_now) {
  StopFlag& stop = this_thread_stop_flag();
  SharedSeq::Waiting counted(seq);
  auto last_slow = Deadline::Clock::now();
  bool slow = false;
  for (;;) {
    std::uint32_t seen = seq.load();
    if (try_now(slow)) return true;
    stop.throw_if_requested();
    if (deadline.expired()) return false;
    seq.wait(seen, deadline.next_slice());
    auto now = Deadline::Clock::now();
    slow = now - last_slow >= kWaitSlice;
    if (slow) last_slow = now;
  }
}

}  // namespace plua::core
