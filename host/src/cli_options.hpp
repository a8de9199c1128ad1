// The plua command line, read as lua.c reads it: options first, then the
// script and its arguments.
#pragma once

#include <string>
#include <vector>

namespace plua::cli {

// One -e or -l option, kept in command-line order (they run in that order).
struct Action {
  enum class Kind { execute, require } kind;
  std::string text;  // the code of -e, or "mod" / "g=mod" of -l
};

struct Options {
  std::vector<Action> actions;
  bool interactive = false;       // -i
  bool version = false;           // -v
  bool ignore_environment = false;  // -E
  bool warnings = false;          // -W
  int script_index = 0;           // argv index of the script ("-" for stdin); 0 if none
  std::string error;              // non-empty when the command line is malformed

  // True if some -e was given (it stops plua from starting the REPL, as in lua; -l does not).
  bool has_execute() const {
    for (const Action& a : actions)
      if (a.kind == Action::Kind::execute) return true;
    return false;
  }
};

// Scans argv; on a malformed command line, Options::error says what is wrong.
Options parse(int argc, char** argv);

// The usage text printed for a malformed command line.
std::string usage(const char* program);

}  // namespace plua::cli
