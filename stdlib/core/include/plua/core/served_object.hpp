// What a ManagerServer serves: an object whose methods run on the server's
// threads when a proxy calls them, with Python-style arguments.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "plua/core/pickle.hpp"

namespace plua::core {

// Thrown by a served method to send ('#ERROR', exception) back, e.g. _queue.Empty.
class RaisedException : public std::runtime_error {
 public:
  explicit RaisedException(pickle::Exception e)
      : std::runtime_error(e.name + (e.args.empty() ? "" : ": " + pickle::exception_message(e))),
        exception_(std::move(e)) {}
  const pickle::Exception& exception() const noexcept { return exception_; }

 private:
  pickle::Exception exception_;
};

// Thread-safety: call() runs concurrently from many server threads.
class ServedObject {
 public:
  virtual ~ServedObject() = default;
  // The method names a proxy may call (Python's `exposed`).
  virtual std::vector<std::string> exposed() const = 0;
  // Runs a method with Python-style positional and keyword arguments and returns
  // its result. Throws RaisedException for Python-level errors (sent as #ERROR),
  // core::Interrupted when the serving thread is asked to stop, and anything
  // else derived from std::exception for a #TRACEBACK reply.
  virtual pickle::Object call(std::string_view method, const std::vector<pickle::Object>& args,
                              const pickle::Dict& kwds) = 0;
  // What Python's repr() of the referent would say.
  virtual std::string describe() const = 0;
};

}  // namespace plua::core
