// A ValueQueue over plua's own MessageQueue (the body of queue.Queue), so a
// manager serves the very queue a script holds: values cross as Value <->
// codec message, and a local get sees what a remote client put.
#pragma once

#include "plua/core/message_queue.hpp"
#include "plua/core/served_queue.hpp"
#include "plua/core/shared_arena.hpp"

namespace plua::core {

class MessageValueQueue : public ValueQueue {
 public:
  explicit MessageValueQueue(SharedRef<MessageQueue> queue) : queue_(std::move(queue)) {}
  // Throws QueueClosed on a closed queue.
  bool put(Value v, const Deadline& deadline) override;
  // A closed and drained queue reads as empty. An item that is not plain data
  // (a function, a plua object) cannot cross the wire: it is taken and a
  // std::runtime_error names why.
  std::optional<Value> get(const Deadline& deadline) override;
  std::size_t qsize() const override { return static_cast<std::size_t>(queue_->qsize()); }
  bool empty() const override { return queue_->empty(); }
  bool full() const override { return queue_->full(); }

 private:
  SharedRef<MessageQueue> queue_;
};

}  // namespace plua::core
