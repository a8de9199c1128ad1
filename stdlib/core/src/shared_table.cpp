#include "plua/core/shared_table.hpp"

namespace plua::core {

SharedTable::~SharedTable() {
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
  std::lock_guard g(mu_);
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
  std::lock_guard g(mu_);
  return border_;
}

std::vector<std::string> SharedTable::keys() const {
  std::lock_guard g(mu_);
  std::vector<std::string> out;
  out.reserve(map_.size());
  for (const auto& [key, e] : map_) out.push_back(key);
  return out;
}

}  // namespace plua::core
