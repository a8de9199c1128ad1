#include "plua/core/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <system_error>
#include <thread>

namespace plua::core {
namespace {

constexpr std::size_t kFrameHeader = sizeof(std::uint64_t);

// Waits until fd is ready for `events` or a slice passes; true if ready.
bool poll_slice(int fd, short events, const Deadline& deadline) {
  auto slice = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.next_slice());
  pollfd p{fd, events, 0};
  int ms = static_cast<int>(slice.count());
  if (ms == 0 && deadline.next_slice().count() > 0) ms = 1;
  int rc = ::poll(&p, 1, ms);
  return rc > 0;
}

// Locks mu interruptibly; false if the deadline passes. Contention (two
// threads using one end at once) is rare, so a polling backoff is enough.
bool lock_interruptibly(std::mutex& mu, const Deadline& deadline) {
  StopFlag& stop = this_thread_stop_flag();
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    if (mu.try_lock()) return true;
    stop.throw_if_requested();
    if (deadline.expired()) return false;
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(pause, deadline.next_slice()));
    pause = std::min(pause * 2, std::chrono::microseconds(5000));
  }
}

}  // namespace

std::pair<std::shared_ptr<Connection>, std::shared_ptr<Connection>> Connection::pipe(bool duplex) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0)
    throw std::system_error(errno, std::generic_category(), "socketpair");
  OwnedFd a(fds[0]), b(fds[1]);
  if (!duplex) {
    ::shutdown(a.get(), SHUT_WR);
    ::shutdown(b.get(), SHUT_RD);
  }
  return {std::make_shared<Connection>(std::move(a), true, duplex),
          std::make_shared<Connection>(std::move(b), duplex, true)};
}

Connection::Connection(OwnedFd fd, bool readable, bool writable)
    : readable_(readable), writable_(writable), fd_(std::move(fd)) {
  int flags = ::fcntl(fd_.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
}

int Connection::fd() const noexcept {
  std::lock_guard lock(fd_mu_);
  return fd_.get();
}

bool Connection::closed() const noexcept { return fd() < 0; }

void Connection::close() noexcept {
  std::lock_guard lock(fd_mu_);
  fd_.reset();
}

void Connection::check_open(const char* op) const {
  if (closed()) throw ConnectionError(std::string("connection is closed"));
  if (std::strcmp(op, "send") == 0 && !writable_) throw ConnectionError("connection is read-only");
  if (std::strcmp(op, "recv") == 0 && !readable_) throw ConnectionError("connection is write-only");
}

void Connection::send_bytes(std::string_view message, const Deadline& deadline) {
  check_open("send");
  if (!lock_interruptibly(write_mu_, deadline)) throw std::runtime_error("timed out");
  std::lock_guard<std::mutex> held(write_mu_, std::adopt_lock);
  std::uint64_t n = message.size();
  char header[kFrameHeader];
  std::memcpy(header, &n, sizeof n);
  StopFlag& stop = this_thread_stop_flag();
  std::string_view parts[2] = {std::string_view(header, kFrameHeader), message};
  for (std::string_view part : parts) {
    while (!part.empty()) {
      int fd = this->fd();
      if (fd < 0) throw ConnectionError("connection is closed");
      ssize_t sent = ::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
      if (sent > 0) {
        part.remove_prefix(static_cast<std::size_t>(sent));
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && errno == EPIPE) throw BrokenPipe();
      if (sent < 0 && errno != EAGAIN) throw std::system_error(errno, std::generic_category(), "send");
      // A frame, once begun, is finished whatever the deadline: the stream must stay framed.
      stop.throw_if_requested();
      poll_slice(fd, POLLOUT, Deadline::after(0.02));
    }
  }
}

bool Connection::fill(const Deadline& deadline, bool* timed_out) {
  StopFlag& stop = this_thread_stop_flag();
  char buf[65536];
  for (;;) {
    int fd = this->fd();
    if (fd < 0) throw ConnectionError("connection is closed");
    ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    if (got > 0) {
      rbuf_.append(buf, static_cast<std::size_t>(got));
      return true;
    }
    if (got == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) throw std::system_error(errno, std::generic_category(), "recv");
    stop.throw_if_requested();
    if (deadline.expired()) {
      if (timed_out) *timed_out = true;
      return false;
    }
    poll_slice(fd, POLLIN, deadline);
  }
}

std::optional<std::string> Connection::take_frame() {
  if (rbuf_.size() < kFrameHeader) return std::nullopt;
  std::uint64_t n;
  std::memcpy(&n, rbuf_.data(), sizeof n);
  if (rbuf_.size() - kFrameHeader < n) return std::nullopt;
  std::string frame = rbuf_.substr(kFrameHeader, n);
  rbuf_.erase(0, kFrameHeader + n);
  return frame;
}

std::optional<std::string> Connection::recv_bytes(const Deadline& deadline, bool* timed_out) {
  check_open("recv");
  if (timed_out) *timed_out = false;
  if (!lock_interruptibly(read_mu_, deadline)) {
    if (timed_out) *timed_out = true;
    return std::nullopt;
  }
  std::lock_guard<std::mutex> held(read_mu_, std::adopt_lock);
  for (;;) {
    if (auto frame = take_frame()) return frame;
    if (eof_) {
      if (!rbuf_.empty()) throw std::runtime_error("connection closed in the middle of a message");
      return std::nullopt;
    }
    bool expired = false;
    if (!fill(deadline, &expired) && expired) {
      if (timed_out) *timed_out = true;
      return std::nullopt;
    }
  }
}

bool Connection::has_buffered() const {
  auto* self = const_cast<Connection*>(this);
  if (!self->read_mu_.try_lock()) return false;
  bool any = !rbuf_.empty() || eof_;
  self->read_mu_.unlock();
  return any;
}

bool Connection::poll(const Deadline& deadline) {
  check_open("recv");
  StopFlag& stop = this_thread_stop_flag();
  for (;;) {
    if (has_buffered()) return true;
    int fd = this->fd();
    if (fd < 0) throw ConnectionError("connection is closed");
    if (poll_slice(fd, POLLIN, deadline)) return true;
    stop.throw_if_requested();
    if (deadline.expired()) return false;
  }
}

}  // namespace plua::core
