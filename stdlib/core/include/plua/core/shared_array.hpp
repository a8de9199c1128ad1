// Fixed-type memory shared between threads and processes (the storage of
// shared.Value and shared.Array): n slots of one kind in the shared arena,
// each read or write a single atomic 64-bit access.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "plua/core/shared_arena.hpp"

namespace plua::core {

enum class ScalarKind : std::uint32_t { integer = 0, floating = 1, boolean = 2 };

struct SharedArrayHeader {
  ScalarKind kind;
  std::uint64_t size;
  // Followed by `size` std::atomic<std::uint64_t> slots.
};

class SharedArray {
 public:
  // A zero-filled array (0, 0.0 or false) of n slots in this process's arena.
  SharedArray(ScalarKind kind, std::uint64_t n);
  explicit SharedArray(SharedRef<SharedArrayHeader> s) noexcept : s_(std::move(s)) {}

  ScalarKind kind() const noexcept { return s_->kind; }
  std::uint64_t size() const noexcept { return s_->size; }
  // i < size(); the caller checks bounds and kind.
  std::int64_t get_int(std::uint64_t i) const noexcept { return static_cast<std::int64_t>(slot(i).load()); }
  double get_float(std::uint64_t i) const noexcept {
    std::uint64_t bits = slot(i).load();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  bool get_bool(std::uint64_t i) const noexcept { return slot(i).load() != 0; }
  void set_int(std::uint64_t i, std::int64_t v) noexcept { slot(i).store(static_cast<std::uint64_t>(v)); }
  void set_float(std::uint64_t i, double v) noexcept {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    slot(i).store(bits);
  }
  void set_bool(std::uint64_t i, bool v) noexcept { slot(i).store(v ? 1 : 0); }
  const SharedRef<SharedArrayHeader>& state() const noexcept { return s_; }

 private:
  std::atomic<std::uint64_t>& slot(std::uint64_t i) const noexcept {
    auto* base = reinterpret_cast<std::byte*>(s_.get()) + sizeof(SharedArrayHeader);
    return reinterpret_cast<std::atomic<std::uint64_t>*>(base)[i];
  }
  SharedRef<SharedArrayHeader> s_;
};

}  // namespace plua::core
