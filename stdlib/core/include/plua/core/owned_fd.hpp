// A file descriptor with one owner: closed when the owner goes away, so no
// error path leaks one (RAII for the pipes and /dev/null of subprocesses).
#pragma once

#include <utility>

namespace plua::core {

class OwnedFd {
 public:
  OwnedFd() noexcept = default;
  explicit OwnedFd(int fd) noexcept : fd_(fd) {}
  ~OwnedFd() { reset(); }
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.release()) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  // Gives up ownership without closing; returns the descriptor.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the held descriptor (if any) and takes `fd` instead.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// A close-on-exec pipe: {read end, write end}. Throws std::system_error.
std::pair<OwnedFd, OwnedFd> make_pipe();

// The same descriptor duplicated (close-on-exec) to a number >= `lowest`,
// leaving `fd` as it is. Throws std::system_error.
OwnedFd duplicate_fd(int fd, int lowest = 3);

// /dev/null opened for reading and writing, close-on-exec. Throws std::system_error.
OwnedFd open_devnull();

}  // namespace plua::core
