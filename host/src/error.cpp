#include "plua/error.hpp"

#include <utility>

namespace plua {

Error::Error(std::string message, std::string traceback, std::string kind)
    : std::runtime_error(traceback.empty() ? message : message + "\n" + traceback),
      message_(std::move(message)),
      traceback_(std::move(traceback)),
      kind_(std::move(kind)) {}

}  // namespace plua
