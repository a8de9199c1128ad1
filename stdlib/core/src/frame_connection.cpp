#include "plua/core/frame_connection.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>
#include <utility>

namespace plua::core {
namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void set_nonblocking_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw_errno("fcntl");
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) throw_errno("fcntl");
}

// Small request/reply frames must not wait for Nagle's algorithm.
void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int poll_slice(pollfd* p, const Deadline& deadline) {
  auto slice = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.next_slice());
  // Round up so a sub-millisecond remainder still waits instead of spinning.
  int ms = static_cast<int>(slice.count());
  if (ms == 0 && deadline.next_slice().count() > 0) ms = 1;
  return ::poll(p, 1, ms);
}

}  // namespace

FrameConnection::FrameConnection(int fd, std::size_t max_frame) : fd_(fd), max_frame_(max_frame) {
  try {
    set_nonblocking_cloexec(fd_);
  } catch (...) {
    close();
    throw;
  }
  set_nodelay(fd_);
}

FrameConnection::~FrameConnection() { close(); }

FrameConnection::FrameConnection(FrameConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      max_frame_(other.max_frame_),
      inbox_(std::move(other.inbox_)),
      inbox_at_(std::exchange(other.inbox_at_, 0)) {}

FrameConnection& FrameConnection::operator=(FrameConnection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    max_frame_ = other.max_frame_;
    inbox_ = std::move(other.inbox_);
    inbox_at_ = std::exchange(other.inbox_at_, 0);
  }
  return *this;
}

void FrameConnection::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  inbox_.clear();
  inbox_at_ = 0;
}

FrameConnection FrameConnection::connect_tcp(const std::string& host, std::uint16_t port,
                                             const Deadline& deadline, std::size_t max_frame) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  const char* node = host.empty() ? "127.0.0.1" : host.c_str();
  if (int rc = getaddrinfo(node, service.c_str(), &hints, &found); rc != 0)
    throw std::runtime_error("cannot resolve '" + host + "': " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  int last_error = ECONNREFUSED;
  for (addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    FrameConnection conn(fd, max_frame);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return conn;
    if (errno != EINPROGRESS) {
      last_error = errno;
      continue;
    }
    if (!conn.wait_ready(POLLOUT, deadline)) throw WireTimeout("connect timed out");
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) return conn;
    last_error = err;
  }
  throw std::system_error(last_error, std::generic_category(),
                          "cannot connect to " + host + ":" + service);
}

bool FrameConnection::wait_ready(short events, const Deadline& deadline) {
  StopFlag& stop = this_thread_stop_flag();
  for (;;) {
    stop.throw_if_requested();
    pollfd p{fd_, events, 0};
    int rc = poll_slice(&p, deadline);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) throw_errno("poll");
    if (deadline.expired()) return false;
  }
}

void FrameConnection::send_bytes(std::string_view message, const Deadline& deadline) {
  if (fd_ < 0) throw ConnectionClosed("connection is closed");
  std::string buf;
  std::uint64_t n = message.size();
  if (n > 0x7fffffff) {
    buf.reserve(12 + n);
    buf.append("\xff\xff\xff\xff", 4);
    for (int i = 7; i >= 0; --i) buf.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  } else {
    buf.reserve(4 + n);
    for (int i = 3; i >= 0; --i) buf.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  }
  // One write of header and body, so Nagle never splits a small frame.
  buf.append(message);
  std::size_t sent = 0;
  while (sent < buf.size()) {
    ssize_t w = ::send(fd_, buf.data() + sent, buf.size() - sent, MSG_NOSIGNAL);
    if (w >= 0) {
      sent += static_cast<std::size_t>(w);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) throw ConnectionClosed("connection closed by peer");
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw_errno("send");
    if (!wait_ready(POLLOUT, deadline)) throw WireTimeout("send timed out");
  }
}

void FrameConnection::read_exact(char* out, std::size_t n, const Deadline& deadline) {
  while (n > 0) {
    std::size_t have = inbox_.size() - inbox_at_;
    if (have > 0) {
      std::size_t k = have < n ? have : n;
      std::memcpy(out, inbox_.data() + inbox_at_, k);
      inbox_at_ += k;
      out += k;
      n -= k;
      continue;
    }
    inbox_.clear();
    inbox_at_ = 0;
    // Large bodies go straight to their destination; small reads fill the inbox.
    constexpr std::size_t kChunk = 64 * 1024;
    bool direct = n >= kChunk;
    if (!direct) inbox_.resize(kChunk);
    ssize_t r = ::recv(fd_, direct ? out : inbox_.data(), direct ? n : kChunk, 0);
    if (r > 0) {
      if (direct) {
        out += r;
        n -= static_cast<std::size_t>(r);
      } else {
        inbox_.resize(static_cast<std::size_t>(r));
      }
      continue;
    }
    inbox_.clear();
    if (r == 0) throw ConnectionClosed("connection closed by peer");
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) throw ConnectionClosed("connection reset by peer");
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw_errno("recv");
    if (!wait_ready(POLLIN, deadline)) throw WireTimeout("receive timed out");
  }
}

std::string FrameConnection::recv_bytes(const Deadline& deadline, std::size_t max_size) {
  if (fd_ < 0) throw ConnectionClosed("connection is closed");
  if (max_size == 0) max_size = max_frame_;
  unsigned char head[8];
  read_exact(reinterpret_cast<char*>(head), 4, deadline);
  auto size32 = static_cast<std::int32_t>((std::uint32_t{head[0]} << 24) | (std::uint32_t{head[1]} << 16) |
                                          (std::uint32_t{head[2]} << 8) | std::uint32_t{head[3]});
  std::uint64_t size;
  if (size32 == -1) {
    read_exact(reinterpret_cast<char*>(head), 8, deadline);
    size = 0;
    for (int i = 0; i < 8; ++i) size = (size << 8) | head[i];
  } else if (size32 < 0) {
    throw ProtocolError("bad frame length " + std::to_string(size32));
  } else {
    size = static_cast<std::uint64_t>(size32);
  }
  if (size > max_size)
    throw ProtocolError("frame of " + std::to_string(size) + " bytes exceeds the limit of " +
                        std::to_string(max_size));
  std::string body(static_cast<std::size_t>(size), '\0');
  read_exact(body.data(), body.size(), deadline);
  return body;
}

bool FrameConnection::poll(const Deadline& deadline) {
  if (fd_ < 0) throw ConnectionClosed("connection is closed");
  if (inbox_.size() > inbox_at_) return true;
  return wait_ready(POLLIN, deadline);
}

}  // namespace plua::core
