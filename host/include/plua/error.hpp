// The error type of plua's embedding API.
//
// Thread-safety: an Error is a plain value (copy it freely between threads).
#pragma once

#include <stdexcept>
#include <string>

namespace plua {

// A Lua error seen from C++: the error's message, the traceback of where it
// was raised (empty if there was none), and for an error object (api.md
// rule 7) its kind ("Empty", "KeyboardInterrupt", ...; empty otherwise).
class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string traceback, std::string kind = {});
  const std::string& message() const noexcept { return message_; }
  const std::string& traceback() const noexcept { return traceback_; }
  const std::string& kind() const noexcept { return kind_; }

 private:
  std::string message_;
  std::string traceback_;
  std::string kind_;
};

}  // namespace plua
