// Process-shared memory for plua's objects (locks, queues, shared Values):
// one arena per process, a sparse memfd of kArenaSize bytes mapped
// MAP_SHARED|MAP_NORESERVE, created on first use. Pages cost memory only once
// touched, and the kernel frees everything when the last process unmaps it, so
// nothing is left behind, even after SIGKILL.
//
// Blocks: allocate() returns a 16-byte-aligned payload preceded by a header
// holding an atomic reference count (starting at 1). SharedRef<T> is the RAII
// handle: copies retain, destruction releases, and the last release destroys
// the T in place and frees the block. A process that dies holding references
// leaks those counts (the memory returns to the system with the arena).
//
// Other processes: ref_to(p) describes a block as {arena id, pid, fd, offset},
// where pid is the calling process and fd its descriptor of the arena's memfd.
// resolve() turns such a description into a local address: fork children
// already map the arena at the same address; anything else opens
// /proc/<pid>/fd/<fd> and maps that arena once per process.
//
// Lock ordering: the arena's allocation mutex (a robust SharedMutex in the
// arena header) is a leaf: nothing else is locked while it is held. The
// process-local map of arenas is guarded by a std::mutex that is also a leaf,
// and is held across fork (pthread_atfork), so a fork child never inherits it
// locked. Nothing else in this file is process-local state.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace plua::core {

inline constexpr std::uint64_t kArenaSize = std::uint64_t{4} << 30;

// Where a block lives, in a form another process can resolve.
struct SharedRefData {
  std::uint64_t arena_id = 0;
  std::int32_t pid = 0;
  std::int32_t fd = -1;
  std::uint64_t offset = 0;
  friend bool operator==(const SharedRefData&, const SharedRefData&) = default;
};

// Raised when a block cannot be allocated or a reference cannot be resolved.
class SharedMemoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace shared_arena {

// A new block of at least `size` bytes in this process's arena (created on
// first use), reference count 1, contents unspecified.
void* allocate(std::size_t size);
// A new block in the same arena as the block `neighbour` (which may be foreign).
void* allocate_near(const void* neighbour, std::size_t size);
// Frees a block (whatever its count); the caller has destroyed its contents.
void deallocate(void* payload) noexcept;

void retain(void* payload) noexcept;
// Drops one reference; true when that was the last (the caller then destroys
// the contents and calls deallocate).
bool release(void* payload) noexcept;
// The current count (for tests and diagnostics).
std::uint32_t ref_count(const void* payload) noexcept;

// The description of a block for another process (does not retain).
SharedRefData ref_to(const void* payload);
// The local address of a described block, mapping its arena on first use;
// throws SharedMemoryError if the arena cannot be opened or the block is not live.
void* resolve(const SharedRefData& ref);

// Blocks currently allocated in this process's arena (all processes counted).
std::uint64_t blocks_in_use();
// The memfd of this process's arena (creating it), for tests.
int local_fd();

}  // namespace shared_arena

// An owning handle to a T constructed in shared memory. T must be usable from
// any process that maps it: no pointers, no process-local handles inside.
template <class T>
class SharedRef {
 public:
  SharedRef() noexcept = default;

  // Constructs a T in a new block of this process's arena.
  template <class... Args>
  static SharedRef make(Args&&... args) {
    void* p = shared_arena::allocate(sizeof(T));
    construct_or_free(p, std::forward<Args>(args)...);
    return SharedRef(static_cast<T*>(p));
  }
  // Constructs a T in a new block of the arena that holds `neighbour`.
  template <class... Args>
  static SharedRef make_near(const void* neighbour, Args&&... args) {
    void* p = shared_arena::allocate_near(neighbour, sizeof(T));
    construct_or_free(p, std::forward<Args>(args)...);
    return SharedRef(static_cast<T*>(p));
  }
  // Takes over a reference already counted (e.g. one carried by a message).
  static SharedRef adopt(T* p) noexcept { return SharedRef(p); }
  // Adds a reference to a live block.
  static SharedRef retain(T* p) noexcept {
    if (p) shared_arena::retain(p);
    return SharedRef(p);
  }
  // Resolves a description and takes over the reference it carries.
  static SharedRef adopt_ref(const SharedRefData& d) {
    return SharedRef(static_cast<T*>(shared_arena::resolve(d)));
  }

  SharedRef(const SharedRef& o) noexcept : p_(o.p_) {
    if (p_) shared_arena::retain(p_);
  }
  SharedRef(SharedRef&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  SharedRef& operator=(SharedRef o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~SharedRef() { reset(); }

  void reset() noexcept {
    if (T* p = std::exchange(p_, nullptr); p && shared_arena::release(p)) {
      p->~T();
      shared_arena::deallocate(p);
    }
  }
  // Describes the block and adds the reference the description carries (for
  // a message in flight; the receiver adopts it with adopt_ref).
  SharedRefData ref_retained() const {
    SharedRefData d = shared_arena::ref_to(p_);
    shared_arena::retain(p_);
    return d;
  }

  T* get() const noexcept { return p_; }
  T* operator->() const noexcept { return p_; }
  T& operator*() const noexcept { return *p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  explicit SharedRef(T* p) noexcept : p_(p) {}

  template <class... Args>
  static void construct_or_free(void* p, Args&&... args) {
    try {
      new (p) T(std::forward<Args>(args)...);
    } catch (...) {
      shared_arena::deallocate(p);
      throw;
    }
  }

  T* p_ = nullptr;
};

}  // namespace plua::core
