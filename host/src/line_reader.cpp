#include "line_reader.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <utility>

#include <readline/history.h>
#include <readline/readline.h>

#include "completion.hpp"
#include "sigint_guard.hpp"

namespace plua::host {
namespace {

// Readline calls back into plain functions, so the state they need is global.
lua_State* g_state = nullptr;
std::vector<std::string> g_matches;
bool g_line_done = false;
bool g_line_eof = false;
std::string g_line;

char* next_match(const char*, int state) {
  static std::size_t i;
  if (state == 0) i = 0;
  return i < g_matches.size() ? strdup(g_matches[i++].c_str()) : nullptr;
}

char** attempt_completion(const char* text, int, int) {
  rl_attempted_completion_over = 1;  // never fall back to file names
  rl_completion_append_character = '\0';  // so "str<Tab>" + ".fo<Tab>" chains
  if (g_state == nullptr) return nullptr;
  g_matches = completions(g_state, text);
  return rl_completion_matches(text, next_match);
}

void on_line(char* line) {
  g_line_done = true;
  g_line_eof = line == nullptr;
  g_line = line ? line : "";
  std::free(line);
  rl_callback_handler_remove();
}

// Blocks SIGINT for the guard's lifetime, so that it is only taken inside
// ppoll and a Ctrl-C can never slip in between checking the flag and waiting.
class BlockSigint {
 public:
  BlockSigint() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &previous_);
    waiting_ = previous_;
    sigdelset(&waiting_, SIGINT);
  }
  ~BlockSigint() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  // Waits until stdin is readable or a signal arrives (false).
  bool wait_readable() const {
    pollfd p{STDIN_FILENO, POLLIN, 0};
    return ppoll(&p, 1, nullptr, &waiting_) > 0;
  }

 private:
  sigset_t previous_;
  sigset_t waiting_;
};

}  // namespace

std::string LineReader::history_path() {
  if (const char* path = std::getenv("PLUA_HISTORY")) return path;
  const char* home = std::getenv("HOME");
  return home && *home ? std::string(home) + "/.plua_history" : std::string();
}

LineReader::LineReader(lua_State* L) : terminal_(isatty(STDIN_FILENO) != 0) {
  if (!terminal_) return;
  g_state = L;
  rl_readline_name = "plua";
  rl_catch_signals = 0;  // Ctrl-C is ours: it drops the line instead of ending the process
  rl_attempted_completion_function = attempt_completion;
  rl_basic_word_break_characters = const_cast<char*>(kWordBreaks);
  rl_completer_word_break_characters = const_cast<char*>(kWordBreaks);
  using_history();
  stifle_history(kHistorySize);
  history_file_ = history_path();
  if (!history_file_.empty()) {
    // append_history needs an existing file; a file we cannot create means no persistence.
    int fd = ::open(history_file_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      history_file_.clear();
    } else {
      ::close(fd);
      read_history(history_file_.c_str());
    }
  }
}

LineReader::~LineReader() {
  if (!terminal_) return;
  if (!history_file_.empty()) history_truncate_file(history_file_.c_str(), kHistorySize);
  clear_history();
  g_state = nullptr;
  g_matches.clear();
}

LineReader::Result LineReader::read(const char* prompt) {
  return terminal_ ? read_terminal(prompt) : read_plain(prompt);
}

LineReader::Result LineReader::read_terminal(const char* prompt) {
  SigintAtPrompt sigint;
  BlockSigint blocked;
  g_line_done = false;
  rl_callback_handler_install(prompt, on_line);
  while (!g_line_done) {
    if (SigintAtPrompt::take()) {
      // Ctrl-C: forget the line typed so far and start a fresh prompt.
      rl_free_line_state();
      rl_callback_sigcleanup();
      rl_replace_line("", 0);
      rl_point = rl_end = 0;
      rl_callback_handler_remove();
      std::fputs("\n", rl_outstream);
      std::fflush(rl_outstream);
      return {Status::interrupted, {}};
    }
    if (blocked.wait_readable()) rl_callback_read_char();
    else if (errno != EINTR) break;
  }
  if (!g_line_done) rl_callback_handler_remove();
  if (!g_line_done || g_line_eof) return {Status::end, {}};
  return {Status::line, std::move(g_line)};
}

LineReader::Result LineReader::read_plain(const char* prompt) {
  std::fputs(prompt, stderr);
  std::fflush(stderr);
  SigintAtPrompt sigint;
  BlockSigint blocked;
  for (;;) {
    if (auto nl = pending_.find('\n'); nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return {Status::line, std::move(line)};
    }
    if (eof_) {
      if (pending_.empty()) return {Status::end, {}};
      return {Status::line, std::exchange(pending_, {})};
    }
    if (SigintAtPrompt::take()) {
      pending_.clear();
      std::fputs("\n", stderr);
      return {Status::interrupted, {}};
    }
    if (!blocked.wait_readable()) {
      if (errno != EINTR) eof_ = true;
      continue;
    }
    char buf[4096];
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n > 0) pending_.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR) eof_ = true;
  }
}

void LineReader::remember(const std::string& entry) {
  if (!terminal_ || entry.empty()) return;
  if (HIST_ENTRY* last = history_get(history_base + history_length - 1);
      last != nullptr && entry == last->line)
    return;
  add_history(entry.c_str());
  if (!history_file_.empty()) append_history(1, history_file_.c_str());
}

}  // namespace plua::host
