#include "plua/core/event.hpp"

namespace plua::core {

void Event::set() noexcept {
  s_->flag.store(1, std::memory_order_seq_cst);
  s_->seq.notify_all();
}

void Event::clear() noexcept { s_->flag.store(0, std::memory_order_seq_cst); }

bool Event::is_set() const noexcept { return s_->flag.load(std::memory_order_seq_cst) != 0; }

bool Event::wait(const Deadline& deadline) {
  return wait_until(s_->seq, deadline, [&](bool) { return is_set(); });
}

}  // namespace plua::core
