#include "plua/core/block_arena.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

using plua::core::BlockArena;

namespace {

// Fills n bytes at p with a pattern derived from seed, and checks it back.
void fill(void* p, std::size_t n, unsigned seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(seed + i * 7);
}
bool holds(const void* p, std::size_t n, unsigned seed) {
  auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] != static_cast<unsigned char>(seed + i * 7)) return false;
  return true;
}

}  // namespace

TEST(BlockArena, SmallBlocksComeFromTheArenaAlignedAndDistinct) {
  BlockArena a;
  std::set<void*> seen;
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (std::size_t n = 1; n <= BlockArena::kMaxBlock; n += 5) {
    void* p = a.reallocate(nullptr, 0, n);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(a.owns(p));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % BlockArena::kGrain, 0u);
    EXPECT_TRUE(seen.insert(p).second);
    fill(p, n, static_cast<unsigned>(n));
    blocks.emplace_back(p, n);
  }
  // No block overwrote another.
  for (auto [p, n] : blocks) EXPECT_TRUE(holds(p, n, static_cast<unsigned>(n)));
  for (auto [p, n] : blocks) EXPECT_EQ(a.reallocate(p, n, 0), nullptr);
}

TEST(BlockArena, AFreedBlockIsReusedForItsSizeClass) {
  BlockArena a;
  void* p = a.reallocate(nullptr, 0, 40);
  a.reallocate(p, 40, 0);
  EXPECT_EQ(a.reallocate(nullptr, 0, 48), p);  // 40 and 48 share a class
  void* q = a.reallocate(nullptr, 0, 40);
  EXPECT_NE(q, p);
}

TEST(BlockArena, ResizingKeepsTheContents) {
  BlockArena a;
  void* p = a.reallocate(nullptr, 0, 20);
  fill(p, 20, 3);
  EXPECT_EQ(a.reallocate(p, 20, 30), p);  // same class: stays in place
  void* q = a.reallocate(p, 30, 200);     // another class
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(a.owns(q));
  EXPECT_TRUE(holds(q, 20, 3));
  fill(q, 200, 9);
  void* big = a.reallocate(q, 200, 5000);  // out of the arena
  ASSERT_NE(big, nullptr);
  EXPECT_FALSE(a.owns(big));
  EXPECT_TRUE(holds(big, 200, 9));
  fill(big, 5000, 11);
  void* back = a.reallocate(big, 5000, 100);  // back into a size class
  ASSERT_NE(back, nullptr);
  EXPECT_TRUE(a.owns(back));
  EXPECT_TRUE(holds(back, 100, 11));
  EXPECT_EQ(a.reallocate(back, 100, 0), nullptr);
}

TEST(BlockArena, TakesOverBlocksMallocMade) {
  // A heap malloc started (luaL_newstate's) is resized and freed by the arena.
  BlockArena a;
  void* small = std::malloc(24);
  void* large = std::malloc(3000);
  ASSERT_TRUE(small && large);
  EXPECT_FALSE(a.owns(small));
  fill(small, 24, 5);
  void* grown = a.reallocate(small, 24, 1000);
  ASSERT_NE(grown, nullptr);
  EXPECT_TRUE(holds(grown, 24, 5));
  fill(large, 3000, 6);
  void* grown2 = a.reallocate(large, 3000, 6000);
  ASSERT_NE(grown2, nullptr);
  EXPECT_TRUE(holds(grown2, 3000, 6));
  a.reallocate(grown, 1000, 0);
  a.reallocate(grown2, 6000, 0);
  void* other = std::malloc(64);
  a.reallocate(other, 64, 0);  // freed with free(), not put on a free list
  EXPECT_NE(a.reallocate(nullptr, 0, 64), other);
}

TEST(BlockArena, LargeBlocksAreMallocs) {
  BlockArena a;
  void* p = a.reallocate(nullptr, 0, BlockArena::kMaxBlock + 1);
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(a.owns(p));
  EXPECT_EQ(a.chunk_count(), 0u);
  a.reallocate(p, BlockArena::kMaxBlock + 1, 0);
}

TEST(BlockArena, MemoryIsBoundedThenMallocServesSmallBlocksToo) {
  BlockArena a;
  std::vector<void*> blocks;
  std::size_t limit = BlockArena::kMaxChunks * BlockArena::kChunkSize / 256 + 100;
  std::size_t outside = 0;
  for (std::size_t i = 0; i < limit; ++i) {
    void* p = a.reallocate(nullptr, 0, 256);
    ASSERT_NE(p, nullptr);
    if (!a.owns(p)) ++outside;
    blocks.push_back(p);
  }
  EXPECT_EQ(a.chunk_count(), BlockArena::kMaxChunks);
  EXPECT_GE(outside, 100u);
  for (void* p : blocks) a.reallocate(p, 256, 0);
  // Freed arena blocks are used again before malloc.
  void* again = a.reallocate(nullptr, 0, 256);
  EXPECT_TRUE(a.owns(again));
  a.reallocate(again, 256, 0);
}

TEST(BlockArena, NothingAllocatedForZeroBytes) {
  BlockArena a;
  EXPECT_EQ(a.reallocate(nullptr, 0, 0), nullptr);
  EXPECT_EQ(a.chunk_count(), 0u);
}
