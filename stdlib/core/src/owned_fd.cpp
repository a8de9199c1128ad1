#include "plua/core/owned_fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace plua::core {

void OwnedFd::reset(int fd) noexcept {
  // close() may report EINTR, but the descriptor is gone anyway on Linux: never retry.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::pair<OwnedFd, OwnedFd> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  return {OwnedFd(fds[0]), OwnedFd(fds[1])};
}

OwnedFd duplicate_fd(int fd, int lowest) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, lowest);
  if (copy < 0) throw std::system_error(errno, std::generic_category(), "dup");
  return OwnedFd(copy);
}

OwnedFd open_devnull() {
  int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open /dev/null");
  return OwnedFd(fd);
}

}  // namespace plua::core
