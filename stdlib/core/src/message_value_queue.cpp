#include "plua/core/message_value_queue.hpp"

#include <string>

#include "plua/core/codec_format.hpp"

namespace plua::core {

bool MessageValueQueue::put(Value v, const Deadline& deadline) {
  std::string message = codec::encode_values({std::move(v)});
  return queue_->put(message, true, deadline) == MessageQueue::PutStatus::ok;
}

std::optional<Value> MessageValueQueue::get(const Deadline& deadline) {
  std::string message;
  if (queue_->get(message, true, deadline) != MessageQueue::GetStatus::ok) return std::nullopt;
  std::vector<Value> values;
  try {
    values = codec::decode_values(message);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("the item cannot travel to a manager client: ") + e.what());
  }
  if (values.size() != 1) throw std::runtime_error("queue item holds " + std::to_string(values.size()) + " values");
  return std::move(values[0]);
}

}  // namespace plua::core
