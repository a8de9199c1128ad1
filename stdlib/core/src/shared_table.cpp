#include "plua/core/shared_table.hpp"

#include <chrono>
#include <thread>
#include <utility>

#include "plua/core/child_process.hpp"

namespace plua::core {

namespace {
// The address of a thread-local: which thread holds a table's lock.
const void* this_thread_tag() noexcept {
  static thread_local char tag;
  return &tag;
}
}  // namespace

void SharedTable::Lock::lock() {
  mu_.lock();
  owner_.store(this_thread_tag(), std::memory_order_relaxed);
}
bool SharedTable::Lock::try_lock() {
  if (!mu_.try_lock()) return false;
  owner_.store(this_thread_tag(), std::memory_order_relaxed);
  return true;
}
void SharedTable::Lock::unlock() {
  owner_.store(nullptr, std::memory_order_relaxed);
  mu_.unlock();
}
bool SharedTable::Lock::held_by_me() const noexcept {
  return owner_.load(std::memory_order_relaxed) == this_thread_tag();
}

// Every live table of the process, for the fork handlers. The list mutex is
// taken by constructors and destructors (which may run while another table's
// lock is held, from a Lua finalizer): the prepare handler therefore never
// blocks on a table while holding it.
struct SharedTableList {
  std::mutex mu;
  SharedTable* head = nullptr;  // guarded by mu

  static SharedTableList& get() {
    // Leaked on purpose: tables in Lua states may outlive static destructors.
    static SharedTableList* list = [] {
      auto* l = new SharedTableList;
      add_outer_fork_handlers({&prepare, &release, &release});
      return l;
    }();
    return *list;
  }

  // Takes every table's lock (but those this thread holds), or none and retries.
  static void prepare() {
    SharedTableList& l = get();
    auto pause = std::chrono::microseconds(20);
    for (;;) {
      l.mu.lock();
      bool all = true;
      for (SharedTable* t = l.head; t && all; t = t->next_) {
        if (t->lock_.held_by_me()) continue;
        t->taken_for_fork_ = t->lock_.try_lock();
        all = t->taken_for_fork_;
      }
      if (all) return;  // l.mu stays held until release()
      unlock_taken(l);
      l.mu.unlock();
      std::this_thread::sleep_for(pause);
      if (pause < std::chrono::milliseconds(1)) pause *= 2;
    }
  }
  // In the parent and in the child: gives back what prepare took.
  static void release() {
    SharedTableList& l = get();
    unlock_taken(l);
    l.mu.unlock();
  }
  static void unlock_taken(SharedTableList& l) {
    for (SharedTable* t = l.head; t; t = t->next_)
      if (std::exchange(t->taken_for_fork_, false)) t->lock_.unlock();
  }
};

SharedTable::SharedTable(Drop drop) : drop_(drop) {
  SharedTableList& l = SharedTableList::get();
  std::lock_guard g(l.mu);
  next_ = l.head;
  if (l.head) l.head->prev_ = this;
  l.head = this;
}

SharedTable::~SharedTable() {
  {
    SharedTableList& l = SharedTableList::get();
    std::lock_guard g(l.mu);
    if (prev_) prev_->next_ = next_; else l.head = next_;
    if (next_) next_->prev_ = prev_;
  }
  for (auto& [key, e] : map_)
    if (e.refs && drop_) drop_(e.bytes);
}

// 'i' then the value with its sign bit flipped, big-endian: byte order is numeric order.
std::string SharedTable::encode_int_key(std::int64_t i) {
  std::uint64_t u = static_cast<std::uint64_t>(i) ^ (std::uint64_t{1} << 63);
  std::string k(9, 'i');
  for (int b = 0; b < 8; ++b) k[static_cast<std::size_t>(8 - b)] = static_cast<char>((u >> (8 * b)) & 0xff);
  return k;
}

void SharedTable::set(const std::string& key, std::optional<Entry> value) {
  std::lock_guard g(lock_);
  set_locked(key, std::move(value));
}

SharedTable::Entry* SharedTable::find_locked(const std::string& key) {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second;
}

void SharedTable::set_locked(const std::string& key, std::optional<Entry> value) {
  auto it = map_.find(key);
  if (it != map_.end() && it->second.refs && drop_) drop_(it->second.bytes);
  if (value) {
    if (it != map_.end()) it->second = std::move(*value);
    else map_.emplace(key, std::move(*value));
    if (key == encode_int_key(border_ + 1))
      while (map_.count(encode_int_key(border_ + 1))) ++border_;
  } else if (it != map_.end()) {
    map_.erase(it);
    // Removing an integer key at or below the border moves the border just before it.
    if (key.size() == 9 && key[0] == 'i') {
      std::uint64_t u = 0;
      for (std::size_t b = 1; b < 9; ++b) u = (u << 8) | static_cast<unsigned char>(key[b]);
      auto k = static_cast<std::int64_t>(u ^ (std::uint64_t{1} << 63));
      if (k >= 1 && k <= border_) border_ = k - 1;
    }
  }
}

std::int64_t SharedTable::length() const {
  std::lock_guard g(lock_);
  return border_;
}

std::vector<std::string> SharedTable::keys() const {
  std::lock_guard g(lock_);
  std::vector<std::string> out;
  out.reserve(map_.size());
  for (const auto& [key, e] : map_) out.push_back(key);
  return out;
}

}  // namespace plua::core
