// plua::Worker: a Lua function or script running on a plua thread, started
// from C++ by Runtime::start_function / start_chunk / start_file. It is a
// thread.Thread underneath (its own lua_State with a copy of the runtime's
// globals as they were at the start, the same error format: an error is
// also printed to stderr as "Exception in thread NAME:" with its traceback),
// marked daemon so that no runtime's close() waits for another's workers.
//
// Thread-safety: every member may be called from any thread, also after the
// Runtime that started it is gone. Copies are handles to the same worker.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "plua/error.hpp"
#include "plua/value.hpp"

namespace plua {

namespace detail {
struct WorkerBody;
}

// How Runtime::start_* starts a worker.
struct WorkerOptions {
  std::string name;  // the thread's name (empty: "Thread-N")
  // interrupt() also stops running Lua code, not only blocking calls: a count
  // hook, which makes tight Lua loops up to ~40% slower. Off: only blocking
  // calls (get, join, acquire, sleep ...) are interrupted.
  bool interruptible = true;
};

class Worker {
 public:
  // Waits until the script has finished (true) or the timeout (false;
  // nullopt waits for ever). Throws plua::core::Interrupted when the calling
  // thread's stop flag is requested, std::invalid_argument for a negative timeout.
  bool join(std::optional<double> timeout = std::nullopt);
  bool finished() const noexcept;

  // Once finished: the script's return values. If it failed, throws
  // plua::Error with its message, traceback and kind (an error object's
  // kind, e.g. "KeyboardInterrupt"; empty for a plain error). Throws
  // ConversionError when a result cannot be read in C++ (a function ...), and
  // std::logic_error while the script still runs. May be called again.
  std::vector<Value> result();

  // Asks the script to stop: it raises a KeyboardInterrupt error at the
  // next safe point (see WorkerOptions::interruptible), also when blocked in
  // a queue get, a join, an acquire or a sleep. A worker interrupted before its thread started stops as it
  // starts; one that has finished is not affected.
  void interrupt() noexcept;

  // The thread's name (as thread.current_thread().name in the script).
  std::string name() const;

 private:
  friend struct detail::WorkerBody;
  explicit Worker(std::shared_ptr<detail::WorkerBody> body) noexcept : body_(std::move(body)) {}
  std::shared_ptr<detail::WorkerBody> body_;
};

}  // namespace plua
