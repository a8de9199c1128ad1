#include "plua/core/clock.hpp"

#include <time.h>

namespace plua::core {
namespace {
double read_clock(clockid_t id) noexcept {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
}  // namespace

double wall_time() noexcept { return read_clock(CLOCK_REALTIME); }
double monotonic_time() noexcept { return read_clock(CLOCK_MONOTONIC); }
// CLOCK_MONOTONIC_RAW is not slewed by NTP, which suits short measurements.
double perf_counter() noexcept { return read_clock(CLOCK_MONOTONIC_RAW); }

}  // namespace plua::core
