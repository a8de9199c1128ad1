#include "plua/core/served_queue.hpp"

#include <cmath>
#include <cstdio>
#include <initializer_list>

namespace plua::core {

bool BasicValueQueue::put(Value v, const Deadline& deadline) {
  std::unique_lock lock(mu_);
  auto has_room = [&] { return maxsize_ <= 0 || static_cast<std::ptrdiff_t>(items_.size()) < maxsize_; };
  if (!wait_until(not_full_, lock, deadline, has_room)) return false;
  items_.push_back(std::move(v));
  not_empty_.notify_one();
  return true;
}

std::optional<Value> BasicValueQueue::get(const Deadline& deadline) {
  std::unique_lock lock(mu_);
  if (!wait_until(not_empty_, lock, deadline, [&] { return !items_.empty(); })) return std::nullopt;
  Value v = std::move(items_.front());
  items_.pop_front();
  not_full_.notify_one();
  return v;
}

std::size_t BasicValueQueue::qsize() const {
  std::lock_guard lock(mu_);
  return items_.size();
}

bool BasicValueQueue::full() const {
  std::lock_guard lock(mu_);
  return maxsize_ > 0 && static_cast<std::ptrdiff_t>(items_.size()) >= maxsize_;
}

namespace {

using pickle::Object;

[[noreturn]] void raise_python(const char* name, std::string message) {
  pickle::Exception e{"builtins", name, {}};
  if (!message.empty()) e.args.push_back(pickle::str(std::move(message)));
  throw RaisedException(std::move(e));
}

// Binds positional and keyword arguments to parameters as a Python def would;
// unbound parameters stay nullptr.
std::vector<const Object*> bind(std::string_view fn, const std::vector<Object>& args,
                                const pickle::Dict& kwds, std::initializer_list<const char*> names,
                                std::size_t required) {
  std::vector<const Object*> bound(names.size(), nullptr);
  std::string f(fn);
  if (args.size() > names.size())
    raise_python("TypeError", f + "() takes at most " + std::to_string(names.size()) +
                                  " arguments (" + std::to_string(args.size()) + " given)");
  for (std::size_t i = 0; i < args.size(); ++i) bound[i] = &args[i];
  for (const auto& [key, value] : kwds.items) {
    const std::string* k = key.str();
    std::size_t at = names.size();
    for (std::size_t i = 0; k && i < names.size(); ++i)
      if (*k == names.begin()[i]) at = i;
    if (at == names.size())
      raise_python("TypeError", f + "() got an unexpected keyword argument " + pickle::repr(key));
    if (bound[at])
      raise_python("TypeError", f + "() got multiple values for argument '" + *k + "'");
    bound[at] = &value;
  }
  for (std::size_t i = 0; i < required; ++i)
    if (!bound[i])
      raise_python("TypeError", f + "() missing required argument '" + names.begin()[i] + "'");
  return bound;
}

bool truthy(const Object* o, bool fallback) {
  if (!o) return fallback;
  if (o->is_none()) return false;
  if (o->is<bool>()) return o->as<bool>();
  if (o->is<std::int64_t>()) return o->as<std::int64_t>() != 0;
  if (o->is<double>()) return o->as<double>() != 0;
  return true;
}

// Python's queue.Queue: a non-blocking call ignores its timeout; a negative
// timeout is a ValueError.
Deadline deadline_of(const Object* block, const Object* timeout) {
  if (!truthy(block, true)) return Deadline::after(0);
  if (!timeout || timeout->is_none()) return Deadline::never();
  double seconds;
  if (timeout->is<std::int64_t>())
    seconds = static_cast<double>(timeout->as<std::int64_t>());
  else if (timeout->is<double>())
    seconds = timeout->as<double>();
  else
    raise_python("TypeError", "'timeout' must be a number");
  if (std::isnan(seconds) || seconds < 0) raise_python("ValueError", "'timeout' must be a non-negative number");
  return Deadline::after(seconds);
}

[[noreturn]] void raise_empty() { throw RaisedException(pickle::Exception{"_queue", "Empty", {}}); }
[[noreturn]] void raise_full() { throw RaisedException(pickle::Exception{"queue", "Full", {}}); }

}  // namespace

std::vector<std::string> ServedQueue::exposed() const {
  return {"empty", "full", "get", "get_nowait", "put", "put_nowait", "qsize"};
}

Object ServedQueue::call(std::string_view method, const std::vector<Object>& args,
                         const pickle::Dict& kwds) {
  if (method == "put" || method == "put_nowait") {
    bool nowait = method == "put_nowait";
    auto a = nowait ? bind(method, args, kwds, {"item"}, 1)
                    : bind(method, args, kwds, {"item", "block", "timeout"}, 1);
    Value v;
    try {
      v = pickle::to_value(*a[0]);
    } catch (const pickle::PickleError& e) {
      raise_python("TypeError", e.what());
    }
    Deadline deadline = nowait ? Deadline::after(0) : deadline_of(a[1], a[2]);
    if (!queue_->put(std::move(v), deadline)) raise_full();
    return Object();
  }
  if (method == "get" || method == "get_nowait") {
    bool nowait = method == "get_nowait";
    Deadline deadline = Deadline::after(0);
    if (!nowait) {
      auto a = bind(method, args, kwds, {"block", "timeout"}, 0);
      deadline = deadline_of(a[0], a[1]);
    } else {
      bind(method, args, kwds, {}, 0);
    }
    std::optional<Value> v = queue_->get(deadline);
    if (!v) raise_empty();
    return pickle::from_value(*v);
  }
  if (method == "qsize") {
    bind(method, args, kwds, {}, 0);
    return Object(static_cast<std::int64_t>(queue_->qsize()));
  }
  if (method == "empty") {
    bind(method, args, kwds, {}, 0);
    return Object(queue_->empty());
  }
  if (method == "full") {
    bind(method, args, kwds, {}, 0);
    return Object(queue_->full());
  }
  raise_python("AttributeError", "'Queue' object has no attribute '" + std::string(method) + "'");
}

std::string ServedQueue::describe() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "<plua Queue object at %p>", static_cast<const void*>(queue_.get()));
  return buf;
}

}  // namespace plua::core
