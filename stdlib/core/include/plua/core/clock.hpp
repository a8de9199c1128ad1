// The clocks of Python's time module, as seconds in a double.
#pragma once

namespace plua::core {

// Seconds since the Unix epoch (CLOCK_REALTIME), with sub-second precision.
double wall_time() noexcept;
// Seconds on a clock that never goes back (CLOCK_MONOTONIC); origin unspecified.
double monotonic_time() noexcept;
// The highest-resolution monotonic clock, for measuring short intervals.
double perf_counter() noexcept;

}  // namespace plua::core
