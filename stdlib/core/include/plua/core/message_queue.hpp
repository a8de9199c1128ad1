// A FIFO of byte messages in process-shared memory: the body of queue.Queue,
// SimpleQueue and JoinableQueue. One MessageQueue works between threads, fork
// children and spawned processes alike (it lives in the shared arena and
// holds no pointer, only offsets relative to itself).
//
// Layout: messages are records [16-byte header | payload] in a ring of bytes
// (a power-of-two block of the arena, grown by doubling, and given back when
// the queue empties); a message larger than kSpillBytes goes to a block of
// its own and the ring holds a reference.
//
// Robustness (a process may be SIGKILLed anywhere):
//  - the state is guarded by a robust SharedMutex; whoever locks it after a
//    dead holder repairs what a half-done operation can leave (repair()).
//  - a put writes its record past the tail first and then publishes it with
//    one 8-byte store of the tail: a put is either entirely visible or not at
//    all. A get takes its record with one store of the head.
//  - the message count is derived state that repair() recomputes by walking
//    the ring; every record carries its put's sequence number, so the number
//    of puts (hence JoinableQueue's unfinished tasks = puts - task_dones) is
//    recovered too; a one-entry journal frees the spilled block of a put that
//    died before publishing.
//  - waits never hold the mutex: they sleep on SharedSeq futex words, so a
//    waiter killed while blocked in get or put leaves nothing behind.
//  - a spilled block on its way in (a put copying it, or waiting for room)
//    or out (a get copying it) is listed with its owner process in a small
//    table; a block whose owner died is freed by the next spilling put (or
//    repair, or the queue's end). Only a kill landing within a few
//    instructions of allocating or freeing, or more than kPendingSlots big
//    messages in flight at once, can still lose a block.
// A message a getter had taken when it died is gone with it, as it would be
// once returned to the getter.
//
// Speed: the fast path is one uncontended lock, a memcpy, one store; a futex
// wake (and any write to the futex word) happens only when somebody sleeps; a
// blocked getter or putter spins briefly before sleeping, a getter on the
// count alone (not the lock, which the putter then has to itself). Callers
// encode and decode outside the lock.
//
// Memory ordering: all state is ordered by the mutex; count_ and closed_ are
// also read without it (relaxed: qsize/empty/full and the spin are hints,
// rechecked under the lock).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "plua/core/cancel.hpp"
#include "plua/core/process_id.hpp"
#include "plua/core/shared_arena.hpp"
#include "plua/core/shared_mutex.hpp"
#include "plua/core/shared_seq.hpp"

namespace plua::core {

// Raised by put on a closed queue.
class QueueClosed : public std::runtime_error {
 public:
  QueueClosed() : std::runtime_error("queue is closed") {}
};

// Raised by task_done called more times than there were items.
class TooManyTaskDone : public std::runtime_error {
 public:
  TooManyTaskDone() : std::runtime_error("task_done() called too many times") {}
};

class MessageQueue {
 public:
  enum class Kind : std::uint32_t { queue, simple, joinable };
  enum class GetStatus { ok, empty, closed };  // closed: closed and empty
  enum class PutStatus { ok, full };

  static constexpr std::size_t kSpillBytes = 64 * 1024;
  static constexpr std::size_t kInitialRing = 4096;
  // An emptied queue whose ring grew beyond this goes back to kInitialRing.
  static constexpr std::size_t kKeptRing = 1 << 20;
  // Spilled blocks tracked in flight at once (more are not tracked).
  static constexpr int kPendingSlots = 16;

  // maxsize 0: unbounded. Throws SharedMemoryError when out of arena.
  explicit MessageQueue(Kind kind, std::uint64_t maxsize = 0);
  ~MessageQueue();
  MessageQueue(const MessageQueue&) = delete;
  MessageQueue& operator=(const MessageQueue&) = delete;

  // New queue in this process's arena, shared with whoever gets its ref.
  static SharedRef<MessageQueue> create(Kind kind, std::uint64_t maxsize = 0) {
    return SharedRef<MessageQueue>::make(kind, maxsize);
  }

  // Appends a message, waiting while the queue is full (block and deadline,
  // as Python). Throws QueueClosed, Interrupted, SharedMemoryError.
  PutStatus put(std::string_view message, bool block, const Deadline& deadline);
  // Takes the oldest message into `out`, waiting while empty. Throws Interrupted.
  GetStatus get(std::string& out, bool block, const Deadline& deadline);

  std::uint64_t qsize() const noexcept { return count_.load(std::memory_order_relaxed); }
  bool empty() const noexcept { return qsize() == 0; }
  bool full() const noexcept { return maxsize_ != 0 && qsize() >= maxsize_; }
  std::uint64_t maxsize() const noexcept { return maxsize_; }
  Kind kind() const noexcept { return kind_; }
  // No more puts; gets drain what is left, then report closed. Wakes waiters.
  void close() noexcept;
  bool closed() const noexcept { return closed_.load(std::memory_order_relaxed) != 0; }

  // JoinableQueue: one task of the items got is done. Throws TooManyTaskDone.
  void task_done();
  // Waits until every item put has been task_done (true) or the deadline.
  bool join(const Deadline& deadline);
  std::uint64_t unfinished_tasks() noexcept;

  // True when a get would not block (an item, or closed): for wait().
  bool readable() const noexcept { return qsize() != 0 || closed(); }
  // How many times the mutex was found abandoned and repaired (for tests).
  std::uint64_t repairs() const noexcept { return repairs_.load(std::memory_order_relaxed); }
  // Spilled blocks in flight now (for tests).
  int pending_spills() const noexcept;

 private:
  struct Guard;
  struct SpillBlock;
  int track_spill(void* block) noexcept;
  void untrack_spill(int slot) noexcept;
  void reclaim_spills(bool thorough) noexcept;
  std::byte* ring() const noexcept;
  std::uint64_t ring_cap() const noexcept;
  void set_ring(std::byte* ring, std::uint64_t cap) noexcept;
  void copy_in(std::uint64_t pos, const void* src, std::size_t n) noexcept;
  void copy_out(std::uint64_t pos, void* dst, std::size_t n) const noexcept;
  void reserve(std::uint64_t need);
  void shrink() noexcept;
  void repair() noexcept;
  bool try_put(std::string_view message, void* spilled, int slot, PutStatus& status);
  bool try_get(std::string& out, GetStatus& status, int& slot);
  void free_records() noexcept;

  // Field order is for the cache. The arena puts an object 16 bytes into a
  // 64-byte-aligned block, so after 48 bytes of fields that rarely change,
  // the mutex, the count, head and tail (everything a get writes) fill one
  // cache line: each put or get moves that line and the record's between
  // the cores, nothing else. The put-only state and the waiting words (read
  // by notifiers, written only by sleepers) have lines of their own.
  const Kind kind_;
  std::atomic<std::uint32_t> closed_{0};
  const std::uint64_t maxsize_;
  // The ring as (offset from this, in bytes) << 8 | log2(capacity): one store switches it.
  std::atomic<std::uint64_t> ring_word_{0};
  std::uint64_t done_ = 0;                     // task_done calls so far, guarded by mu_
  std::atomic<std::uint64_t> repairs_{0};
  char pad0_[8] = {};
  mutable SharedMutex mu_;
  std::atomic<std::uint64_t> count_{0};        // derived from the ring
  std::atomic<std::uint64_t> head_{0};         // absolute byte positions: the commit points
  std::atomic<std::uint64_t> tail_{0};
  std::uint64_t last_seq_ = 0;                 // puts published so far, guarded by mu_
  // Journal of the put in progress (0: none): the tail it will publish, and
  // its spilled block (offset from this), so repair() can finish or undo it.
  std::uint64_t journal_tail_ = 0;             // guarded by mu_
  std::int64_t journal_block_ = 0;             // guarded by mu_
  char pad1_[40] = {};
  SharedSeq not_empty_;   // bumped when an item arrives or the queue closes
  SharedSeq not_full_;    // bumped when an item leaves (bounded queues)
  SharedSeq all_done_;    // bumped when unfinished_ drops to zero
  // Spilled blocks outside the ring, with the process responsible for them
  // (block 0: a free slot); guarded by mu_.
  struct PendingSpill {
    std::int64_t block = 0;  // offset from this
    ProcessId owner;
  };
  PendingSpill pending_[kPendingSlots];
};

}  // namespace plua::core
