// Threads of execution with Python's threading vocabulary: a name, an ident,
// a native id, alive/finished, an interruptible join, and a process-wide
// registry for enumerate()/active_count(). No Lua in it: a body is a
// std::function, its outcome is bytes the binding chooses.
//
// OS threads are reused: a finished body leaves its OS thread parked for a
// short while (kIdleKeepAlive) so the next start() skips thread creation,
// which is most of the cost of a short-lived thread. Every OS thread this file
// creates has SIGINT blocked, so Ctrl-C reaches the process's main thread.
//
// Thread-safety: every member may be called from any thread.
// Fork: in a child process only the forking thread exists; the registry and
// the parked threads are reset there (pthread_atfork), threads started in the
// parent read as finished and the forking thread becomes the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "plua/core/cancel.hpp"

namespace plua::core {

// How long a parked OS thread waits for a new body before it exits.
inline constexpr std::chrono::milliseconds kIdleKeepAlive{2000};
// How long a parked OS thread, and a joiner, poll before they block (spin_wait.hpp).
inline constexpr std::chrono::microseconds kParkedSpin{50};
inline constexpr std::chrono::microseconds kJoinSpin{50};

// Python's RuntimeError cases: starting a thread twice, joining one never
// started, a thread joining itself.
class ThreadStateError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

class Thread : public std::enable_shared_from_this<Thread> {
 public:
  using Body = std::function<void()>;

  // What a body leaves for whoever reads the outcome (the binding's encoding).
  struct Outcome {
    bool ok = true;
    std::string values;     // encoded return values (ok) or error value (not ok)
    std::string message;    // not ok: the error as text
    std::string traceback;  // not ok: where it was raised
    // Releases what `values` holds (references to shared objects) if the
    // Thread is destroyed with the outcome unread; may be null.
    void (*discard)(std::string_view values) noexcept = nullptr;
  };

  struct Options {
    std::string name;     // empty: "Thread-N", numbered as Python does
    bool daemon = false;  // daemon threads are not waited for at exit
    bool timer = false;   // a Timer (a thread whose body waits to be cancelled first)
    // Whose exit waits for it (join_non_daemon): one group per program or
    // embedded runtime; 0 is no group, which every exit waits for.
    std::uint64_t group = 0;
  };

  // A thread that is not started yet.
  static std::shared_ptr<Thread> create(Options options);

  // Runs body on an OS thread. Throws ThreadStateError if started before.
  void start(Body body);

  // Waits until the body has finished (true) or the deadline passes (false).
  // Throws ThreadStateError for a thread never started or for the calling
  // thread itself, and Interrupted when the caller is asked to stop.
  bool join(const Deadline& deadline);

  bool started() const noexcept { return state_.load(std::memory_order_acquire) != State::created; }
  bool is_alive() const noexcept { return state_.load(std::memory_order_acquire) == State::running; }
  bool finished() const noexcept { return state_.load(std::memory_order_acquire) == State::finished; }
  bool daemon() const noexcept { return daemon_.load(std::memory_order_acquire); }
  // Before start() only, as Python's Thread.daemon; throws ThreadStateError after.
  void set_daemon(bool daemon);
  std::uint64_t group() const noexcept { return group_; }
  bool is_timer() const noexcept { return timer_; }
  bool is_main() const noexcept { return main_; }
  std::string name() const;
  void set_name(std::string name);
  // pthread_self() of the OS thread running the body; nullopt before start.
  std::optional<std::uint64_t> ident() const;
  // The kernel's thread id (gettid); nullopt before start.
  std::optional<std::int64_t> native_id() const;

  // Set by the body before it returns; read after join. Replacing an outcome
  // does not discard the old one (its reader took what it held).
  void set_outcome(Outcome outcome);
  // The outcome once finished, nullopt before.
  std::optional<Outcome> outcome() const;

  // A one-shot cancel request a body may wait on (Timer's cancel()).
  void cancel();
  bool cancelled() const;
  // Waits until cancel() (true) or the deadline (false); interruptible.
  bool wait_cancelled(const Deadline& deadline);

  // The Thread running the calling OS thread: the body's Thread inside a
  // body, the main thread on the process's main thread, otherwise a "Dummy-N"
  // thread made for this OS thread (as Python's _DummyThread).
  static std::shared_ptr<Thread> current();
  // The process's main thread ("MainThread").
  static std::shared_ptr<Thread> main_thread();
  // Every alive thread, the main thread first, then in order of start.
  static std::vector<std::shared_ptr<Thread>> enumerate();
  static std::size_t active_count();
  // pthread_self() of the calling thread, as Python's get_ident().
  static std::uint64_t current_ident() noexcept;
  // True when the calling OS thread is running a body started here.
  static bool in_started_thread() noexcept;
  // A group number never handed out before (never 0).
  static std::uint64_t new_group() noexcept;
  // Joins every alive non-daemon thread of `group` and of no group (the exit
  // rule), including threads started meanwhile; interruptible, gives up at
  // the deadline (false).
  static bool join_non_daemon(const Deadline& deadline, std::uint64_t group);
  // Sets the function an OS thread of this file runs each time it has parked
  // after a body (its joiners already released, no lock held): the place to
  // ready what the next body on that OS thread needs. Process-wide; nullptr
  // for none. A body handed over meanwhile starts when the hook returns.
  static void set_park_hook(void (*hook)() noexcept) noexcept;

  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;

 private:
  enum class State { created, running, finished };
  struct Token {};

 public:
  Thread(Token, Options options, bool main);  // use create()
  ~Thread();

 private:
  friend struct ThreadInternals;
  // Runs the body on the calling OS thread; the caller then marks it finished.
  void run(Body& body) noexcept;
  void forget_current() noexcept;
  void mark_finished() noexcept;

  std::atomic<bool> daemon_;
  const bool timer_;
  const bool main_;
  const std::uint64_t group_;
  std::atomic<State> state_{State::created};
  std::atomic<std::uint64_t> ident_{0};
  std::atomic<std::int64_t> native_id_{0};
  mutable std::mutex mu_;
  std::condition_variable finished_cv_;
  std::string name_;                 // guarded by mu_
  std::optional<Outcome> outcome_;   // guarded by mu_
  bool cancelled_ = false;           // guarded by mu_
};

}  // namespace plua::core
