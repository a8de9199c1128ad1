#include "line_reader.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <string_view>
#include <utility>
#include <vector>

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

// The history file's first line in the form that holds one entry a line, a
// newline in an entry written as \n and a backslash as \\ (a multi-line
// statement comes back whole). A file without it is the older form: one
// entry a physical line, read as it is. It is a Lua comment, so recalling
// it by mistake (an older plua reading the file) is harmless.
constexpr const char* kHistoryHeader = "-- plua history v2: one entry a line, \\n for a newline, \\\\ for a backslash";

std::string encode_entry(const std::string& entry) {
  std::string out;
  out.reserve(entry.size() + 8);
  for (char c : entry) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string decode_entry(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size() && (line[i + 1] == 'n' || line[i + 1] == '\\')) {
      out += line[i + 1] == 'n' ? '\n' : '\\';
      ++i;
    } else {
      out += line[i];  // a lone backslash (a hand-edited file) stays as it is
    }
  }
  return out;
}

// The entries of a history file in either form; `current` tells whether it
// was in the current form (an empty or missing file counts as current).
std::vector<std::string> load_entries(const std::string& path, bool* current) {
  std::vector<std::string> entries;
  *current = true;
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) return entries;
  std::string text;
  char buf[8192];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  std::size_t at = 0;
  bool first = true;
  while (at < text.size()) {
    std::size_t nl = text.find('\n', at);
    std::string_view line(text.data() + at, (nl == std::string::npos ? text.size() : nl) - at);
    at = nl == std::string::npos ? text.size() : nl + 1;
    if (first) {
      first = false;
      *current = line == kHistoryHeader;
      if (*current) continue;
    }
    if (line.empty()) continue;
    entries.push_back(*current ? decode_entry(line) : std::string(line));
  }
  return entries;
}

// Replaces the file with the header and the last `keep` entries, atomically
// (a new file renamed over the old one), so a crash never leaves half a file.
void rewrite_history(const std::string& path, const std::vector<std::string>& entries, std::size_t keep) {
  std::string text = std::string(kHistoryHeader) + "\n";
  for (std::size_t i = entries.size() > keep ? entries.size() - keep : 0; i < entries.size(); ++i)
    text += encode_entry(entries[i]) + "\n";
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  bool ok = true;
  for (std::size_t done = 0; ok && done < text.size();) {
    ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w > 0) done += static_cast<std::size_t>(w);
    else ok = w < 0 && errno == EINTR;
  }
  ok = ::close(fd) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) ::unlink(tmp.c_str());
}

// Appends one entry with one write, so sessions appending at once do not mix lines.
void append_entry(const std::string& path, const std::string& entry) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;
  std::string line = encode_entry(entry) + "\n";
  [[maybe_unused]] ssize_t w = ::write(fd, line.data(), line.size());
  ::close(fd);
}

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
    // A file we cannot create or write means no persistence.
    int fd = ::open(history_file_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      history_file_.clear();
    } else {
      ::close(fd);
      bool current = true;
      std::vector<std::string> entries = load_entries(history_file_, &current);
      std::size_t first = entries.size() > kHistorySize ? entries.size() - kHistorySize : 0;
      for (std::size_t i = first; i < entries.size(); ++i) add_history(entries[i].c_str());
      // An empty file gets its header; one of the older form is converted once.
      if (!current || entries.empty()) rewrite_history(history_file_, entries, kHistorySize);
    }
  }
}

LineReader::~LineReader() {
  if (!terminal_) return;
  if (!history_file_.empty()) {
    // Other sessions may have appended too: keep the file's own last entries.
    bool current = true;
    std::vector<std::string> entries = load_entries(history_file_, &current);
    if (!current || entries.size() > kHistorySize) rewrite_history(history_file_, entries, kHistorySize);
  }
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
  if (!history_file_.empty()) append_entry(history_file_, entry);
}

}  // namespace plua::host
