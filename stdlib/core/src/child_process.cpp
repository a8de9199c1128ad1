#include "plua/core/child_process.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <system_error>

#include "plua/core/fork_tracked.hpp"

namespace plua::core {

// Every child this process started and has not reaped, plus handles still held.
struct ChildRegistry {
  std::mutex mu;
  std::vector<std::shared_ptr<ChildProcess>> children;  // guarded by mu
  std::atomic<pid_t> self{::getpid()};

  static ChildRegistry& get() {
    // Leaked on purpose: children may be reaped from shutdown code after statics die.
    static ChildRegistry* registry = [] {
      auto* r = new ChildRegistry;
      pthread_atfork(&ChildRegistry::before_fork, &ChildRegistry::after_fork_parent,
                     &ChildRegistry::after_fork_child);
      return r;
    }();
    return *registry;
  }

  // Held across fork so that the child sees a consistent list.
  static void before_fork() { get().mu.lock(); }
  static void after_fork_parent() { get().mu.unlock(); }
  // The child's siblings are not its children: close their pidfds and forget them.
  static void after_fork_child() {
    ChildRegistry& r = get();
    r.self.store(::getpid(), std::memory_order_relaxed);
    for (auto& c : r.children) {
      int fd = c->pidfd_.exchange(-1);
      if (fd >= 0) ::close(fd);
    }
    r.children.clear();
    r.mu.unlock();
  }
};

namespace {

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

}  // namespace

int exitcode_from_status(int status) noexcept {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return 255;
}

pid_t current_pid() noexcept { return ChildRegistry::get().self.load(std::memory_order_relaxed); }

ChildProcess::ChildProcess(pid_t pid, int pidfd) : pid_(pid), owner_(::getpid()), pidfd_(pidfd) {}

std::shared_ptr<ChildProcess> ChildProcess::adopt(pid_t pid) {
  ChildRegistry& r = ChildRegistry::get();
  int fd = pidfd_open(pid);  // pidfds are close-on-exec
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "pidfd_open");
  std::shared_ptr<ChildProcess> child(new ChildProcess(pid, fd));
  std::lock_guard lock(r.mu);
  // Children their holders already reaped leave here, so a process that starts
  // children all its life (a pool replacing workers) keeps a bounded list.
  std::erase_if(r.children, [](const std::shared_ptr<ChildProcess>& c) {
    return c->ended_.load(std::memory_order_acquire);
  });
  r.children.push_back(child);
  return child;
}

ChildProcess::~ChildProcess() {
  int fd = pidfd_.exchange(-1);
  if (fd >= 0) ::close(fd);
}

bool ChildProcess::owned_by_this_process() const noexcept { return owner_ == current_pid(); }

void ChildProcess::check_owner(const char* op) const {
  if (!owned_by_this_process())
    throw std::logic_error(std::string("can only ") + op + " a child process");
}

std::optional<int> ChildProcess::poll() {
  check_owner("test");
  if (ended_.load(std::memory_order_acquire)) return exitcode_;
  std::lock_guard lock(mu_);
  if (exitcode_) return exitcode_;
  int status = 0;
  pid_t got;
  do got = ::waitpid(pid_, &status, WNOHANG); while (got < 0 && errno == EINTR);
  if (got == 0) return std::nullopt;
  // ECHILD: someone reaped it behind our back (SIGCHLD ignored); the status is lost.
  exitcode_ = got == pid_ ? exitcode_from_status(status) : 255;
  ended_.store(true, std::memory_order_release);
  int fd = pidfd_.exchange(-1);
  if (fd >= 0) ::close(fd);
  return exitcode_;
}

std::optional<int> ChildProcess::wait(const Deadline& deadline) {
  StopFlag& stop = this_thread_stop_flag();
  for (;;) {
    if (auto code = poll()) return code;
    stop.throw_if_requested();
    if (deadline.expired()) return std::nullopt;
    auto slice = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.next_slice());
    pollfd p{pidfd(), POLLIN, 0};
    if (p.fd < 0) continue;  // reaped by another thread meanwhile
    ::poll(&p, 1, static_cast<int>(std::max<long>(slice.count(), 1)));
  }
}

void ChildProcess::send_signal(int sig) {
  check_owner("signal");
  std::lock_guard lock(mu_);
  if (exitcode_) return;
  if (pidfd_send_signal(pidfd(), sig) < 0 && errno != ESRCH)
    throw std::system_error(errno, std::generic_category(), "pidfd_send_signal");
}

namespace {
// Lock-free, so registering never waits for a fork in progress.
constexpr int kMaxOuterHandlers = 8;
std::atomic<const OuterForkHandlers*> g_outer[kMaxOuterHandlers];
std::atomic<int> g_outer_count{0};

int outer_count() { return std::min(g_outer_count.load(std::memory_order_acquire), kMaxOuterHandlers); }
}  // namespace

void add_outer_fork_handlers(const OuterForkHandlers& handlers) {
  for (int i = 0; i < outer_count(); ++i)
    if (const OuterForkHandlers* h = g_outer[i].load(std::memory_order_acquire);
        h && h->prepare == handlers.prepare && h->parent == handlers.parent && h->child == handlers.child)
      return;
  int slot = g_outer_count.fetch_add(1, std::memory_order_acq_rel);
  if (slot >= kMaxOuterHandlers) {
    std::fprintf(stderr, "plua: too many outer fork handlers\n");
    std::abort();
  }
  g_outer[slot].store(new OuterForkHandlers(handlers), std::memory_order_release);  // never freed
}

pid_t fork_process() {
  std::fflush(nullptr);
  ChildRegistry::get();  // installs the fork handlers before the first fork
  int outer = outer_count();
  for (int i = 0; i < outer; ++i)
    if (const OuterForkHandlers* h = g_outer[i].load(std::memory_order_acquire)) h->prepare();
  // The child's copies of arena references are counted before it exists.
  fork_tracked::before_fork();
  pid_t pid = ::fork();
  int saved = errno;
  if (pid == 0) {
    fork_tracked::after_fork_child();
  } else {
    fork_tracked::after_fork_parent(pid < 0);
  }
  for (int i = outer - 1; i >= 0; --i)
    if (const OuterForkHandlers* h = g_outer[i].load(std::memory_order_acquire)) pid == 0 ? h->child() : h->parent();
  if (pid < 0) throw std::system_error(saved, std::generic_category(), "fork");
  return pid;
}

std::vector<std::shared_ptr<ChildProcess>> active_children() {
  ChildRegistry& r = ChildRegistry::get();
  std::vector<std::shared_ptr<ChildProcess>> snapshot;
  {
    std::lock_guard lock(r.mu);
    snapshot = r.children;
  }
  std::vector<std::shared_ptr<ChildProcess>> alive;
  for (auto& c : snapshot)
    if (!c->poll()) alive.push_back(c);
  reap_orphans();
  return alive;
}

void reap_orphans() {
  ChildRegistry& r = ChildRegistry::get();
  std::lock_guard lock(r.mu);
  std::erase_if(r.children, [](const std::shared_ptr<ChildProcess>& c) {
    // Ended children leave the list; unheld running ones stay to be reaped later.
    return c->poll().has_value();
  });
}

std::size_t tracked_children() {
  ChildRegistry& r = ChildRegistry::get();
  std::lock_guard lock(r.mu);
  return r.children.size();
}

namespace {
std::mutex g_exit_hooks_mu;
std::vector<void (*)()> g_exit_hooks;  // guarded by g_exit_hooks_mu
}  // namespace

void add_fork_child_exit_hook(void (*fn)()) {
  std::lock_guard lock(g_exit_hooks_mu);
  if (std::find(g_exit_hooks.begin(), g_exit_hooks.end(), fn) == g_exit_hooks.end())
    g_exit_hooks.push_back(fn);
}

void run_fork_child_exit_hooks() noexcept {
  std::vector<void (*)()> hooks;
  {
    std::lock_guard lock(g_exit_hooks_mu);
    hooks = g_exit_hooks;
  }
  for (auto fn : hooks) fn();
  fork_tracked::release_all();
}

}  // namespace plua::core
