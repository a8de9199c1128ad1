// One end of a Pipe: framed byte messages over a Unix socket pair, usable
// between threads (each direction is serialised by its own mutex) and between
// processes (fork children inherit the descriptor; spawned children are
// handed it at start). Frames are an 8-byte length in host order and the bytes.
//
// Descriptors are close-on-exec and non-blocking; every wait polls in slices
// of kWaitSlice, so Ctrl-C and interrupts end it (Interrupted). Sends use
// MSG_NOSIGNAL: a vanished peer is an error (BrokenPipe), never SIGPIPE.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "plua/core/cancel.hpp"
#include "plua/core/owned_fd.hpp"

namespace plua::core {

// The operation is not allowed on this end (closed, read-only, write-only).
class ConnectionError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The peer has gone (send to a closed pipe).
class BrokenPipe : public std::runtime_error {
 public:
  BrokenPipe() : std::runtime_error("the other end of the pipe is closed") {}
};

class Connection {
 public:
  // Two connected ends; duplex: both read and write; else first reads, second writes.
  static std::pair<std::shared_ptr<Connection>, std::shared_ptr<Connection>> pipe(bool duplex);
  // Adopts a connected stream socket (e.g. one handed to a spawned child).
  Connection(OwnedFd fd, bool readable, bool writable);

  // Sends one message (all of it, waiting while the socket is full).
  void send_bytes(std::string_view message, const Deadline& deadline = Deadline::never());
  // Receives one message; nullopt at end of file (the peer closed, nothing left).
  // Returns nullopt with *timed_out set when the deadline passes first.
  std::optional<std::string> recv_bytes(const Deadline& deadline = Deadline::never(),
                                        bool* timed_out = nullptr);
  // True when recv would not block (data or end of file), waiting up to the deadline.
  bool poll(const Deadline& deadline);
  // True when buffered data is already here (no system call).
  bool has_buffered() const;

  void close() noexcept;
  bool closed() const noexcept;
  bool readable() const noexcept { return readable_; }
  bool writable() const noexcept { return writable_; }
  // The descriptor (-1 once closed).
  int fd() const noexcept;

 private:
  bool fill(const Deadline& deadline, bool* timed_out);  // false at end of file
  std::optional<std::string> take_frame();
  void check_open(const char* op) const;

  const bool readable_;
  const bool writable_;
  mutable std::mutex fd_mu_;           // guards fd_ against close
  OwnedFd fd_;
  std::mutex read_mu_;                 // one reader at a time
  std::mutex write_mu_;                // one writer at a time
  std::string rbuf_;                   // received, not yet taken; guarded by read_mu_
  bool eof_ = false;                   // guarded by read_mu_
};

}  // namespace plua::core
