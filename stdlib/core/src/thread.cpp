#include "plua/core/thread.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <pthread.h>
#include <stdexcept>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>

#include "plua/core/spin_wait.hpp"

namespace plua::core {
namespace {

// Run by a worker after each body (Thread::set_park_hook).
std::atomic<void (*)() noexcept> g_park_hook{nullptr};

}  // namespace

// Lock order: Registry::mu before Thread::mu_; Pool::mu is never held with either.
struct ThreadInternals {
  // Alive threads and the main thread. Leaked on purpose: daemon threads may
  // still use it while the process runs its static destructors.
  struct Registry {
    std::mutex mu;
    std::shared_ptr<Thread> main;                 // created on first use
    std::vector<std::shared_ptr<Thread>> alive;   // started, not finished, in start order
    std::uint64_t main_ident = 0;
    std::int64_t main_tid = 0;
    std::uint64_t next_name = 1;   // "Thread-N"
    std::uint64_t next_dummy = 1;  // "Dummy-N"
  };
  static Registry& registry() {
    static Registry* r = new Registry;
    return *r;
  }

  // An OS thread this file created, parked between bodies.
  struct Worker {
    std::condition_variable cv;
    std::shared_ptr<Thread> thread;  // the next body's Thread, guarded by Pool::mu
    Thread::Body body;               // guarded by Pool::mu
    std::atomic<bool> handed{false}; // a body is waiting: polled without the lock
    AdaptiveSpin park_spin;          // used by the worker's own OS thread only
    std::uint64_t ident = 0;
    std::int64_t tid = 0;
  };
  // Parked workers. Leaked on purpose: glibc's pthread_cond_destroy waits for
  // waiters, so destroying it at exit would hang on a parked worker.
  struct Pool {
    std::mutex mu;
    std::vector<Worker*> idle;
  };
  static Pool& pool() {
    static Pool* p = new Pool;
    return *p;
  }

  static std::int64_t gettid_now() noexcept { return static_cast<std::int64_t>(::syscall(SYS_gettid)); }
  static std::uint64_t self_ident() noexcept { return static_cast<std::uint64_t>(pthread_self()); }

  static void worker_loop(Worker* w);
  static void* worker_entry(void* arg) {
    worker_loop(static_cast<Worker*>(arg));
    return nullptr;
  }
  static void install_fork_handlers();
};

namespace {

// The body's Thread on an OS thread running one; reset when the body ends.
thread_local std::shared_ptr<Thread> tl_current;

// A Dummy-N thread made for a foreign OS thread; unregistered when it exits.
struct DummySlot {
  std::shared_ptr<Thread> thread;
  ~DummySlot() {
    if (!thread) return;
    auto& reg = ThreadInternals::registry();
    std::lock_guard g(reg.mu);
    auto& v = reg.alive;
    v.erase(std::remove(v.begin(), v.end(), thread), v.end());
  }
};
thread_local DummySlot tl_dummy;

// Captured on the process's main thread while static objects are built.
const bool g_main_captured = [] {
  auto& reg = ThreadInternals::registry();
  reg.main_ident = ThreadInternals::self_ident();
  reg.main_tid = static_cast<std::int64_t>(::getpid());
  ThreadInternals::install_fork_handlers();
  return true;
}();

bool on_main_os_thread() noexcept { return ThreadInternals::gettid_now() == ThreadInternals::registry().main_tid; }

}  // namespace

void ThreadInternals::install_fork_handlers() {
  // The registry and pool locks must not be held by a thread that does not
  // exist in the child, so fork happens with both taken by the forking thread.
  pthread_atfork(
      [] {
        registry().mu.lock();
        pool().mu.lock();
      },
      [] {
        pool().mu.unlock();
        registry().mu.unlock();
      },
      [] {
        Pool& p = pool();
        Registry& reg = registry();
        // Parked workers did not survive the fork; their records are leaked (see Pool).
        p.idle.clear();
        for (auto& t : reg.alive) t->state_.store(Thread::State::finished, std::memory_order_release);
        reg.alive.clear();
        reg.main_ident = self_ident();
        reg.main_tid = gettid_now();
        reg.main.reset();
        tl_current.reset();
        tl_dummy.thread.reset();
        p.mu.unlock();
        reg.mu.unlock();
      });
}

void ThreadInternals::worker_loop(Worker* w) {
  w->ident = self_ident();
  w->tid = gettid_now();
  Pool& p = pool();
  for (;;) {
    // A loop of short threads starts the next one right after joining this
    // one: found while still awake, it skips waking a halted CPU.
    w->park_spin.until([&] { return w->handed.load(std::memory_order_acquire); }, kParkedSpin);
    std::unique_lock lock(p.mu);
    // Wait for a body (handed over by start) or give up after the keep-alive.
    bool got = w->cv.wait_for(lock, kIdleKeepAlive, [&] { return w->thread != nullptr; });
    if (!got) {
      p.idle.erase(std::remove(p.idle.begin(), p.idle.end(), w), p.idle.end());
      break;
    }
    std::shared_ptr<Thread> thread = std::move(w->thread);
    Thread::Body body = std::move(w->body);
    w->handed.store(false, std::memory_order_relaxed);
    lock.unlock();
    // Set here too: on a fresh OS thread the body may run before start() stores the ident.
    thread->ident_.store(w->ident, std::memory_order_release);
    thread->native_id_.store(w->tid, std::memory_order_release);
    thread->run(body);
    // Parked before the joiner hears of the end, so a start() right after join() finds this worker.
    lock.lock();
    p.idle.push_back(w);
    lock.unlock();
    thread->mark_finished();
    thread->forget_current();
    thread.reset();
    if (auto hook = g_park_hook.load(std::memory_order_acquire)) hook();
  }
  delete w;
}

Thread::Thread(Token, Options options, bool main)
    : daemon_(options.daemon),
      timer_(options.timer),
      main_(main),
      group_(options.group),
      name_(std::move(options.name)) {}

Thread::~Thread() {
  if (outcome_ && outcome_->discard) outcome_->discard(outcome_->values);
}

std::shared_ptr<Thread> Thread::create(Options options) {
  if (options.name.empty()) {
    auto& reg = ThreadInternals::registry();
    std::lock_guard g(reg.mu);
    options.name = "Thread-" + std::to_string(reg.next_name++);
  }
  return std::make_shared<Thread>(Token{}, std::move(options), false);
}

void Thread::start(Body body) {
  State expected = State::created;
  if (!state_.compare_exchange_strong(expected, State::running, std::memory_order_acq_rel))
    throw ThreadStateError("threads can only be started once");
  auto self = shared_from_this();
  {
    auto& reg = ThreadInternals::registry();
    std::lock_guard g(reg.mu);
    reg.alive.push_back(self);
  }
  auto& p = ThreadInternals::pool();
  {
    std::lock_guard g(p.mu);
    if (!p.idle.empty()) {
      ThreadInternals::Worker* w = p.idle.back();
      p.idle.pop_back();
      ident_.store(w->ident, std::memory_order_release);
      native_id_.store(w->tid, std::memory_order_release);
      w->thread = std::move(self);
      w->body = std::move(body);
      w->handed.store(true, std::memory_order_release);
      w->cv.notify_one();
      return;
    }
  }
  auto* w = new ThreadInternals::Worker;
  w->thread = std::move(self);
  w->body = std::move(body);
  w->handed.store(true, std::memory_order_relaxed);  // its first body is this one
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  // Ctrl-C belongs to the main thread: new threads never take SIGINT.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  pthread_attr_setsigmask_np(&attr, &mask);
  pthread_t id;
  int rc = pthread_create(&id, &attr, ThreadInternals::worker_entry, w);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    w->thread->mark_finished();
    delete w;
    throw std::runtime_error(std::string("cannot start a thread: ") + std::strerror(rc));
  }
  ident_.store(static_cast<std::uint64_t>(id), std::memory_order_release);
}

void Thread::run(Body& body) noexcept {
  tl_current = shared_from_this();
  this_thread_stop_flag().clear();
  try {
    body();
  } catch (const std::exception& e) {
    set_outcome(Outcome{false, {}, e.what(), {}});
  }
  // What the body captured is released before joiners are told it finished.
  body = nullptr;
  this_thread_stop_flag().clear();
}

void Thread::forget_current() noexcept { tl_current.reset(); }

void Thread::mark_finished() noexcept {
  auto self = shared_from_this();
  {
    auto& reg = ThreadInternals::registry();
    std::lock_guard g(reg.mu);
    auto& v = reg.alive;
    v.erase(std::remove(v.begin(), v.end(), self), v.end());
  }
  std::lock_guard g(mu_);
  state_.store(State::finished, std::memory_order_release);
  finished_cv_.notify_all();
}

bool Thread::join(const Deadline& deadline) {
  if (!started()) throw ThreadStateError("cannot join thread before it is started");
  if (tl_current.get() == this || (main_ && on_main_os_thread()) || tl_dummy.thread.get() == this)
    throw ThreadStateError("cannot join current thread");
  // A short body is often done within the spin; blocking would let this CPU halt.
  thread_local AdaptiveSpin join_spin;
  if (!deadline.expired() && join_spin.until([&] { return finished(); }, kJoinSpin)) return true;
  std::unique_lock lock(mu_);
  return wait_until(finished_cv_, lock, deadline, [&] { return finished(); });
}

std::string Thread::name() const {
  std::lock_guard g(mu_);
  return name_;
}

void Thread::set_name(std::string name) {
  std::lock_guard g(mu_);
  name_ = std::move(name);
}

void Thread::set_daemon(bool daemon) {
  if (started()) throw ThreadStateError("cannot set daemon status of active thread");
  daemon_.store(daemon, std::memory_order_release);
}

std::optional<std::uint64_t> Thread::ident() const {
  auto v = ident_.load(std::memory_order_acquire);
  if (v == 0 && !started()) return std::nullopt;
  return v;
}

std::optional<std::int64_t> Thread::native_id() const {
  if (!started()) return std::nullopt;
  // A fresh OS thread publishes its id first thing; wait for it briefly.
  for (;;) {
    auto v = native_id_.load(std::memory_order_acquire);
    if (v != 0) return v;
    if (finished()) return std::nullopt;
    std::this_thread::yield();
  }
}

void Thread::set_outcome(Outcome outcome) {
  std::lock_guard g(mu_);
  outcome_ = std::move(outcome);
}

std::optional<Thread::Outcome> Thread::outcome() const {
  std::lock_guard g(mu_);
  if (!finished()) return std::nullopt;
  return outcome_ ? outcome_ : std::optional<Outcome>(Outcome{});
}

void Thread::cancel() {
  std::lock_guard g(mu_);
  cancelled_ = true;
  finished_cv_.notify_all();
}

bool Thread::cancelled() const {
  std::lock_guard g(mu_);
  return cancelled_;
}

bool Thread::wait_cancelled(const Deadline& deadline) {
  std::unique_lock lock(mu_);
  return wait_until(finished_cv_, lock, deadline, [&] { return cancelled_; });
}

std::shared_ptr<Thread> Thread::main_thread() {
  auto& reg = ThreadInternals::registry();
  std::lock_guard g(reg.mu);
  if (!reg.main) {
    reg.main = std::make_shared<Thread>(Token{}, Options{"MainThread", false, false}, true);
    reg.main->state_.store(State::running, std::memory_order_release);
    reg.main->ident_.store(reg.main_ident, std::memory_order_release);
    reg.main->native_id_.store(reg.main_tid, std::memory_order_release);
  }
  return reg.main;
}

std::shared_ptr<Thread> Thread::current() {
  if (tl_current) return tl_current;
  if (on_main_os_thread()) return main_thread();
  if (!tl_dummy.thread) {
    auto& reg = ThreadInternals::registry();
    std::lock_guard g(reg.mu);
    auto t = std::make_shared<Thread>(
        Token{}, Options{"Dummy-" + std::to_string(reg.next_dummy++), true, false}, false);
    t->state_.store(State::running, std::memory_order_release);
    t->ident_.store(ThreadInternals::self_ident(), std::memory_order_release);
    t->native_id_.store(ThreadInternals::gettid_now(), std::memory_order_release);
    reg.alive.push_back(t);
    tl_dummy.thread = std::move(t);
  }
  return tl_dummy.thread;
}

std::vector<std::shared_ptr<Thread>> Thread::enumerate() {
  auto main = main_thread();
  auto& reg = ThreadInternals::registry();
  std::lock_guard g(reg.mu);
  std::vector<std::shared_ptr<Thread>> out;
  out.reserve(reg.alive.size() + 1);
  out.push_back(std::move(main));
  out.insert(out.end(), reg.alive.begin(), reg.alive.end());
  return out;
}

std::size_t Thread::active_count() {
  auto& reg = ThreadInternals::registry();
  std::lock_guard g(reg.mu);
  return reg.alive.size() + 1;
}

std::uint64_t Thread::current_ident() noexcept { return ThreadInternals::self_ident(); }

void Thread::set_park_hook(void (*hook)() noexcept) noexcept { g_park_hook.store(hook, std::memory_order_release); }

bool Thread::in_started_thread() noexcept { return tl_current != nullptr; }

std::uint64_t Thread::new_group() noexcept {
  static std::atomic<std::uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

bool Thread::join_non_daemon(const Deadline& deadline, std::uint64_t group) {
  for (;;) {
    std::shared_ptr<Thread> next;
    {
      auto& reg = ThreadInternals::registry();
      std::lock_guard g(reg.mu);
      for (auto& t : reg.alive)
        if (!t->daemon() && t != tl_current && (t->group_ == group || t->group_ == 0)) {
          next = t;
          break;
        }
    }
    if (!next) return true;
    if (!next->join(deadline)) return false;
  }
}

}  // namespace plua::core
