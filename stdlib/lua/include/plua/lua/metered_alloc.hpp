// A lua_Alloc that draws every allocation of a state from a core::MemoryBudget
// and refuses one that would go over it: Lua then collects garbage, tries
// again, and raises its own "not enough memory" error if that is not enough.
// It wraps the state's allocator (plain realloc, or a thread state's arena).
//
// Thread-safety: attach and detach on the thread that owns the state; the
// budget may be shared with states on other threads.
#pragma once

#include <cstddef>
#include <memory>

#include "plua/core/memory_budget.hpp"
#include "plua/lua/lua.hpp"

namespace plua::lua {

class MeteredAllocator {
 public:
  explicit MeteredAllocator(std::shared_ptr<core::MemoryBudget> budget) noexcept
      : budget_(std::move(budget)) {}
  MeteredAllocator(const MeteredAllocator&) = delete;
  MeteredAllocator& operator=(const MeteredAllocator&) = delete;
  // Must outlive the state it is attached to, or be detached first.
  ~MeteredAllocator() = default;

  // Routes L's allocations through the budget and counts what L holds now
  // (beyond the limit if it must: those bytes exist already).
  void attach(lua_State* L) noexcept;
  // Gives L its own allocator back and the budget what L holds (L stays
  // open). A state closed while attached needs no detach: its frees went
  // through the budget.
  void detach() noexcept;

  core::MemoryBudget& budget() const noexcept { return *budget_; }

 private:
  static void* allocate(void* ud, void* block, std::size_t osize, std::size_t nsize) noexcept;

  std::shared_ptr<core::MemoryBudget> budget_;
  lua_State* L_ = nullptr;
  lua_Alloc inner_ = nullptr;
  void* inner_ud_ = nullptr;
};

// Bytes a state holds, as Lua counts them (lua_gc LUA_GCCOUNT and COUNTB).
std::size_t state_bytes(lua_State* L) noexcept;

}  // namespace plua::lua
