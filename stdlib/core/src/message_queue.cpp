#include "plua/core/message_queue.hpp"

#include <sched.h>
#include <signal.h>

#include <cerrno>

#include <bit>
#include <cstring>

#include "plua/core/spin_wait.hpp"

namespace plua::core {
namespace {

constexpr std::uint64_t kHeader = 16;      // {len << 1 | spilled, sequence number}
constexpr std::uint64_t kSpillRef = 16;    // {block offset from the queue, size}
constexpr int kSpins = 2000;
constexpr int kYieldEvery = 100;

std::uint64_t round8(std::uint64_t n) { return (n + 7) & ~std::uint64_t{7}; }

// Spins briefly while `ready` is false: a partner thread or process usually
// answers within microseconds, much cheaper than a futex sleep and wake.
// Every kYieldEvery turns it yields the CPU: on a busy machine the partner
// may be waiting for this very core, and a yield is cheap when it is not.
template <class Ready>
bool spin_until(Ready ready) {
  for (int i = 1; i <= kSpins; ++i) {
    if (ready()) return true;
    if (i % kYieldEvery == 0) sched_yield(); else cpu_relax();
  }
  return false;
}

}  // namespace

// A spilled message's block in flight, listed in the queue's table: unlisted
// and freed unless the queue took it over. Unlisted first, so a kill in
// between can leak the block but never free it twice.
struct MessageQueue::SpillBlock {
  MessageQueue& q;
  void* p = nullptr;
  int slot = -1;
  ~SpillBlock() {
    if (slot >= 0) q.untrack_spill(slot);
    if (p) shared_arena::deallocate(p);
  }
};

// Locks the queue's mutex and repairs the state if its last holder died.
struct MessageQueue::Guard {
  explicit Guard(const MessageQueue& q) : q_(const_cast<MessageQueue&>(q)) {
    if (q_.mu_.lock()) q_.repair();
  }
  ~Guard() { q_.mu_.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  MessageQueue& q_;
};

MessageQueue::MessageQueue(Kind kind, std::uint64_t maxsize) : kind_(kind), maxsize_(maxsize) {
  set_ring(static_cast<std::byte*>(shared_arena::allocate_near(this, kInitialRing)), kInitialRing);
}

MessageQueue::~MessageQueue() {
  free_records();
  // Nobody uses the queue any more: blocks still listed belong to the dead.
  for (auto& slot : pending_)
    if (slot.block != 0) shared_arena::deallocate(reinterpret_cast<std::byte*>(this) + slot.block);
  shared_arena::deallocate(ring());
}

std::byte* MessageQueue::ring() const noexcept {
  auto rel = static_cast<std::int64_t>(ring_word_.load(std::memory_order_relaxed)) >> 8;
  return reinterpret_cast<std::byte*>(const_cast<MessageQueue*>(this)) + rel;
}

std::uint64_t MessageQueue::ring_cap() const noexcept {
  return std::uint64_t{1} << (ring_word_.load(std::memory_order_relaxed) & 0xff);
}

void MessageQueue::set_ring(std::byte* ring, std::uint64_t cap) noexcept {
  auto rel = ring - reinterpret_cast<std::byte*>(this);
  auto word = (static_cast<std::uint64_t>(rel) << 8) | static_cast<std::uint64_t>(std::countr_zero(cap));
  ring_word_.store(word, std::memory_order_release);
}

void MessageQueue::copy_in(std::uint64_t pos, const void* src, std::size_t n) noexcept {
  std::uint64_t cap = ring_cap(), at = pos & (cap - 1);
  std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(n, cap - at));
  std::memcpy(ring() + at, src, first);
  std::memcpy(ring(), static_cast<const std::byte*>(src) + first, n - first);
}

void MessageQueue::copy_out(std::uint64_t pos, void* dst, std::size_t n) const noexcept {
  std::uint64_t cap = ring_cap(), at = pos & (cap - 1);
  std::size_t first = static_cast<std::size_t>(std::min<std::uint64_t>(n, cap - at));
  std::memcpy(dst, ring() + at, first);
  std::memcpy(static_cast<std::byte*>(dst) + first, ring(), n - first);
}

// Makes room for `need` more bytes, doubling the ring (the switch is one store).
void MessageQueue::reserve(std::uint64_t need) {
  std::uint64_t head = head_.load(std::memory_order_relaxed), tail = tail_.load(std::memory_order_relaxed);
  std::uint64_t used = tail - head, cap = ring_cap();
  if (cap - used >= need) return;
  std::uint64_t bigger = std::bit_ceil(used + need);
  if (bigger < 2 * cap) bigger = 2 * cap;
  auto* fresh = static_cast<std::byte*>(shared_arena::allocate_near(this, bigger));
  for (std::uint64_t pos = head; pos < tail;) {
    std::uint64_t at = pos & (cap - 1);
    std::uint64_t n = std::min(tail - pos, cap - at);
    std::uint64_t to = pos & (bigger - 1);
    // Positions keep their value modulo the new capacity, in up to two pieces.
    std::uint64_t first = std::min(n, bigger - to);
    std::memcpy(fresh + to, ring() + at, first);
    std::memcpy(fresh, ring() + at + first, n - first);
    pos += n;
  }
  std::byte* old = ring();
  set_ring(fresh, bigger);
  shared_arena::deallocate(old);
}

// An empty queue gives back a big ring (after a burst), keeping a small one.
void MessageQueue::shrink() noexcept {
  if (ring_cap() <= kKeptRing) return;
  void* small = nullptr;
  try {
    small = shared_arena::allocate_near(this, kInitialRing);
  } catch (const std::exception&) {
    return;  // keep the big ring: still correct
  }
  std::byte* old = ring();
  set_ring(static_cast<std::byte*>(small), kInitialRing);  // empty: nothing to copy
  shared_arena::deallocate(old);
}

void MessageQueue::repair() noexcept {
  repairs_.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t tail = tail_.load(std::memory_order_relaxed);
  if (journal_tail_ != 0) {
    // A put died before publishing: its spilled block belongs to nobody.
    if (tail != journal_tail_ && journal_block_ != 0)
      shared_arena::deallocate(reinterpret_cast<std::byte*>(this) + journal_block_);
    journal_tail_ = 0;
    journal_block_ = 0;
  }
  std::uint64_t n = 0;
  for (std::uint64_t pos = head_.load(std::memory_order_relaxed); pos < tail;) {
    std::uint64_t header[2];
    copy_out(pos, header, sizeof header);
    std::uint64_t len = (header[0] & 1) ? kSpillRef : header[0] >> 1;
    if (header[0] & 1) {
      // A get that died before taking this record had listed its block: the ring still owns it.
      std::int64_t ref[2];
      copy_out(pos + kHeader, ref, sizeof ref);
      for (auto& slot : pending_)
        if (slot.block == ref[0]) slot = PendingSpill{};
    }
    if (header[1] > last_seq_) last_seq_ = header[1];
    pos += kHeader + round8(len);
    ++n;
  }
  count_.store(n, std::memory_order_relaxed);
  reclaim_spills(true);
}

// Frees the listed blocks of processes that are gone (the mutex is held).
// The quick check (kill 0) finds reaped processes; the thorough one also
// zombies and reused pids, at the price of reading /proc.
void MessageQueue::reclaim_spills(bool thorough) noexcept {
  const std::int32_t me = ProcessId::self().pid;
  for (auto& slot : pending_) {
    if (slot.block == 0 || slot.owner.pid == me) continue;
    bool gone = (::kill(slot.owner.pid, 0) < 0 && errno == ESRCH) || (thorough && !slot.owner.alive());
    if (!gone) continue;
    shared_arena::deallocate(reinterpret_cast<std::byte*>(this) + slot.block);
    slot = PendingSpill{};
  }
}

// Lists a spilled block as this process's; the slot, or -1 when all are taken.
int MessageQueue::track_spill(void* block) noexcept {
  Guard g(*this);
  auto rel = static_cast<std::byte*>(block) - reinterpret_cast<std::byte*>(this);
  for (int pass = 0; pass < 2; ++pass) {
    reclaim_spills(pass == 1);
    for (int i = 0; i < kPendingSlots; ++i)
      if (pending_[i].block == 0) {
        pending_[i] = PendingSpill{rel, ProcessId::self()};
        return i;
      }
  }
  return -1;
}

void MessageQueue::untrack_spill(int slot) noexcept {
  Guard g(*this);
  pending_[slot] = PendingSpill{};
}

int MessageQueue::pending_spills() const noexcept {
  Guard g(*this);
  int n = 0;
  for (const auto& slot : pending_) n += slot.block != 0;
  return n;
}

void MessageQueue::free_records() noexcept {
  std::uint64_t tail = tail_.load(std::memory_order_relaxed);
  for (std::uint64_t pos = head_.load(std::memory_order_relaxed); pos < tail;) {
    std::uint64_t header[2];
    copy_out(pos, header, sizeof header);
    std::uint64_t len = header[0] >> 1;
    if (header[0] & 1) {
      std::int64_t ref[2];
      copy_out(pos + kHeader, ref, sizeof ref);
      shared_arena::deallocate(reinterpret_cast<std::byte*>(this) + ref[0]);
      len = kSpillRef;
    }
    pos += kHeader + round8(len);
  }
}

bool MessageQueue::try_put(std::string_view message, void* spilled, int slot, PutStatus& status) {
  {
    Guard g(*this);
    if (closed_.load(std::memory_order_relaxed)) throw QueueClosed();
    if (maxsize_ != 0 && count_.load(std::memory_order_relaxed) >= maxsize_) return false;
    std::uint64_t payload = spilled ? kSpillRef : message.size();
    std::uint64_t record = kHeader + round8(payload);
    reserve(record);
    std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    std::uint64_t header[2] = {(std::uint64_t{message.size()} << 1) | (spilled ? 1u : 0u), last_seq_ + 1};
    std::int64_t block = 0;
    std::uint64_t at = tail & (ring_cap() - 1);
    if (!spilled && at + kHeader + message.size() <= ring_cap()) {
      // The usual record: contiguous, no wrap-around to split it.
      std::byte* p = ring() + at;
      std::memcpy(p, header, sizeof header);
      std::memcpy(p + kHeader, message.data(), message.size());
    } else if (spilled) {
      copy_in(tail, header, sizeof header);
      block = static_cast<std::byte*>(spilled) - reinterpret_cast<std::byte*>(this);
      std::int64_t ref[2] = {block, static_cast<std::int64_t>(message.size())};
      copy_in(tail + kHeader, ref, sizeof ref);
    } else {
      copy_in(tail, header, sizeof header);
      copy_in(tail + kHeader, message.data(), message.size());
    }
    // The block goes from the table to the journal (never in both: repair
    // would free it twice), then into the ring with the commit.
    if (slot >= 0) pending_[slot] = PendingSpill{};
    journal_tail_ = tail + record;
    journal_block_ = block;
    tail_.store(tail + record, std::memory_order_release);  // the commit
    last_seq_ = header[1];
    // Written under the mutex only: a plain store, not a locked read-modify-write.
    count_.store(count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    journal_tail_ = 0;
    journal_block_ = 0;
  }
  not_empty_.notify_waiters(1);
  status = PutStatus::ok;
  return true;
}

MessageQueue::PutStatus MessageQueue::put(std::string_view message, bool block, const Deadline& deadline) {
  SpillBlock spill{*this};
  if (message.size() > kSpillBytes) {
    // Big messages are copied outside the lock, into a block of their own.
    spill.p = shared_arena::allocate_near(this, message.size());
    spill.slot = track_spill(spill.p);
    std::memcpy(spill.p, message.data(), message.size());
  }
  PutStatus status = PutStatus::full;
  auto attempt = [&] {
    if (!try_put(message, spill.p, spill.slot, status)) return false;
    spill.p = nullptr;  // the queue owns it now
    spill.slot = -1;
    return true;
  };
  if (attempt()) return status;
  if (!block) return PutStatus::full;
  if (spin_until([&] { return !full() || closed(); }) && attempt()) return status;
  if (core::wait_until(not_full_, deadline, [&](bool) { return attempt(); })) return status;
  return PutStatus::full;
}

bool MessageQueue::try_get(std::string& out, GetStatus& status, int& slot) {
  void* spilled = nullptr;
  std::size_t spilled_len = 0;
  {
    Guard g(*this);
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_relaxed)) {
      if (!closed_.load(std::memory_order_relaxed)) return false;
      status = GetStatus::closed;
      return true;
    }
    // The caller's probe (a manager session: "is my client still there?"),
    // asked under the lock: a put that came after the client died is seen
    // after the probe sees the death, so it is never taken for that client.
    this_thread_stop_flag().throw_if_probe_fails();
    std::uint64_t header[2];
    std::uint64_t at = head & (ring_cap() - 1);
    const std::byte* p = ring() + at;
    bool contiguous = at + kHeader <= ring_cap();
    if (contiguous) std::memcpy(header, p, sizeof header); else copy_out(head, header, sizeof header);
    std::uint64_t len = header[0] >> 1;
    std::uint64_t payload = len;
    if (header[0] & 1) {
      std::int64_t ref[2];
      copy_out(head + kHeader, ref, sizeof ref);
      spilled = reinterpret_cast<std::byte*>(this) + ref[0];
      payload = kSpillRef;
      // Listed as ours before the commit: if we die copying it, it is freed.
      for (int i = 0; i < kPendingSlots && slot < 0; ++i)
        if (pending_[i].block == 0) {
          pending_[i] = PendingSpill{ref[0], ProcessId::self()};
          slot = i;
        }
    } else {
      out.resize(len);
      if (contiguous && at + kHeader + len <= ring_cap()) std::memcpy(out.data(), p + kHeader, len);
      else copy_out(head + kHeader, out.data(), len);
    }
    std::uint64_t new_head = head + kHeader + round8(payload);
    head_.store(new_head, std::memory_order_release);  // the commit
    count_.store(count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);  // under the mutex
    spilled_len = len;
    if (new_head == tail_.load(std::memory_order_relaxed)) shrink();
  }
  if (spilled) {
    // Copied after unlocking: the block is ours alone now.
    SpillBlock owned{*this, spilled, slot};
    out.resize(spilled_len);
    std::memcpy(out.data(), spilled, spilled_len);
  }
  if (maxsize_ != 0) not_full_.notify_waiters(1);
  status = GetStatus::ok;
  return true;
}

MessageQueue::GetStatus MessageQueue::get(std::string& out, bool block, const Deadline& deadline) {
  GetStatus status = GetStatus::empty;
  int slot = -1;
  if (!block) return try_get(out, status, slot) ? status : GetStatus::empty;
  // While the count says empty, spin without the lock, leaving it to the putter;
  // the count is only a hint (a dead putter can leave it stale), so the
  // wait below always checks under the lock.
  if ((readable() || spin_until([&] { return readable(); })) && try_get(out, status, slot)) return status;
  if (core::wait_until(not_empty_, deadline, [&](bool) { return try_get(out, status, slot); })) return status;
  return GetStatus::empty;
}

void MessageQueue::close() noexcept {
  {
    Guard g(*this);
    closed_.store(1, std::memory_order_relaxed);
  }
  not_empty_.notify_all();
  not_full_.notify_all();
}

void MessageQueue::task_done() {
  bool all_done;
  {
    Guard g(*this);
    if (done_ >= last_seq_) throw TooManyTaskDone();
    ++done_;
    all_done = done_ == last_seq_;
  }
  if (all_done) all_done_.notify_all();
}

bool MessageQueue::join(const Deadline& deadline) {
  return core::wait_until(all_done_, deadline, [&](bool) {
    Guard g(*this);
    return done_ == last_seq_;
  });
}

std::uint64_t MessageQueue::unfinished_tasks() noexcept {
  Guard g(*this);
  return last_seq_ - done_;
}

}  // namespace plua::core
