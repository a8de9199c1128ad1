// A queue served by a ManagerServer: Python's queue.Queue methods put, get,
// put_nowait, get_nowait, qsize, empty and full, with block and timeout handled
// on the server, over any queue of plua Values.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "plua/core/cancel.hpp"
#include "plua/core/served_object.hpp"
#include "plua/core/value.hpp"

namespace plua::core {

// The queue operations a ServedQueue needs. Waits honour the deadline and the
// calling thread's stop flag (throwing core::Interrupted).
class ValueQueue {
 public:
  virtual ~ValueQueue() = default;
  // Puts v; false if the queue stayed full until the deadline.
  virtual bool put(Value v, const Deadline& deadline) = 0;
  // Takes the oldest value; nullopt if the queue stayed empty until the deadline.
  virtual std::optional<Value> get(const Deadline& deadline) = 0;
  virtual std::size_t qsize() const = 0;
  virtual bool empty() const { return qsize() == 0; }
  virtual bool full() const = 0;
};

// A plain in-process FIFO of Values (maxsize <= 0: unbounded), for C++
// embedders that serve their own queues and for tests.
class BasicValueQueue : public ValueQueue {
 public:
  explicit BasicValueQueue(std::ptrdiff_t maxsize = 0) : maxsize_(maxsize) {}
  bool put(Value v, const Deadline& deadline) override;
  std::optional<Value> get(const Deadline& deadline) override;
  std::size_t qsize() const override;
  bool full() const override;

 private:
  const std::ptrdiff_t maxsize_;
  mutable std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<Value> items_;  // guarded by mu_
};

class ServedQueue : public ServedObject {
 public:
  explicit ServedQueue(std::shared_ptr<ValueQueue> queue) : queue_(std::move(queue)) {}
  std::vector<std::string> exposed() const override;
  pickle::Object call(std::string_view method, const std::vector<pickle::Object>& args,
                      const pickle::Dict& kwds) override;
  std::string describe() const override;

 private:
  std::shared_ptr<ValueQueue> queue_;
};

}  // namespace plua::core
