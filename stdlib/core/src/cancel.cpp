#include "plua/core/cancel.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

namespace plua::core {

StopFlag& this_thread_stop_flag() noexcept {
  thread_local StopFlag flag;
  return flag;
}

Deadline Deadline::after(double seconds) noexcept {
  Deadline d;
  // Timeouts beyond a century are as good as never, and would overflow the clock.
  if (!std::isfinite(seconds) || seconds > 3.15e9) return d;
  auto delta = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::max(seconds, 0.0)));
  d.when_ = Clock::now() + delta;
  return d;
}

Deadline Deadline::from_timeout(std::optional<double> seconds) noexcept {
  return seconds ? after(*seconds) : never();
}

std::chrono::nanoseconds Deadline::remaining() const noexcept {
  if (!when_) return std::chrono::nanoseconds::max();
  auto left = *when_ - Clock::now();
  return std::max(std::chrono::duration_cast<std::chrono::nanoseconds>(left),
                  std::chrono::nanoseconds::zero());
}

std::chrono::nanoseconds Deadline::next_slice() const noexcept {
  return std::min<std::chrono::nanoseconds>(remaining(), kWaitSlice);
}

void sleep_until(const Deadline& deadline) {
  StopFlag& stop = this_thread_stop_flag();
  for (;;) {
    stop.throw_if_requested();
    if (deadline.expired()) return;
    std::this_thread::sleep_for(deadline.next_slice());
  }
}

}  // namespace plua::core
