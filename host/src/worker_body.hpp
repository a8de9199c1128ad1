// The body behind a plua::Worker (shared by worker.cpp and runtime.cpp).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "plua/core/thread.hpp"
#include "plua/lua/script_control.hpp"
#include "plua/worker.hpp"

namespace plua::detail {

struct WorkerBody {
  std::shared_ptr<core::Thread> thread;
  std::shared_ptr<lua::ScriptControl> control;
  std::mutex mu;
  std::optional<std::vector<Value>> results;  // guarded by mu: read once, kept
  std::optional<Error> error;                 // guarded by mu: read once, kept

  WorkerBody(std::shared_ptr<core::Thread> t, std::shared_ptr<lua::ScriptControl> c) noexcept
      : thread(std::move(t)), control(std::move(c)) {}
  static Worker wrap(std::shared_ptr<WorkerBody> body) noexcept { return Worker(std::move(body)); }
};

}  // namespace plua::detail
