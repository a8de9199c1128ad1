#include "plua/core/worker_pool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <system_error>

#include "plua/core/child_process.hpp"

namespace plua::core {

using pool_wire::Frame;
using pool_wire::FrameType;

namespace {

// Every pipe end of every pool in this process, so that a new worker process
// closes the ends that are not its own (a sibling holding a worker's pipe open
// would hide that worker's end of file). Held across fork.
struct PipeRegistry {
  std::mutex mu;
  std::vector<int> fds;  // guarded by mu

  static PipeRegistry& get() {
    // Leaked on purpose: pools may be torn down after static destructors ran.
    static PipeRegistry* r = [] {
      auto* reg = new PipeRegistry;
      pthread_atfork([] { get().mu.lock(); }, [] { get().mu.unlock(); },
                     [] { get().mu.unlock(); });
      return reg;
    }();
    return *r;
  }
  void add(int fd) {
    std::lock_guard lock(mu);
    fds.push_back(fd);
  }
  void remove(int fd) {
    std::lock_guard lock(mu);
    std::erase(fds, fd);
  }
};

// A pool pipe end: registered while open.
class PoolFd {
 public:
  PoolFd() = default;
  explicit PoolFd(OwnedFd fd) : fd_(std::move(fd)) {
    if (fd_) PipeRegistry::get().add(fd_.get());
  }
  PoolFd(PoolFd&& o) noexcept = default;
  PoolFd& operator=(PoolFd&& o) noexcept {
    reset();
    fd_ = std::move(o.fd_);
    return *this;
  }
  ~PoolFd() { reset(); }
  int get() const noexcept { return fd_.get(); }
  void reset() noexcept {
    if (!fd_) return;
    PipeRegistry::get().remove(fd_.get());
    fd_.reset();
  }
  // Gives the descriptor up (still registered until forget()).
  int release() noexcept { return fd_.release(); }

 private:
  OwnedFd fd_;
};

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// A bigger pipe lets a whole map chunk go in one write (best effort).
void enlarge(int fd) { ::fcntl(fd, F_SETPIPE_SZ, 1 << 20); }

std::pair<PoolFd, PoolFd> pool_pipe() {
  auto [r, w] = make_pipe();
  enlarge(w.get());
  return {PoolFd(std::move(r)), PoolFd(std::move(w))};
}

void close_unregistered(int fd) noexcept {
  PipeRegistry::get().remove(fd);
  ::close(fd);
}

}  // namespace

// ---- PoolJob ----

PoolJob::PoolJob(std::size_t chunks, bool callbacks, void (*discard)(std::string_view) noexcept)
    : outcomes_(chunks), taken_(chunks, false), callbacks_(callbacks), discard_(discard) {}

PoolJob::~PoolJob() {
  if (!discard_) return;
  for (std::size_t i = 0; i < outcomes_.size(); ++i)
    if (outcomes_[i] && !taken_[i] && !outcomes_[i]->payload.empty()) discard_(outcomes_[i]->payload);
}

// ---- Worker ----

struct WorkerPool::Worker {
  std::shared_ptr<ChildProcess> child;  // processes
  pid_t pid = 0;
  std::thread thread;                   // threads
  PoolFd task_w;                        // the pool writes tasks here (non-blocking)
  PoolFd result_r;                      // and reads results here (non-blocking)
  std::string out;                      // frames not yet written
  pool_wire::FrameReader in;
  std::deque<Chunk> outstanding;        // sent, no result yet, in the order sent
  std::deque<std::uint64_t> functions;  // the worker's function cache, oldest first
  std::uint64_t sent = 0;               // chunks sent in its life
  bool quit_sent = false;
  bool gone = false;
  std::chrono::steady_clock::time_point last_interrupt{};

  bool idle() const noexcept { return outstanding.empty(); }
};

// ---- WorkerPool ----

WorkerPool::WorkerPool(Options options, std::vector<std::string> kits, bool reusable_kit)
    : options_(std::move(options)), kit_reusable_(reusable_kit) {
  if (options_.workers == 0) throw std::invalid_argument("Number of processes must be at least 1");
  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) throw std::system_error(errno, std::generic_category(), "pool: eventfd");
  wake_fd_.reset(efd);
  if (kit_reusable_) {
    reusable_kit_ = kits.empty() ? std::string() : std::move(kits.front());
  } else {
    for (auto& k : kits) kits_.push_back(std::move(k));
  }
  manager_ = std::thread([this] { manager_main(); });
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return started_ || finished_; });
  if (!start_error_.empty()) {
    std::string why = start_error_;
    lock.unlock();
    terminate();
    throw std::runtime_error(why);
  }
}

WorkerPool::~WorkerPool() { terminate(); }

void WorkerPool::wake() noexcept {
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
}

bool WorkerPool::service_needed(std::uint64_t owner) const noexcept {
  if (owner == 0 && kits_wanted_ > 0) return true;
  return std::any_of(callback_jobs_.begin(), callback_jobs_.end(),
                     [owner](const std::shared_ptr<PoolJob>& j) { return j->owner_ == owner; });
}

std::shared_ptr<PoolJob> WorkerPool::submit(std::shared_ptr<const PoolFunction> fn,
                                            pool_wire::TaskMode mode,
                                            std::vector<std::string> payloads, bool callbacks,
                                            std::uint64_t owner) {
  auto job = std::make_shared<PoolJob>(payloads.size(), callbacks, options_.discard);
  job->owner_ = owner;
  job->fn_ = std::move(fn);
  job->mode_ = mode;
  {
    std::lock_guard lock(mu_);
    if (state_ != State::running) throw PoolNotRunning();
    for (auto& payload : payloads) queue_chunk(job, std::move(payload));
    if (payloads.empty() && callbacks) callback_jobs_.push_back(job);
  }
  wake();
  return job;
}

std::shared_ptr<PoolJob> WorkerPool::open_job(std::shared_ptr<const PoolFunction> fn,
                                              pool_wire::TaskMode mode, std::size_t chunks,
                                              bool callbacks, std::uint64_t owner) {
  auto job = std::make_shared<PoolJob>(chunks, callbacks, options_.discard);
  job->owner_ = owner;
  job->fn_ = std::move(fn);
  job->mode_ = mode;
  std::lock_guard lock(mu_);
  if (state_ != State::running) throw PoolNotRunning();
  if (chunks == 0 && callbacks) callback_jobs_.push_back(job);
  return job;
}

void WorkerPool::add_chunk(const std::shared_ptr<PoolJob>& job, std::string payload) {
  {
    std::lock_guard lock(mu_);
    if (job->queued_ >= job->chunks()) throw std::logic_error("WorkerPool::add_chunk: the job has all its chunks");
    if (state_ == State::running && !job->failure_) {
      queue_chunk(job, std::move(payload));
    } else {
      Chunk c;
      c.job = job;
      c.index = job->queued_++;
      c.payload = std::move(payload);
      finish_chunk(c, ChunkOutcome{ChunkOutcome::Status::terminated, {}, 0, 0});
      cv_.notify_all();
      return;
    }
  }
  wake();
}

void WorkerPool::abandon(const std::shared_ptr<PoolJob>& job) noexcept {
  std::lock_guard lock(mu_);
  job->callbacks_ = false;
  std::erase(callback_jobs_, job);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->job != job) {
      ++it;
      continue;
    }
    Chunk c = std::move(*it);
    it = pending_.erase(it);
    finish_chunk(c, ChunkOutcome{ChunkOutcome::Status::terminated, {}, 0, 0});
  }
  while (job->queued_ < job->chunks()) {
    Chunk c;
    c.job = job;
    c.index = job->queued_++;
    finish_chunk(c, ChunkOutcome{ChunkOutcome::Status::terminated, {}, 0, 0});
  }
  cv_.notify_all();
}

// Called with mu_ held: the job's next chunk joins the queue.
void WorkerPool::queue_chunk(const std::shared_ptr<PoolJob>& job, std::string payload) {
  Chunk c;
  c.id = ++next_chunk_;
  c.job = job;
  c.index = job->queued_++;
  c.fn = job->fn_;
  c.mode = job->mode_;
  c.payload = std::move(payload);
  pending_.push_back(std::move(c));
}

template <class Pred>
WorkerPool::Wake WorkerPool::wait_for(const Deadline& deadline, std::uint64_t owner, Pred pred) {
  std::unique_lock lock(mu_);
  bool woke = wait_until(cv_, lock, deadline, [&] { return pred() || service_needed(owner); });
  if (pred()) return Wake::done;
  if (woke) return Wake::service;
  return Wake::timeout;
}

WorkerPool::Wake WorkerPool::wait_ready(const PoolJob& job, const Deadline& deadline, std::uint64_t owner) {
  return wait_for(deadline, owner, [&] { return job.ready(); });
}

WorkerPool::Wake WorkerPool::wait_progress(const PoolJob& job, std::size_t seen,
                                           const Deadline& deadline, std::uint64_t owner) {
  return wait_for(deadline, owner, [&] { return job.arrivals_.size() > seen; });
}

WorkerPool::Wake WorkerPool::wait_finished(const Deadline& deadline, std::uint64_t owner) {
  return wait_for(deadline, owner, [&] { return finished_; });
}

bool WorkerPool::ready(const PoolJob& job) {
  std::lock_guard lock(mu_);
  return job.ready();
}

std::optional<std::size_t> WorkerPool::failure(const PoolJob& job) {
  std::lock_guard lock(mu_);
  return job.failure_;
}

std::size_t WorkerPool::arrivals(const PoolJob& job) {
  std::lock_guard lock(mu_);
  return job.arrivals_.size();
}

std::size_t WorkerPool::arrival(const PoolJob& job, std::size_t k) {
  std::lock_guard lock(mu_);
  return job.arrivals_.at(k);
}

bool WorkerPool::has_outcome(const PoolJob& job, std::size_t chunk) {
  std::lock_guard lock(mu_);
  return job.outcomes_.at(chunk).has_value();
}

ChunkOutcome WorkerPool::take(PoolJob& job, std::size_t chunk) {
  std::lock_guard lock(mu_);
  auto& o = job.outcomes_.at(chunk);
  if (!o) throw std::logic_error("pool: chunk has no outcome yet");
  ChunkOutcome out = *o;
  if (!job.taken_[chunk]) {
    out.payload = std::move(o->payload);
    o->payload.clear();
    job.taken_[chunk] = true;
  } else {
    out.payload.clear();
  }
  return out;
}

std::vector<std::shared_ptr<PoolJob>> WorkerPool::take_callback_jobs(std::uint64_t owner) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<PoolJob>> mine;
  std::erase_if(callback_jobs_, [&](const std::shared_ptr<PoolJob>& j) {
    if (j->owner_ != owner) return false;
    mine.push_back(j);
    return true;
  });
  return mine;
}

std::size_t WorkerPool::kits_wanted() {
  std::lock_guard lock(mu_);
  return kits_wanted_;
}

void WorkerPool::add_kit(std::string kit) {
  {
    std::lock_guard lock(mu_);
    kits_.push_back(std::move(kit));
    if (kits_wanted_ > 0) --kits_wanted_;
  }
  wake();
}

void WorkerPool::close() {
  {
    std::lock_guard lock(mu_);
    if (state_ == State::running) state_ = State::closed;
  }
  wake();
}

void WorkerPool::terminate() noexcept {
  {
    std::lock_guard lock(mu_);
    state_ = State::terminating;
  }
  wake();
  std::lock_guard join_lock(join_mu_);
  if (manager_.joinable()) manager_.join();
}

bool WorkerPool::join(const Deadline& deadline) {
  {
    std::unique_lock lock(mu_);
    if (!wait_until(cv_, lock, deadline, [&] { return finished_; })) return false;
  }
  std::lock_guard join_lock(join_mu_);
  if (manager_.joinable()) manager_.join();
  return true;
}

bool WorkerPool::running() {
  std::lock_guard lock(mu_);
  return state_ == State::running;
}

bool WorkerPool::finished() {
  std::lock_guard lock(mu_);
  return finished_;
}

std::vector<pid_t> WorkerPool::worker_pids() {
  std::lock_guard lock(mu_);
  std::vector<pid_t> pids;
  for (auto& w : workers_)
    if (!w->gone && w->pid > 0) pids.push_back(w->pid);
  return pids;
}

// ---- the manager ----

void WorkerPool::manager_main() noexcept {
  // Signals are for the threads that run Lua; a fork child unblocks them again.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  std::unique_lock lock(mu_);
  try {
    manager_loop(lock);
  } catch (const std::exception& e) {
    if (!lock.owns_lock()) lock.lock();
    if (!started_) start_error_ = std::string("pool: cannot start workers: ") + e.what();
    std::fprintf(stderr, "plua: pool manager failed: %s\n", e.what());
    state_ = State::terminating;
    stop_workers(lock);
  }
  if (!lock.owns_lock()) lock.lock();
  fail_pending(ChunkOutcome::Status::terminated);
  finished_ = true;
  started_ = true;
  cv_.notify_all();
}

void WorkerPool::manager_loop(std::unique_lock<std::mutex>& lock) {
  std::vector<pollfd> fds;
  std::vector<Worker*> owners;  // the worker of each pollfd (nullptr: the wake fd)
  for (;;) {
    if (state_ == State::terminating) {
      stop_workers(lock);
      return;
    }
    start_workers(lock);
    if (!started_) {
      started_ = true;
      cv_.notify_all();
    }
    if (state_ == State::terminating) continue;
    dispatch();
    if (state_ == State::closed && pending_.empty()) {
      for (auto& w : workers_)
        if (!w->gone && w->idle() && !w->quit_sent) {
          pool_wire::append_quit(w->out);
          w->quit_sent = true;
          write_some(*w);
        }
      if (workers_.empty()) return;
    }
    fds.clear();
    owners.clear();
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    owners.push_back(nullptr);
    for (auto& w : workers_) {
      fds.push_back({w->result_r.get(), POLLIN, 0});
      owners.push_back(w.get());
      if (!w->out.empty()) {
        fds.push_back({w->task_w.get(), POLLOUT, 0});
        owners.push_back(w.get());
      }
      if (w->child && w->child->pidfd() >= 0) {
        fds.push_back({w->child->pidfd(), POLLIN, 0});
        owners.push_back(w.get());
      }
    }
    lock.unlock();
    int n;
    do n = ::poll(fds.data(), fds.size(), -1); while (n < 0 && errno == EINTR);
    lock.lock();
    if (n < 0) throw std::system_error(errno, std::generic_category(), "pool: poll");
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      Worker* w = owners[i];
      if (w == nullptr) {
        // Drained before the flag is cleared: the other order lets a wake()
        // in between be read here and leave the flag set with nothing to
        // read, and every later wake() would then be skipped.
        std::uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(wake_fd_.get(), &count, sizeof count);
        wake_pending_.store(false, std::memory_order_release);
        continue;
      }
      if (w->gone) continue;
      if (fds[i].fd == w->result_r.get()) {
        read_results(*w);
      } else if (fds[i].fd == w->task_w.get()) {
        write_some(*w);
      } else if (w->child) {
        // The process ended: whatever it wrote is in the pipe already.
        read_results(*w);
        on_worker_gone(*w, w->child->poll(), false);
      }
    }
    std::erase_if(workers_, [](const std::unique_ptr<Worker>& w) { return w->gone; });
  }
}

void WorkerPool::start_workers(std::unique_lock<std::mutex>& lock) {
  for (;;) {
    std::size_t live = workers_.size();
    bool want = state_ == State::running || (state_ == State::closed && !pending_.empty());
    if (!want || live >= options_.workers) {
      kits_wanted_ = 0;
      return;
    }
    std::string kit;
    if (kit_reusable_) {
      kit = reusable_kit_;
    } else if (!kits_.empty()) {
      kit = std::move(kits_.front());
      kits_.pop_front();
    } else {
      // Ask the owner for the kits still missing, then carry on without them.
      if (kits_wanted_ == 0) cv_.notify_all();
      kits_wanted_ = options_.workers - live;
      return;
    }
    std::unique_ptr<Worker> w = options_.kind == Kind::processes ? start_process(std::move(kit), lock)
                                                                 : start_thread(std::move(kit));
    workers_.push_back(std::move(w));
  }
}

std::unique_ptr<WorkerPool::Worker> WorkerPool::start_process(std::string kit,
                                                              std::unique_lock<std::mutex>& lock) {
  auto [task_r, task_w] = pool_pipe();
  auto [result_r, result_w] = pool_pipe();
  set_nonblocking(task_w.get());
  set_nonblocking(result_r.get());
  pid_t parent = ::getpid();
  int in_fd = task_r.get(), out_fd = result_w.get();
  // Forked with the pool unlocked (a fork child never inherits it held).
  lock.unlock();
  pid_t pid;
  try {
    if (options_.before_fork) options_.before_fork();
    pid = fork_process();
  } catch (...) {
    lock.lock();
    throw;
  }
  if (pid == 0) {
    // The worker: it dies with the pool's manager thread, and keeps only its own pipe ends.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    {
      std::vector<int> others;
      {
        std::lock_guard reg_lock(PipeRegistry::get().mu);
        others = PipeRegistry::get().fds;
      }
      for (int fd : others)
        if (fd != in_fd && fd != out_fd) ::close(fd);
    }
    ::close(wake_fd_.get());
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
    // Ctrl-C is the parent's to handle: it then ends the workers itself.
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_DFL);
    int status = 1;
    try {
      status = options_.main(in_fd, out_fd, std::move(kit));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "plua: pool worker failed: %s\n", e.what());
    }
    // What it inherited from the parent's Lua states goes back to the arena.
    run_fork_child_exit_hooks();
    std::fflush(nullptr);
    ::_exit(status);
  }
  lock.lock();
  auto w = std::make_unique<Worker>();
  w->child = ChildProcess::adopt(pid);
  w->pid = pid;
  w->task_w = std::move(task_w);
  w->result_r = std::move(result_r);
  return w;
}

std::unique_ptr<WorkerPool::Worker> WorkerPool::start_thread(std::string kit) {
  auto [task_r, task_w] = pool_pipe();
  auto [result_r, result_w] = pool_pipe();
  set_nonblocking(task_w.get());
  set_nonblocking(result_r.get());
  auto w = std::make_unique<Worker>();
  int in_fd = task_r.release(), out_fd = result_w.release();
  int sig = options_.interrupt_signal;
  WorkerMain main = options_.main;
  w->thread = std::thread([main, in_fd, out_fd, sig, kit = std::move(kit)]() mutable {
    // Only the interrupt signal reaches a worker thread; the others are the program's.
    sigset_t mask;
    sigfillset(&mask);
    if (sig > 0) sigdelset(&mask, sig);
    pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    try {
      main(in_fd, out_fd, std::move(kit));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "plua: pool worker failed: %s\n", e.what());
    }
    std::string bye;
    pool_wire::append_bye(bye);
    std::string_view rest = bye;
    while (!rest.empty()) {
      ssize_t n = ::write(out_fd, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    close_unregistered(in_fd);
    close_unregistered(out_fd);
  });
  w->task_w = std::move(task_w);
  w->result_r = std::move(result_r);
  return w;
}

std::size_t WorkerPool::window() const noexcept {
  if (chunk_seconds_ < 0) return 1;
  double budget = std::chrono::duration<double>(kAheadBudget).count();
  double n = budget / std::max(chunk_seconds_, 1e-9);
  return static_cast<std::size_t>(std::clamp(n, 1.0, static_cast<double>(kMaxAhead)));
}

void WorkerPool::dispatch() {
  std::size_t ahead = window();
  while (!pending_.empty()) {
    Worker* best = nullptr;
    for (auto& w : workers_) {
      if (w->gone || w->quit_sent) continue;
      if (options_.max_tasks && w->sent >= options_.max_tasks) continue;
      if (w->outstanding.size() >= ahead) continue;
      if (!best || w->outstanding.size() < best->outstanding.size()) best = w.get();
    }
    if (!best) break;
    Chunk c = std::move(pending_.front());
    pending_.pop_front();
    send(*best, std::move(c));
  }
  for (auto& w : workers_)
    if (!w->out.empty() && !w->gone) write_some(*w);
}

void WorkerPool::send(Worker& w, Chunk chunk) {
  std::uint64_t fid = chunk.fn ? chunk.fn->id : 0;
  if (fid != 0 && std::find(w.functions.begin(), w.functions.end(), fid) == w.functions.end()) {
    pool_wire::append_def(w.out, fid, chunk.fn->message);
    w.functions.push_back(fid);
    if (w.functions.size() > pool_wire::kFunctionCache) w.functions.pop_front();
  }
  pool_wire::append_task(w.out, chunk.id, fid, chunk.mode, chunk.payload);
  chunk.delivered = true;
  ++w.sent;
  w.outstanding.push_back(std::move(chunk));
}

void WorkerPool::write_some(Worker& w) {
  std::size_t done = 0;
  while (done < w.out.size()) {
    ssize_t n = ::write(w.task_w.get(), w.out.data() + done, w.out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // EPIPE: the worker is gone; its pidfd (or bye) tells the rest.
      done = w.out.size();
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  w.out.erase(0, done);
}

void WorkerPool::read_results(Worker& w) {
  bool progress = false;
  for (;;) {
    long n;
    try {
      n = w.in.read_from(w.result_r.get());
    } catch (const std::system_error&) {
      n = 0;
    }
    Frame f;
    try {
      while (w.in.next(f)) {
        if (f.type == FrameType::result) {
          on_result(w, f);
          progress = true;
        } else if (f.type == FrameType::bye) {
          on_worker_gone(w, std::nullopt, false);
          progress = true;
        }
      }
    } catch (const std::runtime_error&) {
      // A worker that speaks nonsense is not trusted with more work.
      if (w.child) w.child->send_signal(SIGKILL);
      n = 0;
    }
    if (n <= 0 || w.gone) break;
  }
  if (progress) cv_.notify_all();
}

void WorkerPool::on_result(Worker& w, const Frame& f) {
  auto it = std::find_if(w.outstanding.begin(), w.outstanding.end(),
                         [&](const Chunk& c) { return c.id == f.id; });
  if (it == w.outstanding.end()) return;
  Chunk chunk = std::move(*it);
  w.outstanding.erase(it);
  chunk_seconds_ = chunk_seconds_ < 0 ? f.seconds : 0.8 * chunk_seconds_ + 0.2 * f.seconds;
  ChunkOutcome outcome;
  outcome.status = f.ok ? ChunkOutcome::Status::ok : ChunkOutcome::Status::error;
  if (!f.ok && state_ == State::terminating) {
    // The error is terminate's own interrupt of the task.
    outcome.status = ChunkOutcome::Status::terminated;
  } else {
    outcome.payload.assign(f.payload);
  }
  finish_chunk(chunk, std::move(outcome));
}

void WorkerPool::finish_chunk(Chunk& chunk, ChunkOutcome outcome) {
  if (!chunk.delivered && options_.discard && !chunk.payload.empty()) options_.discard(chunk.payload);
  PoolJob& job = *chunk.job;
  if (job.outcomes_[chunk.index]) return;
  bool was_ready = job.ready();
  bool failed = outcome.status != ChunkOutcome::Status::ok;
  job.outcomes_[chunk.index] = std::move(outcome);
  job.arrivals_.push_back(chunk.index);
  ++job.done_;
  if (failed && !job.failure_) job.failure_ = chunk.index;
  if (!was_ready && job.ready() && job.callbacks_) callback_jobs_.push_back(chunk.job);
}

void WorkerPool::on_worker_gone(Worker& w, std::optional<int> exitcode, bool terminated) {
  if (w.gone) return;
  w.gone = true;
  bool stopping = terminated || state_ == State::terminating;
  // The first chunk held is the one that was running; the rest never started.
  bool first = true;
  while (!w.outstanding.empty()) {
    Chunk c = std::move(w.outstanding.front());
    w.outstanding.pop_front();
    if (first || stopping) {
      ChunkOutcome lost;
      lost.status = stopping ? ChunkOutcome::Status::terminated : ChunkOutcome::Status::lost;
      lost.pid = w.pid;
      lost.exitcode = exitcode.value_or(0);
      finish_chunk(c, std::move(lost));
      first = false;
    } else {
      pending_.push_front(std::move(c));
    }
  }
  // Requeued chunks went in reverse; put them back in their original order.
  std::stable_sort(pending_.begin(), pending_.end(),
                   [](const Chunk& a, const Chunk& b) { return a.id < b.id; });
  if (w.thread.joinable()) w.thread.join();
  w.task_w.reset();
  w.result_r.reset();
  cv_.notify_all();
}

void WorkerPool::stop_workers(std::unique_lock<std::mutex>& lock) {
  for (auto& w : workers_) {
    if (w->gone) continue;
    if (w->child) {
      try {
        w->child->send_signal(SIGKILL);
      } catch (const std::exception&) {
        // Already reaped: nothing left to stop.
      }
    } else {
      pool_wire::append_quit(w->out);
      w->quit_sent = true;
      write_some(*w);
    }
  }
  // Wait for each: processes through their pidfd, threads until they say bye.
  while (std::any_of(workers_.begin(), workers_.end(), [](auto& w) { return !w->gone; })) {
    std::vector<pollfd> fds;
    std::vector<Worker*> owners;
    auto now = std::chrono::steady_clock::now();
    for (auto& w : workers_) {
      if (w->gone) continue;
      if (w->child) {
        if (w->child->pidfd() < 0) {
          on_worker_gone(*w, w->child->poll(), true);
          continue;
        }
        fds.push_back({w->child->pidfd(), POLLIN, 0});
      } else {
        if (options_.interrupt_signal > 0 && now - w->last_interrupt >= kWaitSlice) {
          pthread_kill(w->thread.native_handle(), options_.interrupt_signal);
          w->last_interrupt = now;
        }
        fds.push_back({w->result_r.get(), POLLIN, 0});
      }
      owners.push_back(w.get());
    }
    if (fds.empty()) continue;
    lock.unlock();
    ::poll(fds.data(), fds.size(), static_cast<int>(kWaitSlice.count()));
    lock.lock();
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      Worker* w = owners[i];
      if (w->gone) continue;
      if (w->child) {
        read_results(*w);
        on_worker_gone(*w, w->child->poll(), true);
      } else {
        read_results(*w);
      }
    }
  }
  workers_.clear();
  fail_pending(ChunkOutcome::Status::terminated);
}

void WorkerPool::fail_pending(ChunkOutcome::Status status) {
  while (!pending_.empty()) {
    Chunk c = std::move(pending_.front());
    pending_.pop_front();
    ChunkOutcome o;
    o.status = status;
    finish_chunk(c, std::move(o));
  }
  cv_.notify_all();
}

}  // namespace plua::core
