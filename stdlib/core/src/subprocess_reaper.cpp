#include "plua/core/subprocess_reaper.hpp"

#include <pthread.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace plua::core {
namespace {

// How often the reaper looks at its children; they have already outlived
// their handle, so promptness matters little.
constexpr std::chrono::milliseconds kReapInterval{50};

struct Reaper {
  // Lock order: mu is a leaf; nothing else is locked while holding it.
  std::mutex mu;
  std::condition_variable wake;
  std::vector<std::pair<pid_t, OwnedFd>> children;  // guarded by mu
  bool thread_running = false;                       // guarded by mu

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!children.empty()) {
      std::erase_if(children, [](const std::pair<pid_t, OwnedFd>& c) {
        int status = 0;
        pid_t r;
        do r = ::waitpid(c.first, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        return r == c.first || (r < 0 && errno == ECHILD);
      });
      if (!children.empty()) wake.wait_for(lock, kReapInterval);
    }
    thread_running = false;
  }
};

// Never destroyed: the detached reaper thread may still use it during exit.
Reaper& reaper() {
  static Reaper* instance = [] {
    auto* r = new Reaper;
    // A fork child inherits the list but not the thread, and those pids are
    // its siblings: it starts empty, and the lock is not left held.
    pthread_atfork([] { reaper().mu.lock(); }, [] { reaper().mu.unlock(); },
                   [] {
                     Reaper& self = reaper();
                     self.children.clear();
                     self.thread_running = false;
                     self.mu.unlock();
                   });
    return r;
  }();
  return *instance;
}

}  // namespace

void reap_later(pid_t pid, OwnedFd pidfd) noexcept {
  Reaper& r = reaper();
  std::lock_guard<std::mutex> lock(r.mu);
  r.children.emplace_back(pid, std::move(pidfd));
  if (!r.thread_running) {
    try {
      std::thread([&r] { r.run(); }).detach();
      r.thread_running = true;
    } catch (const std::system_error&) {
      // No thread to be had now: the next hand-over tries again.
    }
  }
}

std::size_t reaper_pending() {
  Reaper& r = reaper();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.children.size();
}

}  // namespace plua::core
