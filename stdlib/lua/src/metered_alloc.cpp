#include "plua/lua/metered_alloc.hpp"

namespace plua::lua {

std::size_t state_bytes(lua_State* L) noexcept {
  return static_cast<std::size_t>(lua_gc(L, LUA_GCCOUNT)) * 1024 +
         static_cast<std::size_t>(lua_gc(L, LUA_GCCOUNTB));
}

void MeteredAllocator::attach(lua_State* L) noexcept {
  if (L_) detach();
  L_ = L;
  inner_ = lua_getallocf(L, &inner_ud_);
  budget_->take(state_bytes(L));
  lua_setallocf(L, allocate, this);
}

void MeteredAllocator::detach() noexcept {
  if (!L_) return;
  lua_setallocf(L_, inner_, inner_ud_);
  budget_->give_back(state_bytes(L_));
  L_ = nullptr;
}

void* MeteredAllocator::allocate(void* ud, void* block, std::size_t osize, std::size_t nsize) noexcept {
  auto* self = static_cast<MeteredAllocator*>(ud);
  // For a new block Lua passes the object's type in osize, not a size.
  std::size_t old = block ? osize : 0;
  core::MemoryBudget& budget = *self->budget_;
  if (nsize > old && !budget.try_take(nsize - old)) return nullptr;
  void* result = self->inner_(self->inner_ud_, block, osize, nsize);
  if (nsize == 0) {
    budget.give_back(old);
  } else if (result == nullptr) {
    if (nsize > old) budget.give_back(nsize - old);
  } else if (nsize < old) {
    budget.give_back(old - nsize);
  }
  return result;
}

}  // namespace plua::lua
