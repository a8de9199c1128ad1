// The engine behind pool.Pool and pool.ThreadPool: long-lived workers (fork
// children or threads) fed by one manager thread, with the tasks they hold
// accounted for, so a worker that dies fails exactly the task it was running
// and is replaced (Python's Pool hangs instead: bpo-22393).
//
// Roles:
//  - the owner (the thread whose Lua state made the pool) submits jobs of
//    encoded chunks, waits for them and takes their outcomes;
//  - the manager thread owns the workers: it starts and replaces them, sends
//    chunks (pool_wire frames over a pipe pair per worker), reads results,
//    watches processes through their pidfds;
//  - a worker runs Options::main (the Lua binding's task loop) with its two
//    pipe ends; a process worker _exits with main's status.
//
// Dispatch: one FIFO of pending chunks for the whole pool; a chunk goes to an
// idle worker first. A busy worker is sent more chunks ahead only while chunks
// are measured to be short (its queue stays under ~kAheadBudget of work), so
// small tasks stream without a round trip each while a slow task never holds
// up a queue of others behind it. Workers run their chunks in order, so when
// one dies the first chunk it holds is the one it was running: that one fails
// (ChunkOutcome::lost, with the pid and exit code) and the others go back to
// the front of the queue.
//
// Start kits: each new worker is given one opaque message (the binding's
// globals snapshot and initializer). A reusable kit serves every worker;
// otherwise each worker consumes one, and when they run out the pool asks the
// owner for more (kits_wanted(), and waits return Wake::service).
//
// Owners: a pool may be used from several threads' Lua states. Each user
// names itself with an owner id: a job's callbacks are taken, and a wait
// wakes for service, only by the owner that submitted it. Owner 0 (the
// default) is the state that made the pool: it alone is asked for start
// kits.
//
// Thread-safety: every public method may be called from any thread; one
// mutex guards all state. Lock order: the pool mutex, then nothing else
// (forks and thread starts happen with it released).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "plua/core/cancel.hpp"
#include "plua/core/owned_fd.hpp"
#include "plua/core/pool_wire.hpp"

namespace plua::core {

class ChildProcess;

// Raised by submit() once the pool is closed or terminated.
class PoolNotRunning : public std::logic_error {
 public:
  PoolNotRunning() : std::logic_error("Pool not running") {}
};

// What became of one chunk.
struct ChunkOutcome {
  enum class Status : std::uint8_t { ok, error, lost, terminated };
  Status status = Status::ok;
  std::string payload;  // ok: the results; error: {error value, traceback}
  pid_t pid = 0;        // lost: the worker process (0 for a thread)
  int exitcode = 0;     // lost: Python's exitcode (-N: killed by signal N)
};

// A function as workers receive it: an id they cache it by (0: not cacheable,
// the function then travels inside every chunk) and its codec message.
struct PoolFunction {
  std::uint64_t id = 0;
  std::string message;
};

// The body of an AsyncResult or imap iterator: the outcomes of its chunks.
// Read through WorkerPool's methods (the pool's mutex guards it).
class PoolJob {
 public:
  PoolJob(std::size_t chunks, bool callbacks, void (*discard)(std::string_view) noexcept);
  ~PoolJob();
  PoolJob(const PoolJob&) = delete;
  PoolJob& operator=(const PoolJob&) = delete;
  std::size_t chunks() const noexcept { return outcomes_.size(); }

 private:
  friend class WorkerPool;
  bool ready() const noexcept { return done_ == outcomes_.size() || failure_.has_value(); }
  std::vector<std::optional<ChunkOutcome>> outcomes_;
  std::vector<bool> taken_;
  std::vector<std::size_t> arrivals_;  // chunk indices in the order they ended
  std::size_t done_ = 0;
  std::size_t queued_ = 0;  // chunks handed to the pool so far (streamed jobs grow)
  std::shared_ptr<const PoolFunction> fn_;  // a streamed job's function and mode
  pool_wire::TaskMode mode_ = pool_wire::TaskMode::apply;
  std::optional<std::size_t> failure_;  // the first chunk that did not succeed
  bool callbacks_;
  std::uint64_t owner_ = 0;  // who runs its callbacks (see "Owners" above)
  void (*discard_)(std::string_view) noexcept;
};

class WorkerPool {
 public:
  enum class Kind { processes, threads };
  // The worker's task loop: runs until quit (or max_tasks chunks, or end of
  // input) and returns the worker's exit status. Called in the fork child or
  // on the new thread; the descriptors are closed after it returns.
  using WorkerMain = std::function<int(int in_fd, int out_fd, std::string kit)>;

  struct Options {
    Kind kind = Kind::processes;
    std::size_t workers = 1;
    std::uint64_t max_tasks = 0;  // chunks per worker before it is replaced (0: no limit)
    WorkerMain main;
    // Releases the by-reference objects of a message never decoded.
    void (*discard)(std::string_view) noexcept = nullptr;
    // Threads: a signal whose handler interrupts the receiving thread's task
    // (sent to a worker thread by terminate); 0: none.
    int interrupt_signal = 0;
    // Processes: called on the manager thread right before it forks a
    // worker, with the pool unlocked (what it leaves in thread-local storage
    // the worker's main sees); may be empty.
    std::function<void()> before_fork;
  };

  // Work queued ahead of a busy worker stays under about this much time.
  static constexpr std::chrono::microseconds kAheadBudget{2000};
  static constexpr std::size_t kMaxAhead = 256;

  // Starts the manager and the first workers (returns once they are
  // started). `kits` must hold one kit, reused by every worker, when
  // reusable_kit; otherwise one per worker is best (more are asked for).
  // Throws std::system_error when the manager cannot start.
  WorkerPool(Options options, std::vector<std::string> kits, bool reusable_kit);
  // Terminates (if not already joined) and waits for the manager.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  Kind kind() const noexcept { return options_.kind; }
  std::size_t size() const noexcept { return options_.workers; }
  std::uint64_t next_function_id() noexcept { return next_function_.fetch_add(1) + 1; }

  // Queues a job: one chunk per payload, all run with `fn` in `mode`.
  // Throws PoolNotRunning after close() or terminate().
  std::shared_ptr<PoolJob> submit(std::shared_ptr<const PoolFunction> fn, pool_wire::TaskMode mode,
                                  std::vector<std::string> payloads, bool callbacks, std::uint64_t owner = 0);

  // A job streamed chunk by chunk, so workers start on the first while the
  // owner still encodes the rest: open_job announces `chunks` chunks and
  // queues none; add_chunk queues the next one (after close() or terminate(),
  // or once the job has failed, it ends as terminated instead); abandon ends
  // the chunks not queued yet as terminated, drops those not started, and
  // cancels the job's callbacks (the owner gave up on it). open_job throws
  // PoolNotRunning after close() or terminate().
  std::shared_ptr<PoolJob> open_job(std::shared_ptr<const PoolFunction> fn, pool_wire::TaskMode mode,
                                    std::size_t chunks, bool callbacks, std::uint64_t owner = 0);
  void add_chunk(const std::shared_ptr<PoolJob>& job, std::string payload);
  void abandon(const std::shared_ptr<PoolJob>& job) noexcept;

  // How a wait ended. service: the owner has work to do first (callbacks to
  // run, start kits to make) and should wait again afterwards.
  enum class Wake { done, timeout, service };
  // Waits until the job is ready (every chunk ended, or one failed); service
  // means work for `owner`.
  Wake wait_ready(const PoolJob& job, const Deadline& deadline, std::uint64_t owner = 0);
  // Waits until more than `seen` chunks of the job have ended.
  Wake wait_progress(const PoolJob& job, std::size_t seen, const Deadline& deadline, std::uint64_t owner = 0);
  // Waits until the pool has shut down (after close() or terminate()).
  Wake wait_finished(const Deadline& deadline, std::uint64_t owner = 0);

  bool ready(const PoolJob& job);
  // The first chunk that did not succeed, once there is one.
  std::optional<std::size_t> failure(const PoolJob& job);
  // Chunks ended so far, and the index of the k-th to end (0-based).
  std::size_t arrivals(const PoolJob& job);
  std::size_t arrival(const PoolJob& job, std::size_t k);
  bool has_outcome(const PoolJob& job, std::size_t chunk);
  // Moves chunk i's outcome out (its payload is then the caller's to decode
  // or discard); a second take gets an empty payload.
  ChunkOutcome take(PoolJob& job, std::size_t chunk);

  // The owner's jobs with callbacks that became ready since its last call, in that order.
  std::vector<std::shared_ptr<PoolJob>> take_callback_jobs(std::uint64_t owner = 0);
  // Start kits the pool is waiting for; add_kit hands one over.
  std::size_t kits_wanted();
  void add_kit(std::string kit);

  // No more submissions; workers leave once the queue is done.
  void close();
  // Stops now: workers are killed (threads are interrupted and waited for),
  // chunks not finished end as terminated. Waits until the manager has
  // finished; never throws Interrupted.
  void terminate() noexcept;
  // After close() or terminate(): waits for the shutdown, then joins the
  // manager thread. Throws Interrupted (the pool then keeps shutting down).
  bool join(const Deadline& deadline);
  bool running();
  bool finished();

  // Pids of the live worker processes (threads: empty), for introspection.
  std::vector<pid_t> worker_pids();

 private:
  struct Chunk {
    std::uint64_t id = 0;
    std::shared_ptr<PoolJob> job;
    std::size_t index = 0;
    std::shared_ptr<const PoolFunction> fn;
    pool_wire::TaskMode mode = pool_wire::TaskMode::apply;
    std::string payload;
    bool delivered = false;  // written to a worker: its objects are the worker's now
  };
  struct Worker;
  enum class State { running, closed, terminating };

  void manager_main() noexcept;
  void manager_loop(std::unique_lock<std::mutex>& lock);
  void start_workers(std::unique_lock<std::mutex>& lock);
  std::unique_ptr<Worker> start_process(std::string kit, std::unique_lock<std::mutex>& lock);
  std::unique_ptr<Worker> start_thread(std::string kit);
  void dispatch();
  std::size_t window() const noexcept;
  void send(Worker& w, Chunk chunk);
  void write_some(Worker& w);
  void read_results(Worker& w);
  void on_result(Worker& w, const pool_wire::Frame& f);
  void finish_chunk(Chunk& chunk, ChunkOutcome outcome);
  void on_worker_gone(Worker& w, std::optional<int> exitcode, bool terminated);
  void stop_workers(std::unique_lock<std::mutex>& lock);
  void fail_pending(ChunkOutcome::Status status);
  void queue_chunk(const std::shared_ptr<PoolJob>& job, std::string payload);
  void wake() noexcept;
  bool service_needed(std::uint64_t owner) const noexcept;
  template <class Pred>
  Wake wait_for(const Deadline& deadline, std::uint64_t owner, Pred pred);

  Options options_;
  std::atomic<std::uint64_t> next_function_{0};
  OwnedFd wake_fd_;                   // eventfd the manager polls
  std::atomic<bool> wake_pending_{false};
  std::thread manager_;
  std::mutex join_mu_;                // serialises joining manager_

  std::mutex mu_;
  std::condition_variable cv_;        // any progress: outcomes, shutdown, kits wanted
  State state_ = State::running;      // guarded by mu_
  bool finished_ = false;             // the manager has stopped; guarded by mu_
  bool started_ = false;              // the first workers are started; guarded by mu_
  std::string start_error_;           // why the first workers failed to start; guarded by mu_
  std::deque<Chunk> pending_;         // guarded by mu_
  std::vector<std::unique_ptr<Worker>> workers_;  // guarded by mu_ (touched by the manager only)
  std::deque<std::string> kits_;      // guarded by mu_
  std::string reusable_kit_;          // guarded by mu_
  bool kit_reusable_ = false;
  std::size_t kits_wanted_ = 0;       // guarded by mu_
  std::vector<std::shared_ptr<PoolJob>> callback_jobs_;  // guarded by mu_
  std::uint64_t next_chunk_ = 0;      // guarded by mu_
  double chunk_seconds_ = -1;         // moving average of a chunk's run time (-1: none yet); guarded by mu_
};

}  // namespace plua::core
