// A connected AF_UNIX stream pair for the wire fuzz targets: the harness
// writes the peer's bytes into one end, ends it with shutdown(SHUT_WR), and
// the code under test reads the other end through a FrameConnection.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

namespace plua_fuzz {

class SocketPair {
 public:
  SocketPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_) != 0) std::abort();
    // Room for the largest input plus what the code under test sends back unread.
    int size = 1 << 20;
    ::setsockopt(fds_[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    ::setsockopt(fds_[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  ~SocketPair() {
    if (fds_[0] >= 0) ::close(fds_[0]);
    if (fds_[1] >= 0) ::close(fds_[1]);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;

  // Writes the peer's whole stream, then ends it (the reader sees EOF after it).
  // Returns false when the stream does not fit in the socket buffer.
  bool feed(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t w = ::send(fds_[0], bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(w));
    }
    ::shutdown(fds_[0], SHUT_WR);
    return true;
  }
  // The end the code under test reads (ownership passes to the caller).
  int take_reader() {
    int fd = fds_[1];
    fds_[1] = -1;
    return fd;
  }

 private:
  int fds_[2] = {-1, -1};
};

}  // namespace plua_fuzz
