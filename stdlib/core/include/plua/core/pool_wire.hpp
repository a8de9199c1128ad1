// The frames a pool and its workers exchange over a pair of pipes, and the
// worker's end of them (plua/core/worker_pool.hpp is the pool's end).
//
// Frame: u32 body length | u8 type | body. Bodies (integers in host order;
// both ends are the same program on the same machine):
//   def    u64 function id | codec message of the function
//   task   u64 chunk id | u64 function id (0: the payload's first value is
//          the function) | u8 mode | codec message of the chunk's values
//   quit   (empty)         finish what was sent, then leave
//   result u64 chunk id | u8 ok | f64 seconds spent | codec message of the
//          results (ok) or of {error value, traceback} (not ok)
//   bye    (empty)         a worker thread is leaving (processes are watched
//                          through their pidfd instead)
//
// Function cache: a worker keeps the last kFunctionCache functions it was
// sent, by id, and forgets the oldest when a def brings one more. The pool
// mirrors that list per worker (the pipe keeps the order), so it sends a def
// exactly when the worker lacks the function.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace plua::core::pool_wire {

enum class FrameType : std::uint8_t { def = 'D', task = 'T', quit = 'Q', result = 'R', bye = 'B' };

// How a worker runs a chunk's values: apply calls f(values...) once; map
// calls f(v) per value; starmap calls f(table.unpack(v)) per value.
enum class TaskMode : std::uint8_t { apply = 0, map = 1, starmap = 2 };

inline constexpr std::size_t kFunctionCache = 64;
// Frames larger than this are refused as malformed (a corrupt length).
inline constexpr std::uint32_t kMaxFrame = 1u << 30;

struct Frame {
  FrameType type = FrameType::quit;
  std::uint64_t id = 0;        // def: function id; task, result: chunk id
  std::uint64_t function = 0;  // task
  TaskMode mode = TaskMode::apply;
  bool ok = false;             // result
  double seconds = 0;          // result
  std::string_view payload;    // valid until the reader reads or compacts again
};

void append_def(std::string& out, std::uint64_t function, std::string_view message);
void append_task(std::string& out, std::uint64_t chunk, std::uint64_t function, TaskMode mode,
                 std::string_view payload);
void append_quit(std::string& out);
void append_result(std::string& out, std::uint64_t chunk, bool ok, double seconds,
                   std::string_view payload);
void append_bye(std::string& out);

// Splits a byte stream into frames.
class FrameReader {
 public:
  // Reads what the descriptor has (one read call): the byte count, 0 at end
  // of file, -1 when a non-blocking descriptor has nothing. Throws
  // std::system_error on other failures.
  long read_from(int fd);
  // Takes the next whole frame if one is buffered. Throws std::runtime_error
  // on a malformed frame (unknown type, impossible length).
  bool next(Frame& frame);
  bool has_frame() const;
  // Bytes buffered and not yet taken.
  std::size_t pending() const noexcept { return buffer_.size() - pos_; }

 private:
  std::string buffer_;
  std::size_t pos_ = 0;
};

// The worker's end: frames from the pool, results back in batches. Results
// are buffered and written when the worker would otherwise wait for input,
// when kFlushBytes are buffered, or when the oldest buffered result is
// kFlushDelay old, so a stream of small tasks costs few system calls and a
// slow task's result still leaves at once.
class WorkerEndpoint {
 public:
  static constexpr std::size_t kFlushBytes = 256 * 1024;
  static constexpr std::chrono::microseconds kFlushDelay{1000};

  // The descriptors stay owned by the caller; in_fd may be blocking.
  WorkerEndpoint(int in_fd, int out_fd) noexcept : in_(in_fd), out_(out_fd) {}

  // The next frame from the pool. Returns false when the pool is gone (end
  // of file) or this thread is asked to stop. Throws std::system_error on
  // I/O failures and std::runtime_error on malformed frames.
  bool next(Frame& frame);
  void send_result(std::uint64_t chunk, bool ok, double seconds, std::string_view payload);
  void send_bye();
  // Writes whatever is buffered (blocking).
  void flush();

 private:
  void write_all(std::string_view bytes);
  int in_;
  int out_;
  FrameReader reader_;
  std::string out_buffer_;
  std::chrono::steady_clock::time_point oldest_{};
};

}  // namespace plua::core::pool_wire
