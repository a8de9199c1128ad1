#include "plua/core/shared_array.hpp"

#include <new>
#include <string>

namespace plua::core {

SharedArray::SharedArray(ScalarKind kind, std::uint64_t n) {
  if (n > (std::uint64_t{1} << 28)) throw SharedMemoryError("shared array of " + std::to_string(n) + " items is too large");
  void* p = shared_arena::allocate(sizeof(SharedArrayHeader) + n * sizeof(std::uint64_t));
  auto* h = new (p) SharedArrayHeader{kind, n};
  auto* slots = reinterpret_cast<std::atomic<std::uint64_t>*>(static_cast<std::byte*>(p) + sizeof(SharedArrayHeader));
  for (std::uint64_t i = 0; i < n; ++i) new (&slots[i]) std::atomic<std::uint64_t>(0);
  s_ = SharedRef<SharedArrayHeader>::adopt(h);
}

}  // namespace plua::core
