#include "plua/core/wait_any.hpp"

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <chrono>

namespace plua::core {

std::vector<std::size_t> wait_any(const std::vector<WaitSource>& sources, const Deadline& deadline) {
  StopFlag& stop = this_thread_stop_flag();
  std::vector<pollfd> fds;
  std::vector<std::size_t> fd_index;
  bool has_predicates = false;
  for (std::size_t i = 0; i < sources.size(); ++i) {
    if (sources[i].ready) has_predicates = true;
    if (sources[i].fd >= 0) {
      fds.push_back({sources[i].fd, POLLIN, 0});
      fd_index.push_back(i);
    }
  }
  // Predicates have nothing to sleep on: poll them at 50 us, backing off to 5 ms.
  std::chrono::nanoseconds backoff = std::chrono::microseconds(50);
  for (;;) {
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < sources.size(); ++i)
      if (sources[i].ready && sources[i].ready(sources[i].arg)) ready.push_back(i);
    std::chrono::nanoseconds slice = deadline.next_slice();
    if (!ready.empty()) slice = std::chrono::nanoseconds::zero();
    else if (has_predicates) slice = std::min(slice, backoff);
    timespec ts{static_cast<time_t>(slice.count() / 1000000000), static_cast<long>(slice.count() % 1000000000)};
    int rc = ::ppoll(fds.data(), fds.size(), &ts, nullptr);
    if (rc > 0)
      for (std::size_t k = 0; k < fds.size(); ++k)
        if (fds[k].revents) ready.push_back(fd_index[k]);
    if (!ready.empty()) {
      std::sort(ready.begin(), ready.end());
      ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
      return ready;
    }
    stop.throw_if_requested();
    if (deadline.expired()) return ready;
    backoff = std::min<std::chrono::nanoseconds>(backoff * 2, std::chrono::milliseconds(5));
  }
}

}  // namespace plua::core
