// Cancellation for blocking calls: every wait in plua's core can be given up
// when its thread is asked to stop (Ctrl-C, an embedder's interrupt, shutdown).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace plua::core {

// Thrown by a blocking call whose thread was asked to stop while it waited.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted!") {}
};

// A per-OS-thread request to stop waiting. request() may be called from any
// thread and from a signal handler; only the owning thread consumes it.
class StopFlag {
 public:
  void request() noexcept { requested_.store(true, std::memory_order_release); }
  bool requested() const noexcept { return requested_.load(std::memory_order_acquire); }
  void clear() noexcept { requested_.store(false, std::memory_order_release); }
  // Consumes a pending request by throwing Interrupted.
  void throw_if_requested() {
    if (requested_.exchange(false, std::memory_order_acq_rel)) throw Interrupted();
  }

  // An owner-thread check that a take asks inside its critical section, just
  // before it takes an item (MessageQueue's get, and waits on a
  // condition_variable before each try): a manager session asks "is my
  // client still there?", so a client that vanished mid-get is never handed
  // an item put after it died. Set and used by the owning thread only;
  // nullptr removes it.
  using Probe = bool (*)(void* context) noexcept;
  void set_probe(Probe probe, void* context) noexcept {
    probe_ = probe;
    probe_context_ = context;
  }
  // Throws Interrupted if the probe says the wait is no longer wanted.
  void throw_if_probe_fails() const {
    if (probe_ && probe_(probe_context_)) throw Interrupted();
  }

 private:
  std::atomic<bool> requested_{false};
  Probe probe_ = nullptr;
  void* probe_context_ = nullptr;
  static_assert(std::atomic<bool>::is_always_lock_free, "needed for signal handlers");
};

// The calling OS thread's stop flag.
StopFlag& this_thread_stop_flag() noexcept;

// Blocking waits poll their stop flag at least this often, so an interrupt is
// seen promptly even by waits the kernel would not wake for a signal.
inline constexpr std::chrono::milliseconds kWaitSlice{20};

// When a wait must give up: never, or at a point on the monotonic clock.
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  static Deadline never() noexcept { return Deadline(); }
  // A deadline `seconds` from now; seconds must be finite and >= 0.
  static Deadline after(double seconds) noexcept;
  // never() for std::nullopt, after(*seconds) otherwise.
  static Deadline from_timeout(std::optional<double> seconds) noexcept;

  bool is_never() const noexcept { return !when_; }
  bool expired() const noexcept { return when_ && Clock::now() >= *when_; }
  std::optional<Clock::time_point> when() const noexcept { return when_; }
  // Time left, capped at kWaitSlice (so callers re-check their stop flag).
  std::chrono::nanoseconds next_slice() const noexcept;
  // Time left (zero once expired); only meaningful when !is_never().
  std::chrono::nanoseconds remaining() const noexcept;

 private:
  std::optional<Clock::time_point> when_;
};

// Waits on cv until pred() holds (true) or the deadline passes (false);
// throws Interrupted if the calling thread is asked to stop meanwhile.
template <class Predicate>
bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                const Deadline& deadline, Predicate pred) {
  StopFlag& stop = this_thread_stop_flag();
  for (;;) {
    stop.throw_if_probe_fails();
    if (pred()) break;
    stop.throw_if_requested();
    if (deadline.expired()) {
      stop.throw_if_probe_fails();
      return pred();
    }
    cv.wait_for(lock, deadline.next_slice());
  }
  return true;
}

// Sleeps until the deadline; throws Interrupted if asked to stop.
void sleep_until(const Deadline& deadline);

}  // namespace plua::core
