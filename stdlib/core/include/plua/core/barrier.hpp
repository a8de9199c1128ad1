// Barrier (Python's threading.Barrier) in process-shared memory, with
// Python's states: filling, draining (releasing a full cycle), resetting, broken.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>

#include "plua/core/cancel.hpp"
#include "plua/core/shared_arena.hpp"
#include "plua/core/shared_mutex.hpp"
#include "plua/core/shared_seq.hpp"

namespace plua::core {

// Python's BrokenBarrierError.
class BrokenBarrier : public std::runtime_error {
 public:
  BrokenBarrier() : std::runtime_error("the barrier is broken") {}
};

struct BarrierState {
  BarrierState(std::uint32_t p, double t) noexcept : parties(p), timeout(t) {}
  SharedMutex mu;
  SharedSeq seq;             // bumped on every state change
  std::uint32_t parties;
  double timeout;            // default timeout of wait(); < 0: none
  std::int32_t phase = 0;    // guarded by mu: 0 filling, 1 draining, 2 action, -1 resetting, -2 broken
  std::uint32_t count = 0;   // guarded by mu: threads inside wait()
};

class Barrier {
 public:
  // parties >= 1; timeout: the default for wait() (nullopt: none).
  Barrier(std::uint32_t parties, std::optional<double> timeout)
      : s_(SharedRef<BarrierState>::make(parties, timeout ? *timeout : -1.0)) {}
  explicit Barrier(SharedRef<BarrierState> s) noexcept : s_(std::move(s)) {}

  // Waits for all parties and returns this caller's arrival index
  // (0 .. parties-1). The last to arrive runs `action` (if any) first; an
  // action that returns false breaks the barrier, and that caller gets
  // BrokenBarrier like the others. A timeout (the given one, else the
  // barrier's default) or an interrupt breaks the barrier too.
  // Throws BrokenBarrier or Interrupted.
  std::uint32_t wait(std::optional<double> timeout, const std::function<bool()>& action);
  // Back to the empty state; waiters inside get BrokenBarrier.
  void reset();
  // Breaks the barrier: current and future waiters get BrokenBarrier until reset().
  void abort();

  std::uint32_t parties() const noexcept { return s_->parties; }
  std::uint32_t n_waiting() const;
  bool broken() const;
  std::optional<double> default_timeout() const noexcept {
    return s_->timeout < 0 ? std::nullopt : std::optional<double>(s_->timeout);
  }
  const SharedRef<BarrierState>& state() const noexcept { return s_; }

 private:
  SharedRef<BarrierState> s_;
};

}  // namespace plua::core
