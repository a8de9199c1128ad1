// The background reaper of subprocesses whose handle went away while they
// still ran (a Popen collected by Lua's GC): it waits for each by pid (never
// waitpid(-1), which would steal other code's children), so none is left a
// zombie. Its thread starts on demand and ends when nothing is left to reap.
#pragma once

#include <sys/types.h>

#include <cstddef>

#include "plua/core/owned_fd.hpp"

namespace plua::core {

// Hands over a child of this process (and its pidfd, which may be invalid)
// to be reaped once it ends. Thread-safe.
void reap_later(pid_t pid, OwnedFd pidfd) noexcept;

// How many handed-over children are not reaped yet (for tests).
std::size_t reaper_pending();

}  // namespace plua::core
