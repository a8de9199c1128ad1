// Python's Popen.communicate as a state machine: feeds the input to the
// child's stdin while reading its stdout and stderr, all three together with
// poll(), so a child that writes a lot to both while reading a lot never
// deadlocks. The state survives a timeout, so a later run() resumes where the
// first stopped (Python lets communicate be called again after a timeout).
//
// Thread-safety: one thread at a time.
#pragma once

#include <functional>
#include <string>

#include "plua/core/cancel.hpp"

namespace plua::core {

class Communicator {
 public:
  // The child's three streams as the parent sees them.
  enum Stream { kStdin = 0, kStdout = 1, kStderr = 2 };
  // Called once per stream when it is finished (all input written or the
  // reader gone; EOF read): the owner closes that descriptor then, and must,
  // for stdin, so that the child sees EOF.
  using Finished = std::function<void(Stream)>;

  explicit Communicator(std::string input = {});

  // Moves data until every stream given (fd >= 0) is finished (returns true)
  // or the deadline passes (false). A stream given as -1 is treated as
  // finished. Throws Interrupted when asked to stop, std::system_error on an
  // I/O error. Descriptors are only read or written while this runs.
  bool run(int stdin_fd, int stdout_fd, int stderr_fd, const Deadline& deadline, const Finished& finished);

  bool finished(Stream s) const noexcept { return done_[s]; }
  // What has been read so far.
  std::string& output() noexcept { return output_; }
  std::string& errors() noexcept { return errors_; }
  std::size_t input_written() const noexcept { return written_; }

 private:
  void finish(Stream s, const Finished& finished);

  std::string input_;
  std::size_t written_ = 0;
  std::string output_, errors_;
  bool done_[3] = {false, false, false};
};

}  // namespace plua::core
