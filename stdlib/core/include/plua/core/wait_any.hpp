// Python's multiprocessing.connection.wait: block until at least one of
// several sources is ready. A source is a descriptor (ready when readable,
// e.g. a pipe end or a pidfd) or a readiness predicate (e.g. a shared queue,
// which has no descriptor), polled with a short backoff.
#pragma once

#include <cstddef>
#include <vector>

#include "plua/core/cancel.hpp"

namespace plua::core {

struct WaitSource {
  int fd = -1;                                // ready when readable (if >= 0)
  bool (*ready)(const void* arg) = nullptr;   // or when this returns true
  const void* arg = nullptr;
};

// Indices of the ready sources (ascending); empty when the deadline passes
// first. Throws Interrupted if the calling thread is asked to stop.
std::vector<std::size_t> wait_any(const std::vector<WaitSource>& sources, const Deadline& deadline);

}  // namespace plua::core
