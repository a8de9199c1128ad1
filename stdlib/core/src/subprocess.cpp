#include "plua/core/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "plua/core/subprocess_reaper.hpp"

extern char** environ;

namespace plua::core {
namespace {

std::string python_message(int err, const std::string& filename) {
  std::string text = "[Errno " + std::to_string(err) + "] " + std::generic_category().message(err);
  if (!filename.empty()) text += ": '" + filename + "'";
  return text;
}

// What the child reports through the error pipe when it cannot exec.
struct ChildFailure {
  enum Step : int { kStdio = 1, kChdir = 2, kExec = 3 } step;
  int err;
};

// Everything the child needs, prepared by the parent: between fork and exec
// only async-signal-safe calls run, so nothing is allocated there.
struct ChildPlan {
  const char* const* argv;
  const char* const* envp;        // nullptr: the parent's environ
  const char* const* candidates;  // full paths to try, in order, null-terminated
  const char* cwd;                // nullptr: stay
  int stdio[3];                   // >= 3: dup2 to 0/1/2; -1: leave; kFromStdout: dup2(1, 2)
  int error_fd;                   // close-on-exec write end of the error pipe
  int max_fd;                     // for closing descriptors where close_range is missing
};
constexpr int kFromStdout = -2;

[[noreturn]] void report_and_exit(int fd, ChildFailure::Step step, int err) {
  ChildFailure failure{step, err};
  ssize_t unused = ::write(fd, &failure, sizeof failure);
  (void)unused;
  ::_exit(127);
}

// Closes every descriptor >= lowest except `keep` (the error pipe).
void close_from(int lowest, int keep, int max_fd) {
  auto close_span = [max_fd](unsigned first, unsigned last) {
    if (first > last) return;
    if (::syscall(SYS_close_range, first, last, 0) == 0) return;
    for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(max_fd); ++fd) ::close(static_cast<int>(fd));
  };
  close_span(static_cast<unsigned>(lowest), static_cast<unsigned>(keep) - 1);
  close_span(static_cast<unsigned>(keep) + 1, ~0U);
}

// The child's side of spawn(): only async-signal-safe calls from here to exec.
[[noreturn]] void exec_child(const ChildPlan& plan, const sigset_t& clean_mask) {
  // Default dispositions, so no parent handler runs here and no ignored signal
  // (SIGPIPE, say) is inherited by the program.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction old;
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler != SIG_DFL) ::sigaction(sig, &dfl, nullptr);
  }
  for (int i = 0; i < 3; ++i) {
    int src = plan.stdio[i];
    if (src >= 0 && ::dup2(src, i) < 0) report_and_exit(plan.error_fd, ChildFailure::kStdio, errno);
    if (src == kFromStdout && ::dup2(1, 2) < 0) report_and_exit(plan.error_fd, ChildFailure::kStdio, errno);
  }
  if (plan.cwd && ::chdir(plan.cwd) != 0) report_and_exit(plan.error_fd, ChildFailure::kChdir, errno);
  close_from(3, plan.error_fd, plan.max_fd);
  // plua's threads block SIGINT; the program gets a clean mask.
  ::sigprocmask(SIG_SETMASK, &clean_mask, nullptr);
  char* const* envp = const_cast<char* const*>(plan.envp ? plan.envp : environ);
  int saved = 0;
  for (const char* const* path = plan.candidates; *path; ++path) {
    ::execve(*path, const_cast<char* const*>(plan.argv), envp);
    // As execvp: a missing entry of PATH means "try the next"; other errors are kept.
    if (errno != ENOENT && errno != ENOTDIR && saved == 0) saved = errno;
  }
  report_and_exit(plan.error_fd, ChildFailure::kExec, saved ? saved : errno);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitizers keep per-thread state that a child sharing our memory would
// corrupt: plain fork there.
pid_t start_child(const ChildPlan& plan, const sigset_t& clean_mask) {
  pid_t pid = ::fork();
  if (pid == 0) exec_child(plan, clean_mask);
  return pid;
}
#else
struct ChildStart {
  const ChildPlan* plan;
  const sigset_t* clean_mask;
};

int child_entry(void* arg) {
  auto* start = static_cast<ChildStart*>(arg);
  exec_child(*start->plan, *start->clean_mask);
}

// As glibc's posix_spawn: the child shares our memory and runs on its own
// stack until exec, and this thread sleeps meanwhile (CLONE_VFORK). No page
// tables are copied, so starting a program costs the same from a big process.
pid_t start_child(const ChildPlan& plan, const sigset_t& clean_mask) {
  constexpr std::size_t kStackSize = 64 * 1024;
  void* stack = ::mmap(nullptr, kStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -1;
  ChildStart start{&plan, &clean_mask};
  pid_t pid = ::clone(child_entry, static_cast<char*>(stack) + kStackSize, CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
  int saved = errno;
  ::munmap(stack, kStackSize);
  errno = saved;
  return pid;
}
#endif

// The directories of PATH as the child would search them.
std::vector<std::string> exec_candidates(const SpawnOptions& options) {
  const std::string& program = options.argv.front();
  if (program.find('/') != std::string::npos) return {program};
  std::string path = "/bin:/usr/bin";  // Python's os.defpath, when PATH is unset
  if (options.env) {
    for (const std::string& entry : *options.env)
      if (entry.rfind("PATH=", 0) == 0) path = entry.substr(5);
  } else if (const char* parent = std::getenv("PATH")) {
    path = parent;
  }
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    out.push_back(dir.empty() ? program : dir + "/" + program);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

OwnedFd open_pidfd(pid_t pid) {
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  return OwnedFd(fd < 0 ? -1 : static_cast<int>(fd));
}

// Blocks every signal in the calling thread for its lifetime, so that no
// handler runs in the child between fork and exec.
class SignalsBlocked {
 public:
  SignalsBlocked() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_);
  }
  ~SignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalsBlocked(const SignalsBlocked&) = delete;
  SignalsBlocked& operator=(const SignalsBlocked&) = delete;

 private:
  sigset_t saved_;
};

}  // namespace

SpawnError::SpawnError(int err, std::string filename)
    : std::system_error(err, std::generic_category()),
      filename_(std::move(filename)),
      message_(python_message(err, filename_)) {}

Subprocess::Subprocess(pid_t pid, OwnedFd pidfd) noexcept : pid_(pid), pidfd_(std::move(pidfd)) {}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      returncode_(std::exchange(other.returncode_, std::nullopt)),
      stdin_(std::move(other.stdin_)),
      stdout_(std::move(other.stdout_)),
      stderr_(std::move(other.stderr_)) {}

Subprocess::~Subprocess() {
  if (pid_ <= 0 || returncode_) return;
  if (!poll()) reap_later(pid_, std::move(pidfd_));
}

int Subprocess::returncode_from_status(int status) noexcept {
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return status;
}

Subprocess Subprocess::spawn(const SpawnOptions& options) {
  if (options.argv.empty()) throw std::invalid_argument("no program given");

  // Everything the child touches is built here, before fork.
  std::vector<const char*> argv;
  for (const std::string& a : options.argv) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  std::vector<const char*> envp;
  if (options.env) {
    for (const std::string& e : *options.env) envp.push_back(e.c_str());
    envp.push_back(nullptr);
  }
  std::vector<std::string> candidate_strings = exec_candidates(options);
  std::vector<const char*> candidates;
  for (const std::string& c : candidate_strings) candidates.push_back(c.c_str());
  candidates.push_back(nullptr);

  // The child's ends are kept at 3 or above, so dup2 onto 0..2 never clobbers another.
  OwnedFd child_ends[3];
  OwnedFd parent_ends[3];
  OwnedFd devnull;
  const StdioSpec* specs[3] = {&options.stdin_, &options.stdout_, &options.stderr_};
  int stdio[3] = {-1, -1, -1};
  for (int i = 0; i < 3; ++i) {
    const StdioSpec& spec = *specs[i];
    switch (spec.kind) {
      case StdioSpec::Kind::Inherit:
        break;
      case StdioSpec::Kind::Pipe: {
        auto [r, w] = make_pipe();
        OwnedFd& child = i == 0 ? r : w;
        child_ends[i] = child.get() < 3 ? duplicate_fd(child.get()) : std::move(child);
        parent_ends[i] = i == 0 ? std::move(w) : std::move(r);
        stdio[i] = child_ends[i].get();
        break;
      }
      case StdioSpec::Kind::DevNull:
        if (!devnull) devnull = open_devnull();
        if (devnull.get() < 3) devnull = duplicate_fd(devnull.get());
        stdio[i] = devnull.get();
        break;
      case StdioSpec::Kind::Fd:
        if (spec.fd < 0) throw std::invalid_argument("bad file descriptor " + std::to_string(spec.fd));
        child_ends[i] = duplicate_fd(spec.fd);
        stdio[i] = child_ends[i].get();
        break;
      case StdioSpec::Kind::Stdout:
        if (i != 2) throw std::invalid_argument("STDOUT is only valid for stderr");
        stdio[i] = kFromStdout;
        break;
    }
  }

  auto [error_read, error_write] = make_pipe();
  if (error_write.get() < 3) error_write = duplicate_fd(error_write.get());
  struct rlimit limit {};
  int max_fd = (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
                limit.rlim_cur < static_cast<rlim_t>(INT_MAX))
                   ? static_cast<int>(limit.rlim_cur)
                   : 65536;
  ChildPlan plan{argv.data(),
                 options.env ? envp.data() : nullptr,
                 candidates.data(),
                 options.cwd ? options.cwd->c_str() : nullptr,
                 {stdio[0], stdio[1], stdio[2]},
                 error_write.get(),
                 max_fd};
  sigset_t clean_mask;
  sigemptyset(&clean_mask);

  pid_t pid;
  {
    SignalsBlocked blocked;
    pid = start_child(plan, clean_mask);
  }
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  Subprocess child(pid, open_pidfd(pid));
  error_write.reset();
  for (OwnedFd& fd : child_ends) fd.reset();
  devnull.reset();

  // EOF on the error pipe means exec succeeded (the pipe closed on exec).
  ChildFailure failure{};
  std::size_t got = 0;
  while (got < sizeof failure) {
    ssize_t n = ::read(error_read.get(), reinterpret_cast<char*>(&failure) + got, sizeof failure - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == sizeof failure) {
    // The child exits at once after reporting: reap it here, no zombie.
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    child.pid_ = -1;
    std::string filename = failure.step == ChildFailure::kChdir  ? *options.cwd
                           : failure.step == ChildFailure::kExec ? options.argv.front()
                                                                 : std::string();
    throw SpawnError(failure.err, filename);
  }
  child.stdin_ = std::move(parent_ends[0]);
  child.stdout_ = std::move(parent_ends[1]);
  child.stderr_ = std::move(parent_ends[2]);
  return child;
}

std::optional<int> Subprocess::poll() {
  if (returncode_ || pid_ <= 0) return returncode_;
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid_, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == pid_) {
    returncode_ = returncode_from_status(status);
  } else if (r < 0 && errno == ECHILD) {
    // Someone else reaped it (SIGCHLD ignored, say): Python reports 0 too.
    returncode_ = 0;
  }
  if (returncode_) pidfd_.reset();
  return returncode_;
}

std::optional<int> Subprocess::wait(const Deadline& deadline) {
  StopFlag& stop = this_thread_stop_flag();
  // Without a pidfd, poll waitpid with a growing pause, as Python does.
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    if (poll()) return returncode_;
    stop.throw_if_requested();
    if (deadline.expired()) return std::nullopt;
    auto slice = deadline.next_slice();
    if (pidfd_) {
      struct pollfd p{pidfd_.get(), POLLIN, 0};
      int ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(slice).count());
      ::poll(&p, 1, ms);
    } else {
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(slice, pause));
      pause = std::min<std::chrono::microseconds>(pause * 2, kWaitSlice);
    }
  }
}

void Subprocess::send_signal(int sig) {
  if (poll() || pid_ <= 0) return;
  // Through the pidfd where there is one: immune to pid reuse.
  int rc = pidfd_ ? static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0))
                  : ::kill(pid_, sig);
  if (rc != 0 && errno != ESRCH) throw std::system_error(errno, std::generic_category(), "send_signal");
}

}  // namespace plua::core
