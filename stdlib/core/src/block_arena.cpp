#include "plua/core/block_arena.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>

namespace plua::core {

BlockArena::~BlockArena() {
  for (std::size_t i = 0; i < chunk_count_; ++i) std::free(chunks_[i]);
}

bool BlockArena::owns(const void* p) const noexcept {
  auto* c = static_cast<const char*>(p);
  // The last chunk starting at or below p is the only one that may hold it.
  auto it = std::upper_bound(chunks_, chunks_ + chunk_count_, c, std::less<const char*>());
  if (it == chunks_) return false;
  const char* start = *(it - 1);
  return std::less_equal<const char*>()(start, c) && std::less<const char*>()(c, start + kChunkSize);
}

bool BlockArena::add_chunk() noexcept {
  if (chunk_count_ == kMaxChunks) return false;
  auto* chunk = static_cast<char*>(std::malloc(kChunkSize));
  if (!chunk) return false;
  // What is left of the previous chunk goes to the free lists, not to waste.
  while (end_ - bump_ >= static_cast<std::ptrdiff_t>(kGrain)) {
    std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(end_ - bump_), kMaxBlock);
    n -= n % kGrain;
    give_back(bump_, class_of(n));
    bump_ += n;
  }
  auto* at = std::upper_bound(chunks_, chunks_ + chunk_count_, chunk, std::less<char*>());
  std::move_backward(at, chunks_ + chunk_count_, chunks_ + chunk_count_ + 1);
  *at = chunk;
  ++chunk_count_;
  bump_ = chunk;
  end_ = chunk + kChunkSize;
  return true;
}

void* BlockArena::take(std::size_t c) noexcept {
  if (FreeBlock* b = free_[c]) {
    free_[c] = b->next;
    return b;
  }
  std::size_t size = (c + 1) * kGrain;
  if (end_ - bump_ < static_cast<std::ptrdiff_t>(size) && !add_chunk()) return nullptr;
  void* p = bump_;
  bump_ += size;
  return p;
}

void BlockArena::give_back(void* p, std::size_t c) noexcept {
  auto* b = static_cast<FreeBlock*>(p);
  b->next = free_[c];
  free_[c] = b;
}

void* BlockArena::reallocate(void* p, std::size_t osize, std::size_t nsize) noexcept {
  bool ours = p != nullptr && osize <= kMaxBlock && owns(p);
  if (nsize == 0) {
    if (ours)
      give_back(p, class_of(osize));
    else
      std::free(p);
    return nullptr;
  }
  if (p == nullptr) {
    if (nsize <= kMaxBlock)
      if (void* q = take(class_of(nsize))) return q;
    return std::malloc(nsize);
  }
  if (ours) {
    // Same class: the block already has room.
    if (nsize <= kMaxBlock && class_of(nsize) == class_of(osize)) return p;
    void* q = nsize <= kMaxBlock ? take(class_of(nsize)) : nullptr;
    if (!q) q = std::malloc(nsize);
    if (!q) return nullptr;
    std::memcpy(q, p, std::min(osize, nsize));
    give_back(p, class_of(osize));
    return q;
  }
  // A malloc block: it stays malloc's unless it shrinks into a size class.
  if (nsize <= kMaxBlock) {
    if (void* q = take(class_of(nsize))) {
      std::memcpy(q, p, std::min(osize, nsize));
      std::free(p);
      return q;
    }
  }
  return std::realloc(p, nsize);
}

}  // namespace plua::core
