#include "plua/core/pool_wire.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "plua/core/cancel.hpp"

namespace plua::core::pool_wire {
namespace {

constexpr std::size_t kHeader = sizeof(std::uint32_t) + 1;

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <class T>
T get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Starts a frame whose body (after the type byte) has `body` bytes.
void begin(std::string& out, FrameType type, std::size_t body) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(body + 1));
  out.push_back(static_cast<char>(type));
}

}  // namespace

void append_def(std::string& out, std::uint64_t function, std::string_view message) {
  begin(out, FrameType::def, 8 + message.size());
  put(out, function);
  out.append(message);
}

void append_task(std::string& out, std::uint64_t chunk, std::uint64_t function, TaskMode mode,
                 std::string_view payload) {
  begin(out, FrameType::task, 17 + payload.size());
  put(out, chunk);
  put(out, function);
  out.push_back(static_cast<char>(mode));
  out.append(payload);
}

void append_quit(std::string& out) { begin(out, FrameType::quit, 0); }

void append_result(std::string& out, std::uint64_t chunk, bool ok, double seconds,
                   std::string_view payload) {
  begin(out, FrameType::result, 17 + payload.size());
  put(out, chunk);
  out.push_back(ok ? 1 : 0);
  put(out, seconds);
  out.append(payload);
}

void append_bye(std::string& out) { begin(out, FrameType::bye, 0); }

long FrameReader::read_from(int fd) {
  if (pos_ > 0 && (pos_ == buffer_.size() || pos_ > buffer_.size() / 2)) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  std::size_t want = 64 * 1024;
  // A large frame in progress is read in as few calls as possible.
  if (buffer_.size() - pos_ >= sizeof(std::uint32_t)) {
    std::size_t frame = kHeader - 1 + get<std::uint32_t>(buffer_.data() + pos_);
    if (frame > buffer_.size() - pos_ && frame <= kMaxFrame)
      want = std::max(want, frame - (buffer_.size() - pos_));
  }
  std::size_t old = buffer_.size();
  buffer_.resize(old + want);
  ssize_t n;
  do n = ::read(fd, buffer_.data() + old, want); while (n < 0 && errno == EINTR);
  buffer_.resize(old + (n > 0 ? static_cast<std::size_t>(n) : 0));
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    throw std::system_error(errno, std::generic_category(), "pool: read");
  }
  return n;
}

bool FrameReader::has_frame() const {
  std::size_t avail = buffer_.size() - pos_;
  if (avail < kHeader) return false;
  std::uint32_t body = get<std::uint32_t>(buffer_.data() + pos_);
  return avail - sizeof(std::uint32_t) >= body;
}

bool FrameReader::next(Frame& f) {
  if (!has_frame()) return false;
  const char* p = buffer_.data() + pos_;
  std::uint32_t body = get<std::uint32_t>(p);
  if (body == 0 || body > kMaxFrame) throw std::runtime_error("pool: malformed frame (length)");
  p += sizeof(std::uint32_t);
  f = Frame{};
  f.type = static_cast<FrameType>(*p);
  const char* end = p + body;
  ++p;
  auto need = [&](std::size_t n) {
    if (static_cast<std::size_t>(end - p) < n) throw std::runtime_error("pool: malformed frame (short)");
  };
  switch (f.type) {
    case FrameType::def:
      need(8);
      f.id = get<std::uint64_t>(p);
      p += 8;
      break;
    case FrameType::task:
      need(17);
      f.id = get<std::uint64_t>(p);
      f.function = get<std::uint64_t>(p + 8);
      f.mode = static_cast<TaskMode>(p[16]);
      if (p[16] > static_cast<char>(TaskMode::starmap) || p[16] < 0)
        throw std::runtime_error("pool: malformed frame (mode)");
      p += 17;
      break;
    case FrameType::result:
      need(17);
      f.id = get<std::uint64_t>(p);
      f.ok = p[8] != 0;
      f.seconds = get<double>(p + 9);
      p += 17;
      break;
    case FrameType::quit:
    case FrameType::bye:
      break;
    default:
      throw std::runtime_error("pool: malformed frame (type)");
  }
  f.payload = std::string_view(p, static_cast<std::size_t>(end - p));
  pos_ += sizeof(std::uint32_t) + body;
  return true;
}

bool WorkerEndpoint::next(Frame& frame) {
  StopFlag& stop = this_thread_stop_flag();
  for (;;) {
    if (reader_.next(frame)) return true;
    if (stop.requested()) return false;
    // Results go out before the worker waits, or when they have waited long enough.
    bool waited_enough = !out_buffer_.empty() &&
                         std::chrono::steady_clock::now() - oldest_ >= kFlushDelay;
    pollfd p{in_, POLLIN, 0};
    int ready;
    do ready = ::poll(&p, 1, 0); while (ready < 0 && errno == EINTR);
    if (ready == 0 || waited_enough) flush();
    if (ready == 0) {
      int slice = static_cast<int>(kWaitSlice.count());
      do ready = ::poll(&p, 1, slice); while (ready < 0 && errno == EINTR && !stop.requested());
      if (ready <= 0) continue;  // re-check the stop flag
    }
    if (reader_.read_from(in_) == 0) {
      flush();
      return false;
    }
  }
}

void WorkerEndpoint::send_result(std::uint64_t chunk, bool ok, double seconds,
                                 std::string_view payload) {
  if (out_buffer_.empty()) oldest_ = std::chrono::steady_clock::now();
  append_result(out_buffer_, chunk, ok, seconds, payload);
  if (out_buffer_.size() >= kFlushBytes) flush();
}

void WorkerEndpoint::send_bye() {
  append_bye(out_buffer_);
  flush();
}

void WorkerEndpoint::flush() {
  if (out_buffer_.empty()) return;
  write_all(out_buffer_);
  out_buffer_.clear();
}

void WorkerEndpoint::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(out_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{out_, POLLOUT, 0};
        ::poll(&p, 1, static_cast<int>(kWaitSlice.count()));
        continue;
      }
      throw std::system_error(errno, std::generic_category(), "pool: write");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace plua::core::pool_wire
