#include "plua/core/memory_budget.hpp"

namespace plua::core {

bool MemoryBudget::try_take(std::size_t n) noexcept {
  if (limit_ == 0) {
    take(n);
    return true;
  }
  // Optimistic: add, and undo if that went over (no lock, no retry loop).
  std::size_t before = used_.fetch_add(n, std::memory_order_relaxed);
  if (before + n <= limit_ && before + n >= before) return true;
  used_.fetch_sub(n, std::memory_order_relaxed);
  return false;
}

}  // namespace plua::core
