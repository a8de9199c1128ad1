#include "cli_options.hpp"

#include <cstring>

namespace plua::cli {

Options parse(int argc, char** argv) {
  Options opts;
  int i = 1;
  for (; i < argc; ++i) {
    const char* a = argv[i];
    if (a[0] != '-') break;  // the script
    if (std::strcmp(a, "-") == 0) break;  // script from stdin
    if (std::strcmp(a, "--") == 0) {
      ++i;
      break;
    }
    switch (a[1]) {
      case 'i':
      case 'v':
      case 'E':
      case 'W':
        if (a[2] != '\0') {
          opts.error = std::string("unrecognized option '") + a + "'";
          return opts;
        }
        if (a[1] == 'i') opts.interactive = true;  // implies the banner (main), as lua's -i implies -v
        if (a[1] == 'v') opts.version = true;
        if (a[1] == 'E') opts.ignore_environment = true;
        if (a[1] == 'W') opts.warnings = true;
        break;
      case 'e':
      case 'l': {
        const char* value = a[2] != '\0' ? a + 2 : (i + 1 < argc ? argv[++i] : nullptr);
        // As lua: a separate argument that looks like an option is not taken as the value.
        if (value == nullptr || (a[2] == '\0' && value[0] == '-')) {
          opts.error = std::string("'") + a + "' needs argument";
          return opts;
        }
        opts.actions.push_back({a[1] == 'e' ? Action::Kind::execute : Action::Kind::require, value});
        break;
      }
      default:
        opts.error = std::string("unrecognized option '") + a + "'";
        return opts;
    }
  }
  opts.script_index = i < argc ? i : 0;
  return opts;
}

std::string usage(const char* program) {
  std::string p = program;
  return "usage: " + p + " [options] [script [args]]\n"
         "Available options are:\n"
         "  -e stat   execute string 'stat'\n"
         "  -i        enter interactive mode after executing 'script'\n"
         "  -l mod    require library 'mod' into global 'mod'\n"
         "  -l g=mod  require library 'mod' into global 'g'\n"
         "  -v        show version information\n"
         "  -E        ignore environment variables\n"
         "  -W        turn warnings on\n"
         "  --        stop handling options\n"
         "  -         stop handling options and execute stdin\n";
}

}  // namespace plua::cli
