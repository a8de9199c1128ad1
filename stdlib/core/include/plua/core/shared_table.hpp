// The storage of shared.table: a map from encoded key to encoded value under
// one mutex, shared by threads of one process (std::shared_ptr). Keys are
// bytes whose first byte tags the type; integer keys use encode_int_key so the
// table can keep Lua's length (its border) up to date cheaply.
//
// Values that hold references to other objects (flagged `refs`) are released
// through the `drop` function given at construction when overwritten or when
// the table dies.
#pragma once

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

  explicit SharedTable(Drop drop) : drop_(drop) {}
  ~SharedTable();
  SharedTable(const SharedTable&) = delete;
  SharedTable& operator=(const SharedTable&) = delete;

  static std::string encode_int_key(std::int64_t i);

  // Runs fn(Entry* or nullptr) under the table's lock; fn may replace the
  // entry's bytes in place (e.g. re-encoding a value whose references were consumed).
  template <class Fn>
  auto with_entry(const std::string& key, Fn&& fn) {
    std::lock_guard g(mu_);
    auto it = map_.find(key);
    return fn(it == map_.end() ? nullptr : &it->second);
  }
  // Sets (or, with nullopt, removes) under the lock; the caller holds mu_ via with_lock.
  void set(const std::string& key, std::optional<Entry> value);
  // Runs fn() under the lock, for read-modify-write (fn uses set_locked / find_locked).
  template <class Fn>
  auto with_lock(Fn&& fn) {
    std::lock_guard g(mu_);
    return fn();
  }
  Entry* find_locked(const std::string& key);
  void set_locked(const std::string& key, std::optional<Entry> value);

  // Lua's #: the largest n with keys 1..n present (0 if 1 is absent).
  std::int64_t length() const;
  // The keys now present: integers first, in order.
  std::vector<std::string> keys() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, Entry> map_;  // guarded by mu_
  std::int64_t border_ = 0;           // guarded by mu_
  Drop drop_;
};

}  // namespace plua::core
