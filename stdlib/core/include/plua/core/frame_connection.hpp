// A connected stream socket speaking multiprocessing.connection's framing: each
// message is a 4-byte big-endian signed length, or -1 followed by an 8-byte
// length for messages of 2 GiB and more, then the bytes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "plua/core/cancel.hpp"
#include "plua/core/spin_wait.hpp"

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

// A frame over the size limit: one received (the connection is then out of
// step), or one a caller checked before sending (nothing was sent).
class FrameTooLarge : public ProtocolError {
 public:
  using ProtocolError::ProtocolError;
};

// A socket operation or connect did not finish before its deadline.
class WireTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Owns one socket descriptor. Every wait returns to check the calling thread's
// stop flag at least every core::kWaitSlice, so the flag ends it with
// core::Interrupted. Not shared between threads: one thread sends and
// receives at a time.
class FrameConnection {
 public:
  // Frames larger than this are refused unless a caller asks for another limit.
  static constexpr std::size_t kDefaultMaxFrame = 64u << 20;

  FrameConnection() = default;
  // Takes ownership of a connected socket fd (made close-on-exec and blocking
  // with a one-slice receive timeout; sends never block the kernel call).
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
  // limit); a larger announced length throws FrameTooLarge without reading it.
  std::string recv_bytes(const Deadline& deadline = Deadline::never(), std::size_t max_size = 0);
  // True when a frame (or EOF) can be read without waiting past the deadline.
  bool poll(const Deadline& deadline);

  bool is_open() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  // The largest frame recv_bytes accepts by default.
  std::size_t max_frame() const noexcept { return max_frame_; }
  void close() noexcept;

 private:
  void read_exact(char* out, std::size_t n, const Deadline& deadline);
  // Receives at least one byte into buf (at most cap); throws ConnectionClosed
  // on EOF, WireTimeout at the deadline.
  std::size_t receive_some(char* buf, std::size_t cap, const Deadline& deadline);
  // Waits until fd_ is readable (POLLIN) or writable (POLLOUT); false on deadline.
  bool wait_ready(short events, const Deadline& deadline);

  int fd_ = -1;
  std::size_t max_frame_ = kDefaultMaxFrame;
  static constexpr std::size_t kInboxSize = 64 * 1024;
  // Bytes read ahead of the current frame (recv reads what is there in one
  // call): [inbox_at_, inbox_end_) of a buffer allocated once, never zero-filled.
  std::unique_ptr<char[]> inbox_;
  std::size_t inbox_at_ = 0;
  std::size_t inbox_end_ = 0;
  // How long a receive polls before sleeping, and which receives skip that
  // after polls came up empty.
  static constexpr std::chrono::microseconds kSpin{50};
  SpinBackoff spin_;
};

}  // namespace plua::core
