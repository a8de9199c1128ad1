// Embedding plua: a Lua 5.4 state with the standard library and the plua
// modules, owned by a C++ object, and errors that come back as C++ values.
//
// Thread-safety: a Runtime belongs to one thread at a time; it may be moved to
// another thread between calls but never used from two at once. The
// exceptions are interrupt() and memory_used(), which any thread may call
// while the Runtime lives. Several Runtimes may live in one process, each
// on its own thread.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "plua/error.hpp"
#include "plua/value.hpp"
#include "plua/worker.hpp"

struct lua_State;

namespace plua {

namespace detail {
struct RuntimeParts;
}

// The outcome of a protected run: ok, or the error's message and traceback.
struct Outcome {
  bool ok = true;
  std::string message;
  std::string traceback;
  explicit operator bool() const noexcept { return ok; }
};

// Registers the plua modules (thread, queue, time, ...) in package.preload of a
// state the application already has; its own libraries are left untouched.
void open_modules(lua_State* L);

// The counterpart of open_modules, to call before lua_close on such a state:
// runs the modules' shutdown work (the thread module joins the non-daemon
// threads this state's scripts started).
void shutdown_modules(lua_State* L);

// The message handler plua runs chunks under: turns the error into
// "message\nstack traceback:\n..." (error objects through their __tostring).
int traceback_handler(lua_State* L);

// Splits what traceback_handler produced into message and traceback.
Outcome make_failure(std::string_view handled_error);

class Runtime {
 public:
  struct Options {
    // Like `lua -E`: ignore LUA_PATH, LUA_CPATH (and LUA_INIT, for the host).
    bool ignore_environment = false;
    // The most bytes the runtime's state and its workers' states may hold
    // together (0: no limit). An allocation beyond it fails as Lua's "not
    // enough memory" error in the script that made it; the runtime lives on.
    // Threads and processes that scripts start themselves are not counted.
    std::size_t memory_limit = 0;
    // interrupt() also stops running Lua code in the runtime's own state (a
    // count hook, which makes tight Lua loops up to ~40% slower), not only
    // blocking calls. Workers have WorkerOptions::interruptible.
    bool interruptible = false;
  };

  Runtime();
  explicit Runtime(const Options& options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // The owned state, for the application's own bindings.
  lua_State* state() const noexcept { return L_; }

  // Run a file (a `#!` first line is skipped) or a string; throw Error on failure.
  void run_file(const std::string& path);
  void run_string(std::string_view code, const std::string& chunkname = "=(string)");

  // The same, returning the outcome instead of throwing.
  Outcome try_run_file(const std::string& path) noexcept;
  Outcome try_run_string(std::string_view code, const std::string& chunkname = "=(string)") noexcept;

  // Calls the function below `nargs` arguments on the stack under the
  // traceback handler, leaving `nresults` results (LUA_MULTRET allowed) on success.
  Outcome call(int nargs, int nresults) noexcept;

  // ---- Values (owner thread) ----

  // Sets a global of the runtime's state to a value: plain data, or a Queue,
  // Lock or Event the script then shares with C++. Throws ConversionError
  // for a value that cannot be sent, plua::Error if the state fails.
  void set_global(const std::string& name, const Value& value);
  // Reads a global of the runtime's state. Throws ConversionError (holding
  // the value as an Opaque) when C++ cannot read it, e.g. a function.
  Value get_global(const std::string& name);

  // ---- Workers (owner thread) ----
  //
  // Each starts a thread.Thread running a Lua function with the given
  // arguments: a global function of the runtime's state, a chunk of source
  // (its arguments are `...`), or a script file (arguments as `...`). The
  // worker gets a copy of the runtime's globals, as thread.Thread does.
  // Throws plua::Error when the global is not a function or the code does
  // not compile, ConversionError for an argument that cannot be sent.
  Worker start_function(const std::string& global_name, const std::vector<Value>& args = {},
                        const WorkerOptions& options = {});
  Worker start_chunk(std::string_view code, const std::vector<Value>& args = {},
                     const std::string& chunkname = "=(worker)", const WorkerOptions& options = {});
  Worker start_file(const std::string& path, const std::vector<Value>& args = {},
                    const WorkerOptions& options = {});

  // ---- Control (any thread) ----

  // Asks what the runtime's own state runs now (run_*, call) to stop: a
  // blocking call ends with a KeyboardInterrupt error, and so does running
  // Lua code if Options::interruptible. Does nothing while the state is
  // idle. Workers have their own Worker::interrupt().
  void interrupt() noexcept;
  // Bytes counted against Options::memory_limit now (0 without a limit).
  std::size_t memory_used() const noexcept;

  // Interrupts and waits for this runtime's workers still running, then
  // runs shutdown hooks (joins the non-daemon threads its scripts started,
  // not another runtime's) and closes the state.
  // Called by the destructor if not before; calling it twice is harmless.
  void close() noexcept;

 private:
  Worker start_worker(int how, std::string_view what, const std::string& chunkname,
                      const std::vector<Value>& args, const WorkerOptions& options);

  lua_State* L_ = nullptr;
  std::unique_ptr<detail::RuntimeParts> parts_;
};

}  // namespace plua
