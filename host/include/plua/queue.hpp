// plua::Queue: the C++ side of queue.Queue. One Queue object is the very
// queue Lua threads, fork children and spawned processes use: hand it to a
// script (Runtime::set_global, a worker's arguments, inside another value)
// and both sides put and get the same items; a Lua queue read from a script
// (Runtime::get_global, a worker's results, an item) comes back as a Queue.
//
// Items are plua::Values (value.hpp): nil, booleans, integers, floats,
// strings, arrays, maps, and queues, locks and events, which travel by
// reference. An item a script put that C++ cannot read (a function, a table
// that contains itself, another kind of plua object) makes get() throw
// ConversionError, which holds the item whole (see value.hpp): nothing is lost.
//
// Timeouts are seconds: std::nullopt waits for ever; a negative or NaN
// timeout throws std::invalid_argument. A blocking call gives up with
// plua::core::Interrupted when the calling thread's stop flag is requested.
//
// Thread-safety: every member may be called from any thread, at the same
// time as other threads and processes use the same queue. Copies of a Queue
// are handles to the same queue.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>

namespace plua {

class Value;
namespace detail {
struct QueueBody;
}

class Queue {
 public:
  enum class Kind { queue, simple, joinable };

  // queue.Queue(maxsize) (maxsize 0: unbounded), SimpleQueue(), JoinableQueue(maxsize).
  static Queue create(std::size_t maxsize = 0);
  static Queue create_simple();
  static Queue create_joinable(std::size_t maxsize = 0);

  // Puts an item, waiting while the queue is full: false if still full at
  // the timeout (the item is not put). Throws plua::Error on a closed queue
  // ("queue.put: queue is closed") and ConversionError for an item that
  // cannot travel (an opaque value already sent).
  bool put(const Value& item, std::optional<double> timeout = std::nullopt);
  // Takes the oldest item, waiting while the queue is empty: nullopt if
  // still empty at the timeout, or at once when closed and drained.
  std::optional<Value> get(std::optional<double> timeout = std::nullopt);
  bool put_nowait(const Value& item);
  std::optional<Value> get_nowait();

  std::size_t qsize() const noexcept;
  bool empty() const noexcept;
  bool full() const noexcept;
  Kind kind() const noexcept;
  // No more puts; gets drain what is left, then return nullopt.
  void close() noexcept;
  bool closed() const noexcept;

  // JoinableQueue: one item taken is done (throws plua::Error if called
  // more often than items were put, or on another kind of queue); join waits
  // until every item put was done (false at the timeout).
  void task_done();
  bool join(std::optional<double> timeout = std::nullopt);

  // Same queue (handles compare by identity).
  friend bool operator==(const Queue& a, const Queue& b) noexcept;

 private:
  friend struct detail::QueueBody;
  explicit Queue(std::shared_ptr<detail::QueueBody> body) noexcept : body_(std::move(body)) {}
  std::shared_ptr<detail::QueueBody> body_;
};

}  // namespace plua

#include "plua/value.hpp"
