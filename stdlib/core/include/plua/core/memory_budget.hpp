// A byte budget shared by the Lua states of one embedding runtime: each
// allocation takes from it first and fails when it would go over the limit.
//
// Thread-safety: every member may be called from any thread (one atomic
// counter; states on several threads draw on one budget).
#pragma once

#include <atomic>
#include <cstddef>

namespace plua::core {

class MemoryBudget {
 public:
  // limit: the most bytes the states may hold together (0: no limit).
  explicit MemoryBudget(std::size_t limit) noexcept : limit_(limit) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // Takes n bytes if that keeps the total within the limit (true), else
  // takes nothing (false).
  bool try_take(std::size_t n) noexcept;
  // Counts n bytes whatever the limit (memory that already exists).
  void take(std::size_t n) noexcept { used_.fetch_add(n, std::memory_order_relaxed); }
  // Gives n bytes back.
  void give_back(std::size_t n) noexcept { used_.fetch_sub(n, std::memory_order_relaxed); }

  std::size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_; }

 private:
  const std::size_t limit_;
  std::atomic<std::size_t> used_{0};
};

}  // namespace plua::core
