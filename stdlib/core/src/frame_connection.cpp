#include "plua/core/frame_connection.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
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

// Blocking mode with a receive timeout of one wait slice: a read waits in the
// kernel (one recv per frame, no poll first) yet still returns every
// kWaitSlice so the caller re-checks its stop flag. Sends pass MSG_DONTWAIT.
void configure(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) throw_errno("fcntl");
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) throw_errno("fcntl");
  auto slice = std::chrono::duration_cast<std::chrono::microseconds>(kWaitSlice);
  timeval tv{static_cast<time_t>(slice.count() / 1000000),
             static_cast<suseconds_t>(slice.count() % 1000000)};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) throw_errno("setsockopt");
  // Small request/reply frames must not wait for Nagle's algorithm.
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

// Waits until fd is ready for `events`; false on deadline.
bool wait_fd(int fd, short events, const Deadline& deadline) {
  StopFlag& stop = this_thread_stop_flag();
  for (;;) {
    stop.throw_if_requested();
    pollfd p{fd, events, 0};
    int rc = poll_slice(&p, deadline);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) throw_errno("poll");
    if (deadline.expired()) return false;
  }
}

// Closes a descriptor not yet handed to a FrameConnection.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

}  // namespace

FrameConnection::FrameConnection(int fd, std::size_t max_frame) : fd_(fd), max_frame_(max_frame) {
  try {
    configure(fd_);
  } catch (...) {
    close();
    throw;
  }
}

FrameConnection::~FrameConnection() { close(); }

FrameConnection::FrameConnection(FrameConnection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      max_frame_(other.max_frame_),
      inbox_(std::move(other.inbox_)),
      inbox_at_(std::exchange(other.inbox_at_, 0)),
      inbox_end_(std::exchange(other.inbox_end_, 0)) {}

FrameConnection& FrameConnection::operator=(FrameConnection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    max_frame_ = other.max_frame_;
    inbox_ = std::move(other.inbox_);
    inbox_at_ = std::exchange(other.inbox_at_, 0);
    inbox_end_ = std::exchange(other.inbox_end_, 0);
  }
  return *this;
}

void FrameConnection::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  inbox_.reset();
  inbox_at_ = inbox_end_ = 0;
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
    // Connect non-blocking (bounded by the deadline), then hand the socket over.
    FdGuard fd{::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol)};
    if (fd.fd < 0) {
      last_error = errno;
      continue;
    }
    if (::connect(fd.fd, ai->ai_addr, ai->ai_addrlen) == 0) return FrameConnection(fd.release(), max_frame);
    if (errno != EINPROGRESS) {
      last_error = errno;
      continue;
    }
    if (!wait_fd(fd.fd, POLLOUT, deadline)) throw WireTimeout("connect timed out");
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) return FrameConnection(fd.release(), max_frame);
    last_error = err;
  }
  throw std::system_error(last_error, std::generic_category(),
                          "cannot connect to " + host + ":" + service);
}

bool FrameConnection::wait_ready(short events, const Deadline& deadline) {
  return wait_fd(fd_, events, deadline);
}

void FrameConnection::send_bytes(std::string_view message, const Deadline& deadline) {
  if (fd_ < 0) throw ConnectionClosed("connection is closed");
  unsigned char head[12];
  std::size_t head_size;
  std::uint64_t n = message.size();
  if (n > 0x7fffffff) {
    std::memset(head, 0xff, 4);
    for (int i = 0; i < 8; ++i) head[4 + i] = static_cast<unsigned char>((n >> (8 * (7 - i))) & 0xff);
    head_size = 12;
  } else {
    for (int i = 0; i < 4; ++i) head[i] = static_cast<unsigned char>((n >> (8 * (3 - i))) & 0xff);
    head_size = 4;
  }
  // Header and body leave in one sendmsg, so Nagle never splits a small frame
  // and the body is not copied.
  iovec iov[2] = {{head, head_size}, {const_cast<char*>(message.data()), message.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  std::size_t left = head_size + message.size();
  while (left > 0) {
    ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) {
      left -= static_cast<std::size_t>(w);
      // Skip what went out: drop finished iovecs, advance into a partial one.
      auto k = static_cast<std::size_t>(w);
      while (msg.msg_iovlen > 0 && k >= msg.msg_iov[0].iov_len) {
        k -= msg.msg_iov[0].iov_len;
        ++msg.msg_iov;
        --msg.msg_iovlen;
      }
      if (msg.msg_iovlen > 0) {
        msg.msg_iov[0].iov_base = static_cast<char*>(msg.msg_iov[0].iov_base) + k;
        msg.msg_iov[0].iov_len -= k;
      }
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET) throw ConnectionClosed("connection closed by peer");
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw_errno("send");
    if (!wait_ready(POLLOUT, deadline)) throw WireTimeout("send timed out");
  }
}

std::size_t FrameConnection::receive_some(char* buf, std::size_t cap, const Deadline& deadline) {
  StopFlag& stop = this_thread_stop_flag();
  using Clock = std::chrono::steady_clock;
  // A reply (or the next request) usually comes within microseconds: poll for
  // it briefly before sleeping, since waking a sleeping thread costs more than
  // the call itself. Yielding lets a peer that shares this CPU run meanwhile.
  if (spin_.may_spin()) {
    auto give_up = Clock::now() + kSpin;
    for (;;) {
      ssize_t r = ::recv(fd_, buf, cap, MSG_DONTWAIT);
      if (r > 0) {
        spin_.found();
        return static_cast<std::size_t>(r);
      }
      if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) break;
      if (Clock::now() >= give_up) {
        // A slow peer: sleep at once for the next waits, so an idle
        // connection costs a spin only now and then.
        spin_.came_up_empty();
        break;
      }
      sched_yield();
    }
  }
  for (;;) {
    stop.throw_if_requested();
    // A blocking recv wakes as soon as data arrives and gives up after one
    // wait slice (SO_RCVTIMEO); only a deadline nearer than that needs poll.
    bool near = !deadline.is_never() && deadline.remaining() < kWaitSlice;
    ssize_t r = ::recv(fd_, buf, cap, near ? MSG_DONTWAIT : 0);
    if (r > 0) return static_cast<std::size_t>(r);
    if (r == 0) throw ConnectionClosed("connection closed by peer");
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) throw ConnectionClosed("connection reset by peer");
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw_errno("recv");
    if (near ? !wait_ready(POLLIN, deadline) : deadline.expired()) throw WireTimeout("receive timed out");
  }
}

void FrameConnection::read_exact(char* out, std::size_t n, const Deadline& deadline) {
  while (n > 0) {
    if (inbox_end_ > inbox_at_) {
      std::size_t k = std::min(inbox_end_ - inbox_at_, n);
      std::memcpy(out, inbox_.get() + inbox_at_, k);
      inbox_at_ += k;
      out += k;
      n -= k;
      continue;
    }
    inbox_at_ = inbox_end_ = 0;
    // Large bodies go straight to their destination; small reads fill the inbox.
    if (n >= kInboxSize) {
      std::size_t r = receive_some(out, n, deadline);
      out += r;
      n -= r;
      continue;
    }
    if (!inbox_) inbox_ = std::make_unique_for_overwrite<char[]>(kInboxSize);
    inbox_end_ = receive_some(inbox_.get(), kInboxSize, deadline);
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
    throw FrameTooLarge("frame of " + std::to_string(size) + " bytes exceeds the limit of " +
                        std::to_string(max_size));
  // Grown as the bytes arrive (1 MiB, then doubling), not sized by the
  // announced length: a peer that announces a large frame and sends little
  // costs about what it sent.
  constexpr std::size_t kFirstStep = std::size_t{1} << 20;
  std::string body;
  while (body.size() < size) {
    std::size_t at = body.size();
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size - at, std::max(kFirstStep, at)));
    body.resize(at + n);
    read_exact(body.data() + at, n, deadline);
  }
  return body;
}

bool FrameConnection::poll(const Deadline& deadline) {
  if (fd_ < 0) throw ConnectionClosed("connection is closed");
  if (inbox_end_ > inbox_at_) return true;
  return wait_ready(POLLIN, deadline);
}

}  // namespace plua::core
