#include "plua/core/communicator.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <system_error>

#include "plua/core/sigpipe_guard.hpp"

namespace plua::core {
namespace {

// Large chunks: fewer syscalls move 50 MB faster.
constexpr std::size_t kChunk = 256 * 1024;
// A pipe of this size (Linux's default limit for unprivileged users) takes a
// whole chunk, so the child and plua switch less often than with 64 KiB.
constexpr int kPipeSize = 1024 * 1024;

// Sets O_NONBLOCK on a descriptor for the guard's lifetime (the pipe's other
// users, such as a Lua file over it, get their blocking descriptor back).
class NonBlocking {
 public:
  explicit NonBlocking(int fd) : fd_(fd) {
    if (fd_ < 0) return;
    flags_ = ::fcntl(fd_, F_GETFL);
    if (flags_ >= 0 && !(flags_ & O_NONBLOCK)) ::fcntl(fd_, F_SETFL, flags_ | O_NONBLOCK);
  }
  ~NonBlocking() {
    if (fd_ >= 0 && flags_ >= 0 && !(flags_ & O_NONBLOCK)) ::fcntl(fd_, F_SETFL, flags_);
  }
  // The descriptor is being closed: nothing to restore.
  void forget() noexcept { fd_ = -1; }
  NonBlocking(const NonBlocking&) = delete;
  NonBlocking& operator=(const NonBlocking&) = delete;

 private:
  int fd_;
  int flags_ = -1;
};

// Appends up to kChunk bytes read from fd; returns false at EOF. Reads
// into a scratch buffer, so the output string grows by what came, not by kChunk.
bool read_some(int fd, std::string& into, char* scratch, const char* what) {
  ssize_t n;
  do n = ::read(fd, scratch, kChunk);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    throw std::system_error(errno, std::generic_category(), what);
  }
  into.append(scratch, static_cast<std::size_t>(n));
  return n > 0;
}

}  // namespace

Communicator::Communicator(std::string input) : input_(std::move(input)) {}

void Communicator::finish(Stream s, const Finished& finished) {
  if (done_[s]) return;
  done_[s] = true;
  if (finished) finished(s);
}

bool Communicator::run(int stdin_fd, int stdout_fd, int stderr_fd, const Deadline& deadline,
                       const Finished& finished) {
  SigpipeGuard no_sigpipe;
  const int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
  for (int s = 0; s < 3; ++s)
    if (fds[s] < 0) done_[s] = true;
  for (int s = 0; s < 3; ++s)
    if (!done_[s]) ::fcntl(fds[s], F_SETPIPE_SZ, kPipeSize);  // best effort: a file or a socket says no
  NonBlocking nonblocking[3] = {NonBlocking(done_[0] ? -1 : fds[0]), NonBlocking(done_[1] ? -1 : fds[1]),
                                NonBlocking(done_[2] ? -1 : fds[2])};
  auto close_stream = [&](Stream s) {
    nonblocking[s].forget();
    finish(s, finished);
  };
  if (!done_[kStdin] && written_ >= input_.size()) close_stream(kStdin);

  StopFlag& stop = this_thread_stop_flag();
  std::unique_ptr<char[]> scratch;
  for (;;) {
    struct pollfd set[3];
    Stream which[3];
    nfds_t n = 0;
    for (int s = 0; s < 3; ++s) {
      if (done_[s]) continue;
      set[n] = {fds[s], static_cast<short>(s == kStdin ? POLLOUT : POLLIN), 0};
      which[n++] = static_cast<Stream>(s);
    }
    if (n == 0) return true;
    stop.throw_if_requested();
    if (deadline.expired()) return false;
    int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(deadline.next_slice()).count());
    int ready = ::poll(set, n, ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (set[i].revents == 0) continue;
      Stream s = which[i];
      if (s == kStdin) {
        if (set[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
          close_stream(kStdin);  // the child closed its stdin: the rest is dropped, as Python does
          continue;
        }
        std::size_t len = std::min(kChunk, input_.size() - written_);
        ssize_t w;
        do w = ::write(fds[kStdin], input_.data() + written_, len);
        while (w < 0 && errno == EINTR);
        if (w < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
          if (errno != EPIPE) throw std::system_error(errno, std::generic_category(), "write to stdin");
          close_stream(kStdin);
          continue;
        }
        written_ += static_cast<std::size_t>(w);
        if (written_ >= input_.size()) close_stream(kStdin);
      } else if (set[i].revents & POLLNVAL) {
        throw std::system_error(EBADF, std::generic_category(), s == kStdout ? "read stdout" : "read stderr");
      } else {
        std::string& into = s == kStdout ? output_ : errors_;
        if (!scratch) scratch = std::make_unique<char[]>(kChunk);
        if (!read_some(fds[s], into, scratch.get(), s == kStdout ? "read stdout" : "read stderr")) close_stream(s);
      }
    }
  }
}

}  // namespace plua::core
