// Event (Python's threading.Event) in process-shared memory: a flag and a
// futex sequence, no mutex (set stores the flag before bumping the sequence;
// a waiter reads the sequence before the flag, so no wake-up is lost).
#pragma once

#include <atomic>
#include <cstdint>

#include "plua/core/shared_arena.hpp"
#include "plua/core/shared_seq.hpp"

namespace plua::core {

struct EventState {
  SharedSeq seq;
  std::atomic<std::uint32_t> flag{0};
};

class Event {
 public:
  Event() : s_(SharedRef<EventState>::make()) {}
  explicit Event(SharedRef<EventState> s) noexcept : s_(std::move(s)) {}

  void set() noexcept;
  void clear() noexcept;
  bool is_set() const noexcept;
  // True once set (at once if already set); false at the deadline. Throws Interrupted.
  bool wait(const Deadline& deadline);
  const SharedRef<EventState>& state() const noexcept { return s_; }

 private:
  SharedRef<EventState> s_;
};

}  // namespace plua::core
