#include "plua/event.hpp"

#include "embed_detail.hpp"

namespace plua {

using detail::EventBody;

Event Event::create() { return EventBody::wrap(core::Event()); }

void Event::set() noexcept { body_->event().set(); }
void Event::clear() noexcept { body_->event().clear(); }
bool Event::is_set() const noexcept { return body_->event().is_set(); }

bool Event::wait(std::optional<double> timeout) {
  return body_->event().wait(detail::deadline_of(timeout, "event.wait"));
}

bool operator==(const Event& a, const Event& b) noexcept {
  return a.body_->event().state().get() == b.body_->event().state().get();
}

}  // namespace plua
