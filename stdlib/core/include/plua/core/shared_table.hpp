// The storage of shared.table: a map from encoded key to encoded value under
// one mutex, shared by threads of one process (std::shared_ptr). Keys are
// bytes whose first byte tags the type; integer keys use encode_int_key so the
// table can keep Lua's length (its border) up to date cheaply.
//
// Values that hold references to other objects (flagged `refs`) are released
// through the `drop` function given at construction when overwritten or when
// the table dies.
//
// Fork: fork_process() takes every live table's lock before it forks and
// releases them after (add_outer_fork_handlers), so a fork child never
// inherits a table locked by a thread that does not exist in it. A table the
// forking thread itself holds (a fork from inside shared.update's function)
// is left to that thread. The locks are taken all-or-none with try_lock and
// retried after a pause, so a thread that holds one table and waits for
// another does not deadlock the fork.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace plua::core {

class SharedTable {
 public:
  struct Entry {
    std::string bytes;
    bool refs = false;
  };
  using Drop = void (*)(std::string_view) noexcept;

  explicit SharedTable(Drop drop);
  ~SharedTable();
  SharedTable(const SharedTable&) = delete;
  SharedTable& operator=(const SharedTable&) = delete;

  static std::string encode_int_key(std::int64_t i);

  // Runs fn(Entry* or nullptr) under the table's lock; fn may replace the
  // entry's bytes in place (e.g. re-encoding a value whose references were consumed).
  template <class Fn>
  auto with_entry(const std::string& key, Fn&& fn) {
    std::lock_guard g(lock_);
    auto it = map_.find(key);
    return fn(it == map_.end() ? nullptr : &it->second);
  }
  // Sets (or, with nullopt, removes) under the lock.
  void set(const std::string& key, std::optional<Entry> value);
  // Runs fn() under the lock, for read-modify-write (fn uses set_locked / find_locked).
  template <class Fn>
  auto with_lock(Fn&& fn) {
    std::lock_guard g(lock_);
    return fn();
  }
  Entry* find_locked(const std::string& key);
  void set_locked(const std::string& key, std::optional<Entry> value);

  // Lua's #: the largest n with keys 1..n present (0 if 1 is absent).
  std::int64_t length() const;
  // The keys now present: integers first, in order.
  std::vector<std::string> keys() const;

 private:
  friend struct SharedTableList;
  // A mutex that knows which thread holds it (for the fork handlers).
  class Lock {
   public:
    void lock();
    bool try_lock();
    void unlock();
    bool held_by_me() const noexcept;

   private:
    std::mutex mu_;
    std::atomic<const void*> owner_{nullptr};
  };

  mutable Lock lock_;
  std::map<std::string, Entry> map_;  // guarded by lock_
  std::int64_t border_ = 0;           // guarded by lock_
  Drop drop_;
  // The process's live tables (guarded by the list's mutex).
  SharedTable* prev_ = nullptr;
  SharedTable* next_ = nullptr;
  bool taken_for_fork_ = false;
};

}  // namespace plua::core
