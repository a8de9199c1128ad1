// A connected stream socket speaking multiprocessing.connection's framing: each
// message is a 4-byte big-endian signed length, or -1 followed by an 8-byte
// length for messages of 2 GiB and more, then the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "plua/core/cancel.hpp"

namespace plua::core {

// The peer closed the connection (Python's EOFError).
class ConnectionClosed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The peer broke the protocol: a frame too large, a bad length, a bad handshake.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A socket operation or connect did not finish before its deadline.
class WireTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Owns one socket descriptor. Every wait polls in core::kWaitSlice slices, so
// the calling thread's stop flag ends it with core::Interrupted. Not shared
// between threads: one thread sends and receives at a time.
class FrameConnection {
 public:
  // Frames larger than this are refused unless a caller asks for another limit.
  static constexpr std::size_t kDefaultMaxFrame = 64u << 20;

  FrameConnection() = default;
  // Takes ownership of fd (made non-blocking and close-on-exec).
  explicit FrameConnection(int fd, std::size_t max_frame = kDefaultMaxFrame);
  ~FrameConnection();
  FrameConnection(FrameConnection&& other) noexcept;
  FrameConnection& operator=(FrameConnection&& other) noexcept;
  FrameConnection(const FrameConnection&) = delete;
  FrameConnection& operator=(const FrameConnection&) = delete;

  // Connects over TCP to host:port (a name or numeric address).
  static FrameConnection connect_tcp(const std::string& host, std::uint16_t port,
                                     const Deadline& deadline,
                                     std::size_t max_frame = kDefaultMaxFrame);

  // Sends one frame. Throws ConnectionClosed, WireTimeout, Interrupted, or
  // std::system_error.
  void send_bytes(std::string_view message, const Deadline& deadline = Deadline::never());
  // Receives one frame of at most `max_size` bytes (0: this connection's
  // limit); a larger announced length throws ProtocolError without reading it.
  std::string recv_bytes(const Deadline& deadline = Deadline::never(), std::size_t max_size = 0);
  // True when a frame (or EOF) can be read without waiting past the deadline.
  bool poll(const Deadline& deadline);

  bool is_open() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  void close() noexcept;

 private:
  void read_exact(char* out, std::size_t n, const Deadline& deadline);
  // Waits until fd_ is readable (POLLIN) or writable (POLLOUT); false on deadline.
  bool wait_ready(short events, const Deadline& deadline);

  int fd_ = -1;
  std::size_t max_frame_ = kDefaultMaxFrame;
  // Bytes read ahead of the current frame (recv reads what is there in one call).
  std::string inbox_;
  std::size_t inbox_at_ = 0;
};

}  // namespace plua::core
