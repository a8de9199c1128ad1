// A small-block allocator for one single-threaded heap (a thread's lua_State):
// blocks of up to kMaxBlock bytes come from size classes (16-byte steps) carved
// out of a few large chunks, and go back to their class's free list. Building
// and closing a state is mostly small allocations and frees, which then cost a
// few instructions each instead of a trip through malloc; closing the arena
// returns every chunk at once.
//
// The interface is lua_Alloc's: the caller always says how big a block is
// (osize) when it resizes or frees it, so blocks carry no header. Blocks the
// arena did not hand out (allocated before it took over, larger than
// kMaxBlock, or after kMaxChunks chunks are in use) are malloc's, and are
// resized and freed with realloc/free: the arena can take over a heap that
// malloc started. Memory in free lists is reused only for the same size class
// and is bounded by kMaxChunks * kChunkSize.
//
// Thread-safety: none; one thread at a time (a lua_State is never used by two).
#pragma once

#include <cstddef>

namespace plua::core {

class BlockArena {
 public:
  static constexpr std::size_t kGrain = 16;              // size-class step and alignment
  static constexpr std::size_t kMaxBlock = 512;          // larger blocks are malloc's
  static constexpr std::size_t kChunkSize = 32 * 1024;   // carved into blocks on demand
  static constexpr std::size_t kMaxChunks = 64;          // 2 MiB; then malloc serves small blocks too

  BlockArena() = default;
  ~BlockArena();
  BlockArena(const BlockArena&) = delete;
  BlockArena& operator=(const BlockArena&) = delete;

  // lua_Alloc's contract: p == nullptr allocates nsize bytes; nsize == 0 frees
  // p (osize bytes) and returns nullptr; otherwise resizes p from osize to
  // nsize, keeping the contents. Returns nullptr when out of memory (p, if
  // any, is then untouched).
  void* reallocate(void* p, std::size_t osize, std::size_t nsize) noexcept;

  // True if p lies in one of the arena's chunks.
  bool owns(const void* p) const noexcept;
  // Chunks in use (for tests).
  std::size_t chunk_count() const noexcept { return chunk_count_; }

 private:
  static constexpr std::size_t kClasses = kMaxBlock / kGrain;
  static std::size_t class_of(std::size_t n) noexcept { return (n - 1) / kGrain; }

  // A block of class c, or nullptr when the arena cannot serve it.
  void* take(std::size_t c) noexcept;
  void give_back(void* p, std::size_t c) noexcept;
  bool add_chunk() noexcept;

  struct FreeBlock {
    FreeBlock* next;
  };
  FreeBlock* free_[kClasses] = {};
  char* bump_ = nullptr;  // unused space of the newest chunk
  char* end_ = nullptr;
  char* chunks_[kMaxChunks] = {};  // sorted by address, for owns()
  std::size_t chunk_count_ = 0;
};

}  // namespace plua::core
