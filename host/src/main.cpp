// The plua executable: lua's command line, plua's modules, and a REPL.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

#include "cli_options.hpp"
#include "plua/lua/interrupt.hpp"
#include "plua/lua/lua.hpp"
#include "plua/lua/process.hpp"
#include "plua/runtime.hpp"
#include "plua/version.hpp"
#include "repl.hpp"
#include "sigint_guard.hpp"

namespace {

const char* g_program = "plua";

void print_error(const plua::Outcome& failure) {
  std::fprintf(stderr, "%s: %s\n", g_program, failure.message.c_str());
  if (!failure.traceback.empty()) std::fprintf(stderr, "%s\n", failure.traceback.c_str());
  std::fflush(stderr);
}

// Builds the global `arg` as lua does: script at 0, its arguments at 1..n,
// the interpreter and options at negative indices; with no script, the
// interpreter is at 0 and the options at 1..n.
void create_arg_table(lua_State* L, int argc, char** argv, int script_index) {
  int script = script_index > 0 ? script_index : 0;
  lua_createtable(L, argc > script ? argc - script - 1 : 0, script + 1);
  for (int i = 0; i < argc; ++i) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

// Runs a loaded chunk (below its nargs arguments) with Ctrl-C armed.
plua::Outcome run_loaded_keep(plua::Runtime& rt, int nargs, int nresults) {
  plua::Outcome out = [&] {
    plua::host::SigintGuard sigint;
    return rt.call(nargs, nresults);
  }();
  plua::lua::clear_interrupt(rt.state());  // a late Ctrl-C must not hit the next chunk
  return out;
}

plua::Outcome run_loaded(plua::Runtime& rt, int nargs) { return run_loaded_keep(rt, nargs, 0); }

plua::Outcome load_failure(lua_State* L) {
  plua::Outcome out{false, lua_tostring(L, -1) ? lua_tostring(L, -1) : "?", ""};
  lua_pop(L, 1);
  return out;
}

// -e CODE
plua::Outcome do_string(plua::Runtime& rt, const std::string& code) {
  lua_State* L = rt.state();
  if (luaL_loadbuffer(L, code.data(), code.size(), "=(command line)") != LUA_OK)
    return load_failure(L);
  return run_loaded(rt, 0);
}

// -l mod or -l g=mod: global g = require "mod".
plua::Outcome do_require(plua::Runtime& rt, const std::string& spec) {
  lua_State* L = rt.state();
  auto eq = spec.find('=');
  std::string global = eq == std::string::npos ? spec : spec.substr(0, eq);
  std::string module = eq == std::string::npos ? spec : spec.substr(eq + 1);
  if (eq == std::string::npos) {
    // As lua 5.4.4: "-l a.b-c" stores into global "a" ... up to the first '-'.
    global = global.substr(0, global.find('-'));
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, module.c_str());
  plua::Outcome out = run_loaded_keep(rt, 1, 1);
  if (out.ok) lua_setglobal(L, global.c_str());
  return out;
}

// The script (or stdin for "-") with its arguments as varargs.
plua::Outcome do_script(plua::Runtime& rt, int argc, char** argv, int script_index) {
  lua_State* L = rt.state();
  const char* name = argv[script_index];
  bool from_stdin = std::strcmp(name, "-") == 0 && std::strcmp(argv[script_index - 1], "--") != 0;
  if (luaL_loadfile(L, from_stdin ? nullptr : name) != LUA_OK) return load_failure(L);
  int nargs = argc - script_index - 1;
  luaL_checkstack(L, nargs + 3, "too many arguments to script");
  for (int i = script_index + 1; i < argc; ++i) lua_pushstring(L, argv[i]);
  return run_loaded(rt, nargs);
}

// LUA_INIT_5_4 or LUA_INIT: "@file" runs a file, anything else is code.
plua::Outcome do_init(plua::Runtime& rt) {
  const char* name = "=LUA_INIT_5_4";
  const char* init = std::getenv("LUA_INIT_5_4");
  if (init == nullptr) {
    name = "=LUA_INIT";
    init = std::getenv("LUA_INIT");
  }
  if (init == nullptr) return {};
  lua_State* L = rt.state();
  int status = init[0] == '@' ? luaL_loadfile(L, init + 1)
                              : luaL_loadbuffer(L, init, std::strlen(init), name);
  if (status != LUA_OK) return load_failure(L);
  return run_loaded(rt, 0);
}

}  // namespace

int main(int argc, char** argv) {
  // A child started by the process module's spawn method: no command line, no REPL.
  if (argc == 3 && std::strcmp(argv[1], plua::lua::kSpawnChildOption) == 0) {
    plua::Runtime rt;
    int status = plua::lua::run_spawned_child(rt.state(), argv[2]);
    rt.close();
    return status;
  }
  plua::cli::Options opts = plua::cli::parse(argc, argv);
  if (!opts.error.empty()) {
    std::fprintf(stderr, "%s: %s\n%s", g_program, opts.error.c_str(),
                 plua::cli::usage(g_program).c_str());
    return EXIT_FAILURE;
  }
  bool no_script = opts.script_index == 0;
  // As lua: with no script and no -e or -v, plua is interactive (here also when stdin is not a terminal).
  bool start_repl = opts.interactive || (no_script && !opts.has_execute() && !opts.version);
  // -v prints the version on stdout, as lua; the REPL's banner (plain on a
  // terminal, or implied by -i) goes with the prompts: to stderr without a terminal.
  bool terminal = isatty(STDIN_FILENO) != 0;
  if (opts.version || (start_repl && (terminal || opts.interactive))) {
    std::FILE* out = opts.version || terminal ? stdout : stderr;
    std::fprintf(out, "%s\n", plua::version_banner());
    std::fflush(out);
  }

  plua::Runtime rt(plua::Runtime::Options{opts.ignore_environment});
  lua_State* L = rt.state();
  if (opts.warnings) lua_warning(L, "@on", 0);
  create_arg_table(L, argc, argv, opts.script_index);

  auto fail = [&](const plua::Outcome& out) {
    print_error(out);
    rt.close();
    return EXIT_FAILURE;
  };
  if (!opts.ignore_environment)
    if (auto out = do_init(rt); !out.ok) return fail(out);
  for (const auto& action : opts.actions) {
    auto out = action.kind == plua::cli::Action::Kind::execute ? do_string(rt, action.text)
                                                                : do_require(rt, action.text);
    if (!out.ok) return fail(out);
  }
  if (!no_script)
    if (auto out = do_script(rt, argc, argv, opts.script_index); !out.ok) return fail(out);

  if (start_repl) plua::host::run_repl(rt);
  rt.close();
  return EXIT_SUCCESS;
}
