#include "plua/queue.hpp"

#include "embed_detail.hpp"

namespace plua {

using detail::QueueBody;
using core::MessageQueue;

namespace {

Queue make(MessageQueue::Kind kind, std::size_t maxsize) {
  return QueueBody::wrap(MessageQueue::create(kind, maxsize));
}

}  // namespace

Queue Queue::create(std::size_t maxsize) { return make(MessageQueue::Kind::queue, maxsize); }
Queue Queue::create_simple() { return make(MessageQueue::Kind::simple, 0); }
Queue Queue::create_joinable(std::size_t maxsize) { return make(MessageQueue::Kind::joinable, maxsize); }

namespace {

bool do_put(const QueueBody& body, const Value& item, bool block, const core::Deadline& deadline, const char* op) {
  std::string message = detail::encode_message({item}, "item");
  MessageQueue::PutStatus status = MessageQueue::PutStatus::full;
  try {
    status = body.queue().put(message, block, deadline);
  } catch (const core::QueueClosed& e) {
    detail::release_message(message);
    throw Error(std::string(op) + ": " + e.what(), {}, "ValueError");
  } catch (const std::exception&) {
    detail::release_message(message);  // its references go nowhere
    throw;
  }
  if (status == MessageQueue::PutStatus::ok) return true;
  detail::release_message(message);
  return false;
}

std::optional<Value> do_get(const QueueBody& body, bool block, const core::Deadline& deadline, const char* op) {
  std::string message;
  if (body.queue().get(message, block, deadline) != MessageQueue::GetStatus::ok) return std::nullopt;
  return detail::decode_item(std::move(message), op, "item");
}

}  // namespace

bool Queue::put(const Value& item, std::optional<double> timeout) {
  return do_put(*body_, item, true, detail::deadline_of(timeout, "queue.put"), "queue.put");
}

std::optional<Value> Queue::get(std::optional<double> timeout) {
  return do_get(*body_, true, detail::deadline_of(timeout, "queue.get"), "queue.get");
}

bool Queue::put_nowait(const Value& item) {
  return do_put(*body_, item, false, core::Deadline::after(0), "queue.put_nowait");
}

std::optional<Value> Queue::get_nowait() {
  return do_get(*body_, false, core::Deadline::after(0), "queue.get_nowait");
}

std::size_t Queue::qsize() const noexcept { return static_cast<std::size_t>(body_->queue().qsize()); }
bool Queue::empty() const noexcept { return body_->queue().empty(); }
bool Queue::full() const noexcept { return body_->queue().full(); }
void Queue::close() noexcept { body_->queue().close(); }
bool Queue::closed() const noexcept { return body_->queue().closed(); }

Queue::Kind Queue::kind() const noexcept {
  switch (body_->queue().kind()) {
    case MessageQueue::Kind::simple:
      return Kind::simple;
    case MessageQueue::Kind::joinable:
      return Kind::joinable;
    default:
      return Kind::queue;
  }
}

void Queue::task_done() {
  if (kind() != Kind::joinable) throw Error("queue.task_done: not a JoinableQueue", {});
  try {
    body_->queue().task_done();
  } catch (const core::TooManyTaskDone& e) {
    throw Error(std::string("queue.task_done: ") + e.what(), {}, "ValueError");
  }
}

bool Queue::join(std::optional<double> timeout) {
  if (kind() != Kind::joinable) throw Error("queue.join: not a JoinableQueue", {});
  return body_->queue().join(detail::deadline_of(timeout, "queue.join"));
}

bool operator==(const Queue& a, const Queue& b) noexcept {
  return a.body_->ref.body().get() == b.body_->ref.body().get();
}

}  // namespace plua
