// Python's subprocess.run in the core: start a program, feed it its input,
// collect what it writes to the pipes, and wait for it; on a timeout the child
// is killed and reaped before the error is thrown.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include "plua/core/cancel.hpp"
#include "plua/core/subprocess.hpp"

namespace plua::core {

struct RunResult {
  int returncode = 0;
  std::string output;  // what the child wrote to a stdout Pipe
  std::string errors;  // what the child wrote to a stderr Pipe
};

// The deadline passed; carries what the child had written until then.
class SubprocessTimeout : public std::runtime_error {
 public:
  SubprocessTimeout(std::string output, std::string errors)
      : std::runtime_error("timed out"), output(std::move(output)), errors(std::move(errors)) {}
  std::string output;
  std::string errors;
};

// Runs options (whose stdin should be a Pipe when input is given) to the end.
// Throws SpawnError, SubprocessTimeout, Interrupted (the child is killed then
// too, as Python's run does on any exception) or std::system_error.
RunResult run_subprocess(const SpawnOptions& options, const std::optional<std::string>& input,
                         const Deadline& deadline);

}  // namespace plua::core
