#include "plua/core/pipe_writer.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "plua/core/sigpipe_guard.hpp"

namespace plua::core {
namespace {

// The cookie is the descriptor itself: nothing to allocate or free.
int fd_of(void* cookie) noexcept { return static_cast<int>(reinterpret_cast<std::intptr_t>(cookie)); }

ssize_t pipe_write(void* cookie, const char* buf, std::size_t size) {
  int saved = 0;
  std::size_t done = 0;
  {
    SigpipeGuard no_sigpipe;
    while (done < size) {
      ssize_t n = ::write(fd_of(cookie), buf + done, size - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        saved = errno;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
  }
  // A short count (never a negative one: fopencookie's contract) sets
  // stdio's error flag; errno says why (EPIPE).
  if (saved != 0) errno = saved;
  return static_cast<ssize_t>(done);
}

// Reads and seeks behave as on the plain descriptor (EBADF, ESPIPE).
ssize_t pipe_read(void* cookie, char* buf, std::size_t size) { return ::read(fd_of(cookie), buf, size); }

int pipe_seek(void* cookie, off64_t* offset, int whence) {
  off64_t at = ::lseek64(fd_of(cookie), *offset, whence);
  if (at < 0) return -1;
  *offset = at;
  return 0;
}

int pipe_close(void* cookie) { return ::close(fd_of(cookie)); }

}  // namespace

std::FILE* open_pipe_writer(int fd) noexcept {
  cookie_io_functions_t io{pipe_read, pipe_write, pipe_seek, pipe_close};
  return ::fopencookie(reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)), "w", io);
}

}  // namespace plua::core
