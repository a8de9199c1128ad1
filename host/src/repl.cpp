#include "repl.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "plua/lua/interrupt.hpp"
#include "plua/lua/lua.hpp"
#include "sigint_guard.hpp"

namespace plua::host {
namespace {

constexpr const char* kPrompt = "> ";
constexpr const char* kContinuePrompt = ">> ";

// One line of input, from readline on a terminal or stdio otherwise.
std::optional<std::string> read_line(const char* prompt, bool terminal) {
  if (terminal) {
    char* line = readline(prompt);
    if (line == nullptr) return std::nullopt;
    std::string text(line);
    std::free(line);
    return text;
  }
  std::fputs(prompt, stdout);
  std::fflush(stdout);
  std::string text;
  int c;
  while ((c = std::getchar()) != EOF && c != '\n') text.push_back(static_cast<char>(c));
  if (c == EOF && text.empty()) return std::nullopt;
  return text;
}

// True if the load failed only because the chunk ended too early.
bool is_incomplete(lua_State* L, int status) {
  if (status != LUA_ERRSYNTAX) return false;
  size_t len = 0;
  const char* msg = lua_tolstring(L, -1, &len);
  constexpr std::string_view kEof = "<eof>";
  return len >= kEof.size() && std::string_view(msg + len - kEof.size()) == kEof;
}

// Compiles a statement: first as "return <line>" so expressions print.
// Leaves the function on the stack, or an error message.
int load_statement(lua_State* L, const std::string& code) {
  std::string as_return = "return " + code + ";";
  if (luaL_loadbuffer(L, as_return.data(), as_return.size(), "=stdin") == LUA_OK) return LUA_OK;
  lua_pop(L, 1);
  return luaL_loadbuffer(L, code.data(), code.size(), "=stdin");
}

// Prints the values left on the stack above `base`, as lua's REPL does.
void print_results(lua_State* L, int base) {
  int n = lua_gettop(L) - base;
  if (n <= 0) return;
  lua_getglobal(L, "print");
  lua_insert(L, base + 1);
  if (lua_pcall(L, n, 0, 0) != LUA_OK) {
    std::fprintf(stderr, "plua: error calling 'print' (%s)\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

}  // namespace

void run_repl(Runtime& runtime) {
  lua_State* L = runtime.state();
  bool terminal = isatty(STDIN_FILENO);
  for (;;) {
    auto line = read_line(kPrompt, terminal);
    if (!line) break;
    std::string code = *line;
    int status;
    // Keep reading while the statement is incomplete.
    while ((status = load_statement(L, code)) != LUA_OK && is_incomplete(L, status)) {
      lua_pop(L, 1);
      auto more = read_line(kContinuePrompt, terminal);
      if (!more) break;
      code += "\n" + *more;
    }
    if (terminal && !code.empty()) add_history(code.c_str());
    if (status != LUA_OK) {
      std::fprintf(stderr, "%s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
      continue;
    }
    int base = lua_gettop(L) - 1;
    Outcome out = [&] {
      SigintGuard sigint;
      return runtime.call(0, LUA_MULTRET);
    }();
    lua::clear_interrupt(L);
    if (!out.ok) {
      std::fprintf(stderr, "%s\n", out.message.c_str());
      if (!out.traceback.empty()) std::fprintf(stderr, "%s\n", out.traceback.c_str());
      std::fflush(stderr);
      continue;
    }
    print_results(L, base);
    lua_settop(L, base);
  }
  if (terminal) std::fputs("\n", stdout);
}

}  // namespace plua::host
