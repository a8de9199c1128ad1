// Embedding plua: a Lua 5.4 state with the standard library and the plua
// modules, owned by a C++ object, and errors that come back as C++ values.
//
// Thread-safety: a Runtime belongs to one thread at a time; it may be moved to
// another thread between calls but never used from two at once.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

struct lua_State;

namespace plua {

// A Lua error seen from C++: the error's message and the traceback of where it
// was raised (empty if there was none).
class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string traceback);
  const std::string& message() const noexcept { return message_; }
  const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string message_;
  std::string traceback_;
};

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
// runs the modules' shutdown work (the thread module joins non-daemon threads).
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

  // Runs shutdown hooks (joins non-daemon threads) and closes the state.
  // Called by the destructor if not before; calling it twice is harmless.
  void close() noexcept;

 private:
  lua_State* L_ = nullptr;
};

}  // namespace plua
