// Running external programs (the core of the `subprocess` module): a spawner
// that reports a failed exec or chdir as an error in the parent (never as exit
// code 127 from a half-started child), and a handle that owns the child's pid
// and the parent's ends of its pipes.
//
// Thread-safety: spawn() may be called from any number of threads at once.
// One Subprocess object is used by one thread at a time.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "plua/core/cancel.hpp"
#include "plua/core/owned_fd.hpp"

namespace plua::core {

// Where one of the child's standard streams goes.
struct StdioSpec {
  enum class Kind {
    Inherit,  // the parent's own descriptor
    Pipe,     // a new pipe; the parent keeps the other end
    DevNull,  // /dev/null
    Fd,       // an open descriptor of the caller (borrowed, not closed)
    Stdout,   // stderr only: wherever the child's stdout goes
  };
  Kind kind = Kind::Inherit;
  int fd = -1;  // for Kind::Fd

  static StdioSpec inherit() { return {}; }
  static StdioSpec pipe() { return {Kind::Pipe, -1}; }
  static StdioSpec devnull() { return {Kind::DevNull, -1}; }
  static StdioSpec stdout_() { return {Kind::Stdout, -1}; }
  static StdioSpec descriptor(int fd) { return {Kind::Fd, fd}; }
};

struct SpawnOptions {
  // The program and its arguments; argv[0] is looked up in PATH unless it has a '/'.
  std::vector<std::string> argv;
  // Directory the child starts in (nullopt: the parent's).
  std::optional<std::string> cwd;
  // The child's whole environment as "NAME=value" (nullopt: the parent's). Its
  // PATH (if any) is also where argv[0] is looked up, as Python does.
  std::optional<std::vector<std::string>> env;
  StdioSpec stdin_, stdout_, stderr_;
};

// Starting the child failed: the program is missing or not executable, the
// directory does not exist, or the system is out of resources. what() reads
// like Python's OSError: "[Errno 2] No such file or directory: 'nosuchprog'".
class SpawnError : public std::system_error {
 public:
  SpawnError(int err, std::string filename);
  int error_number() const noexcept { return code().value(); }
  // The program or directory concerned (empty if none).
  const std::string& filename() const noexcept { return filename_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string filename_;
  std::string message_;
};

class Subprocess {
 public:
  // Starts a child; throws SpawnError (errno and the program or directory
  // that failed) or std::system_error.
  static Subprocess spawn(const SpawnOptions& options);

  Subprocess(Subprocess&&) noexcept;
  Subprocess& operator=(Subprocess&&) = delete;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // A child still running is handed to the reaper, which waits for it in the
  // background: never a zombie, never killed behind the caller's back.
  ~Subprocess();

  pid_t pid() const noexcept { return pid_; }
  // Python's returncode: the exit status, or -N when signal N ended the child;
  // nullopt until poll()/wait() have seen it end.
  std::optional<int> returncode() const noexcept { return returncode_; }
  // Reaps the child if it has ended; returns returncode().
  std::optional<int> poll();
  // Waits for the child until the deadline; returns returncode() (nullopt if
  // the deadline passed first). Throws Interrupted when asked to stop.
  std::optional<int> wait(const Deadline& deadline);
  // Sends a signal unless the child was already reaped. Throws std::system_error.
  void send_signal(int sig);

  // The parent's ends of the pipes (invalid unless that stream was Pipe).
  OwnedFd& stdin_pipe() noexcept { return stdin_; }
  OwnedFd& stdout_pipe() noexcept { return stdout_; }
  OwnedFd& stderr_pipe() noexcept { return stderr_; }

  // Python's returncode for a waitpid status.
  static int returncode_from_status(int status) noexcept;

 private:
  Subprocess(pid_t pid, OwnedFd pidfd) noexcept;

  pid_t pid_ = -1;
  OwnedFd pidfd_;  // polls readable when the child ends; invalid where pidfds are missing
  std::optional<int> returncode_;
  OwnedFd stdin_, stdout_, stderr_;
};

}  // namespace plua::core
