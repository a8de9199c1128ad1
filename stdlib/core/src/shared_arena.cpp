#include "plua/core/shared_arena.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "plua/core/shared_mutex.hpp"

namespace plua::core::shared_arena {
namespace {

constexpr std::uint64_t kMagic = 0x706c75612d61726eULL;  // "plua-arn"
constexpr std::uint32_t kLiveTag = 0x4c495600;           // "LIV" + class
constexpr std::uint32_t kFreeTag = 0x46524500;           // "FRE" + class
constexpr std::uint64_t kMinBlock = 64;
constexpr int kClasses = 27;                             // 64 B .. 4 GiB
constexpr std::uint64_t kHeaderBytes = 4096;             // the arena header's page
constexpr std::uint64_t kPunchFrom = 64 * 1024;          // freed blocks this big give their pages back

struct ArenaHeader {
  std::uint64_t magic = 0;
  std::uint64_t id = 0;
  std::uint64_t size = 0;
  SharedMutex mutex;                       // guards bump and free_heads
  std::uint64_t bump = kHeaderBytes;       // first never-allocated offset
  std::uint64_t free_heads[kClasses] = {};  // offsets of free blocks, linked through their payload
  std::atomic<std::uint64_t> blocks{0};
};
static_assert(sizeof(ArenaHeader) <= kHeaderBytes);

struct BlockHeader {
  std::atomic<std::uint32_t> tag;
  std::atomic<std::uint32_t> refs;
  std::uint64_t offset;  // from the arena's base, so a block finds its arena
};
static_assert(sizeof(BlockHeader) == 16);

struct Mapping {
  std::uint64_t id;
  dev_t dev;
  ino_t ino;
  int fd;
  std::byte* base;
  std::uint64_t size;
};

// Process-local registry of mapped arenas; the mutex is a leaf, held across fork.
struct Registry {
  std::mutex mu;
  std::vector<Mapping> maps;
  int local = -1;  // index of this process's own arena in maps
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;  // never destroyed: blocks may be released during exit
    pthread_atfork([] { registry().mu.lock(); }, [] { registry().mu.unlock(); },
                   [] { registry().mu.unlock(); });
    return reg;
  }();
  return *r;
}

BlockHeader* header_of(const void* payload) noexcept {
  return reinterpret_cast<BlockHeader*>(const_cast<std::byte*>(static_cast<const std::byte*>(payload)) -
                                        sizeof(BlockHeader));
}

ArenaHeader* arena_of(BlockHeader* h) noexcept {
  return reinterpret_cast<ArenaHeader*>(reinterpret_cast<std::byte*>(h) - h->offset);
}

std::uint64_t block_bytes(int cls) noexcept { return kMinBlock << cls; }

int class_for(std::size_t size) {
  std::uint64_t need = static_cast<std::uint64_t>(size) + sizeof(BlockHeader);
  for (int c = 0; c < kClasses; ++c)
    if (block_bytes(c) >= need) return c;
  throw SharedMemoryError("shared memory: block of " + std::to_string(size) + " bytes is too large");
}

[[noreturn]] void fatal(const char* what) {
  std::fprintf(stderr, "plua: fatal: shared memory: %s\n", what);
  std::abort();
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Creates this process's arena; the registry mutex is held.
Mapping& create_local(Registry& reg) {
  int fd = ::memfd_create("plua-arena", MFD_CLOEXEC);
  if (fd < 0) throw SharedMemoryError(errno_text("shared memory: memfd_create"));
  if (::ftruncate(fd, static_cast<off_t>(kArenaSize)) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    throw SharedMemoryError(errno_text("shared memory: ftruncate"));
  }
  void* base = ::mmap(nullptr, kArenaSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) {
    int e = errno;
    ::close(fd);
    errno = e;
    throw SharedMemoryError(errno_text("shared memory: mmap"));
  }
  struct stat st {};
  ::fstat(fd, &st);
  auto* h = new (base) ArenaHeader;
  std::uint64_t id = 0;
  while (id == 0)
    if (::getrandom(&id, sizeof id, 0) != static_cast<ssize_t>(sizeof id)) id = 0;
  h->id = id;
  h->size = kArenaSize;
  h->magic = kMagic;
  reg.maps.push_back(Mapping{id, st.st_dev, st.st_ino, fd, static_cast<std::byte*>(base), kArenaSize});
  reg.local = static_cast<int>(reg.maps.size()) - 1;
  return reg.maps.back();
}

Mapping& local_mapping(Registry& reg) {
  if (reg.local >= 0) return reg.maps[static_cast<std::size_t>(reg.local)];
  return create_local(reg);
}

void* allocate_in(ArenaHeader* a, std::size_t size) {
  int cls = class_for(size);
  std::uint64_t bytes = block_bytes(cls);
  std::uint64_t offset = 0;
  {
    SharedLockGuard g(a->mutex);
    if (a->free_heads[cls] != 0) {
      offset = a->free_heads[cls];
      auto* p = reinterpret_cast<std::byte*>(a) + offset + sizeof(BlockHeader);
      std::memcpy(&a->free_heads[cls], p, sizeof(std::uint64_t));
    } else {
      std::uint64_t align = bytes < 4096 ? bytes : 4096;
      std::uint64_t start = (a->bump + align - 1) / align * align;
      if (start + bytes > a->size)
        throw SharedMemoryError("shared memory: arena is full (" + std::to_string(a->size >> 20) + " MiB)");
      offset = start;
      a->bump = start + bytes;
    }
    auto* h = reinterpret_cast<BlockHeader*>(reinterpret_cast<std::byte*>(a) + offset);
    h->offset = offset;
    h->refs.store(1, std::memory_order_relaxed);
    h->tag.store(kLiveTag | static_cast<std::uint32_t>(cls), std::memory_order_release);
    a->blocks.fetch_add(1, std::memory_order_relaxed);
  }
  return reinterpret_cast<std::byte*>(a) + offset + sizeof(BlockHeader);
}

}  // namespace

void* allocate(std::size_t size) {
  ArenaHeader* a;
  {
    Registry& reg = registry();
    std::lock_guard g(reg.mu);
    a = reinterpret_cast<ArenaHeader*>(local_mapping(reg).base);
  }
  return allocate_in(a, size);
}

void* allocate_near(const void* neighbour, std::size_t size) {
  return allocate_in(arena_of(header_of(neighbour)), size);
}

void deallocate(void* payload) noexcept {
  BlockHeader* h = header_of(payload);
  std::uint32_t tag = h->tag.load(std::memory_order_acquire);
  if ((tag & 0xffffff00u) != kLiveTag) fatal("freeing a block that is not live");
  int cls = static_cast<int>(tag & 0xffu);
  std::uint64_t bytes = block_bytes(cls);
  ArenaHeader* a = arena_of(h);
  if (bytes >= kPunchFrom) {
    // Give the block's whole pages back to the kernel; the first page keeps the free-list link.
    auto start = reinterpret_cast<std::uintptr_t>(h) + 4096;
    auto end = reinterpret_cast<std::uintptr_t>(h) + bytes;
    ::madvise(reinterpret_cast<void*>(start), end - start, MADV_REMOVE);
  }
  SharedLockGuard g(a->mutex);
  h->tag.store(kFreeTag | static_cast<std::uint32_t>(cls), std::memory_order_release);
  std::memcpy(payload, &a->free_heads[cls], sizeof(std::uint64_t));
  a->free_heads[cls] = h->offset;
  a->blocks.fetch_sub(1, std::memory_order_relaxed);
}

void retain(void* payload) noexcept { header_of(payload)->refs.fetch_add(1, std::memory_order_relaxed); }

bool release(void* payload) noexcept {
  std::uint32_t before = header_of(payload)->refs.fetch_sub(1, std::memory_order_acq_rel);
  if (before == 0) fatal("reference count below zero");
  return before == 1;
}

std::uint32_t ref_count(const void* payload) noexcept {
  return header_of(payload)->refs.load(std::memory_order_acquire);
}

SharedRefData ref_to(const void* payload) {
  auto* p = static_cast<const std::byte*>(payload);
  Registry& reg = registry();
  std::lock_guard g(reg.mu);
  for (const Mapping& m : reg.maps)
    if (p >= m.base + kHeaderBytes && p < m.base + m.size)
      return SharedRefData{m.id, static_cast<std::int32_t>(::getpid()), m.fd,
                           static_cast<std::uint64_t>(p - m.base) - sizeof(BlockHeader)};
  throw SharedMemoryError("shared memory: object is not in a shared arena");
}

void* resolve(const SharedRefData& ref) {
  Registry& reg = registry();
  std::lock_guard g(reg.mu);
  const Mapping* found = nullptr;
  for (const Mapping& m : reg.maps)
    if (m.id == ref.arena_id) found = &m;
  if (!found) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/fd/%d", static_cast<int>(ref.pid), static_cast<int>(ref.fd));
    // The path comes from a message: look first (O_PATH opens nothing, so no
    // device, FIFO or terminal sees an open), and open only a regular file (a memfd).
    int look = ::open(path, O_PATH | O_CLOEXEC);
    if (look < 0)
      throw SharedMemoryError(errno_text("shared memory: cannot open the arena of process " +
                                         std::to_string(ref.pid)));
    struct stat st {};
    int fd = -1;
    if (::fstat(look, &st) == 0 && S_ISREG(st.st_mode)) {
      char self[64];
      std::snprintf(self, sizeof self, "/proc/self/fd/%d", look);
      fd = ::open(self, O_RDWR | O_CLOEXEC | O_NOCTTY);
    }
    int open_errno = errno;
    ::close(look);
    if (fd < 0 && S_ISREG(st.st_mode)) {
      errno = open_errno;
      throw SharedMemoryError(errno_text("shared memory: cannot open the arena of process " +
                                         std::to_string(ref.pid)));
    }
    if (fd < 0 || st.st_size < static_cast<off_t>(kHeaderBytes)) {
      if (fd >= 0) ::close(fd);
      throw SharedMemoryError("shared memory: process " + std::to_string(ref.pid) + " has no arena at descriptor " +
                              std::to_string(ref.fd));
    }
    for (const Mapping& m : reg.maps)
      if (m.dev == st.st_dev && m.ino == st.st_ino) found = &m;
    if (found) {
      ::close(fd);
    } else {
      auto size = static_cast<std::uint64_t>(st.st_size);
      void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
      if (base == MAP_FAILED) {
        int e = errno;
        ::close(fd);
        errno = e;
        throw SharedMemoryError(errno_text("shared memory: mmap of a foreign arena"));
      }
      auto* h = static_cast<ArenaHeader*>(base);
      if (h->magic != kMagic || h->id != ref.arena_id) {
        ::munmap(base, size);
        ::close(fd);
        throw SharedMemoryError("shared memory: descriptor " + std::to_string(ref.fd) + " of process " +
                                std::to_string(ref.pid) + " is not the arena referred to");
      }
      reg.maps.push_back(Mapping{h->id, st.st_dev, st.st_ino, fd, static_cast<std::byte*>(base), size});
      found = &reg.maps.back();
    }
  }
  if (ref.offset < kHeaderBytes || ref.offset % alignof(BlockHeader) != 0 ||
      ref.offset > found->size - sizeof(BlockHeader))
    throw SharedMemoryError("shared memory: reference out of the arena's bounds");
  auto* h = reinterpret_cast<BlockHeader*>(found->base + ref.offset);
  if ((h->tag.load(std::memory_order_acquire) & 0xffffff00u) != kLiveTag || h->offset != ref.offset ||
      h->refs.load(std::memory_order_acquire) == 0)
    throw SharedMemoryError("shared memory: reference to a freed object");
  return found->base + ref.offset + sizeof(BlockHeader);
}

std::uint64_t blocks_in_use() {
  Registry& reg = registry();
  std::lock_guard g(reg.mu);
  return reinterpret_cast<ArenaHeader*>(local_mapping(reg).base)->blocks.load(std::memory_order_relaxed);
}

int local_fd() {
  Registry& reg = registry();
  std::lock_guard g(reg.mu);
  return local_mapping(reg).fd;
}

}  // namespace plua::core::shared_arena
