// Where the REPL's lines come from: GNU readline (line editing, persistent
// history, Tab completion) when stdin is a terminal, plain reads otherwise.
// Ctrl-C while a line is being typed discards it.
#pragma once

#include <string>

#include "plua/lua/lua.hpp"

namespace plua::host {

class LineReader {
 public:
  // History entries kept in memory and in the history file.
  static constexpr int kHistorySize = 1000;

  // Completes against L's globals. Only one LineReader may exist at a time
  // (readline's state is global).
  explicit LineReader(lua_State* L);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  enum class Status { line, interrupted, end };
  struct Result {
    Status status;
    std::string text;  // the line, without its newline (Status::line only)
  };

  // Shows the prompt (on stderr when stdin is not a terminal, so that stdout
  // carries only results) and reads one line.
  Result read(const char* prompt);

  // Adds a statement to the history (and the history file); empty entries and
  // repeats of the previous entry are skipped.
  void remember(const std::string& entry);

  bool terminal() const noexcept { return terminal_; }

  // The history file: $PLUA_HISTORY if set (empty: none), else ~/.plua_history.
  // It holds one entry a line, a newline inside an entry written as \n and a
  // backslash as \\, after a header line; a file without the header (an older
  // plua's, or readline's) is read one entry a line, then converted.
  static std::string history_path();

 private:
  Result read_terminal(const char* prompt);
  Result read_plain(const char* prompt);

  bool terminal_;
  std::string history_file_;  // empty: history is not persisted
  std::string pending_;       // plain mode: bytes read beyond the last line returned
  bool eof_ = false;          // plain mode: stdin reached its end
};

}  // namespace plua::host
