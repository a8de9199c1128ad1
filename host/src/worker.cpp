#include "plua/worker.hpp"

#include <stdexcept>

#include "embed_detail.hpp"
#include "worker_body.hpp"

namespace plua {

bool Worker::join(std::optional<double> timeout) {
  return body_->thread->join(detail::deadline_of(timeout, "worker.join"));
}

bool Worker::finished() const noexcept { return body_->thread->finished(); }

void Worker::interrupt() noexcept { body_->control->interrupt(); }

std::string Worker::name() const { return body_->thread->name(); }

std::vector<Value> Worker::result() {
  detail::WorkerBody& b = *body_;
  if (!b.thread->finished())
    throw std::logic_error("worker.result: worker " + b.thread->name() + " has not finished");
  std::lock_guard lock(b.mu);
  if (b.results) return *b.results;
  if (b.error) throw *b.error;
  core::Thread::Outcome out = *b.thread->outcome();
  std::string reason;
  std::optional<std::vector<Value>> values =
      out.values.empty() ? std::vector<Value>{} : detail::decode_message(out.values, out.ok ? "results" : "error", &reason);
  if (values && !out.values.empty()) {
    // The references are the Values' now: the outcome must not release them again.
    core::Thread::Outcome spent = out;
    spent.values.clear();
    b.thread->set_outcome(std::move(spent));
  }
  if (out.ok) {
    if (!values) throw ConversionError("worker.result: " + reason, {});
    b.results = std::move(*values);
    return *b.results;
  }
  // An error object (api.md rule 7) gives its kind.
  std::string kind;
  if (values && values->size() == 1)
    if (const Value* k = values->front().find("kind"); k && k->is_string()) kind = k->as_string();
  // Lua runs no message handler for "not enough memory": the value is all there is.
  std::string message = out.message;
  if (message.empty() && values && values->size() == 1 && values->front().is_string())
    message = values->front().as_string();
  b.error.emplace(message, out.traceback, kind);
  throw *b.error;
}

}  // namespace plua
