#include "repl.hpp"

#include <cstdio>
#include <string>
#include <string_view>

#include "line_reader.hpp"
#include "plua/lua/interrupt.hpp"
#include "plua/lua/lua.hpp"
#include "pretty_printer.hpp"
#include "sigint_guard.hpp"

namespace plua::host {
namespace {

constexpr const char* kPrompt = "> ";
constexpr const char* kContinuePrompt = ">> ";

// True if the load failed only because the chunk ended too early.
bool is_incomplete(lua_State* L, int status) {
  if (status != LUA_ERRSYNTAX) return false;
  size_t len = 0;
  const char* msg = lua_tolstring(L, -1, &len);
  constexpr std::string_view kEof = "<eof>";
  return len >= kEof.size() && std::string_view(msg + len - kEof.size()) == kEof;
}

// Compiles a statement: first as "return <code>;" so expressions print.
// Leaves the function on the stack, or an error message.
int load_statement(lua_State* L, const std::string& code) {
  std::string as_return = "return " + code + ";";
  if (luaL_loadbuffer(L, as_return.data(), as_return.size(), "=stdin") == LUA_OK) return LUA_OK;
  lua_pop(L, 1);
  return luaL_loadbuffer(L, code.data(), code.size(), "=stdin");
}

enum class Read { compiled, syntax_error, dropped, end };

// Reads lines until they make a complete statement; leaves the compiled
// function (compiled) or the syntax error message (syntax_error) on the stack.
Read read_statement(LineReader& reader, lua_State* L) {
  auto first = reader.read(kPrompt);
  if (first.status == LineReader::Status::end) return Read::end;
  if (first.status == LineReader::Status::interrupted) return Read::dropped;
  std::string code = std::move(first.text);
  for (;;) {
    int status = load_statement(L, code);
    if (status == LUA_OK || !is_incomplete(L, status)) {
      reader.remember(code);
      return status == LUA_OK ? Read::compiled : Read::syntax_error;
    }
    lua_pop(L, 1);
    auto more = reader.read(kContinuePrompt);
    if (more.status == LineReader::Status::interrupted) return Read::dropped;
    if (more.status == LineReader::Status::end) {
      // Input ended inside a statement: report it as the syntax error it is.
      load_statement(L, code);
      reader.remember(code);
      return Read::syntax_error;
    }
    code += "\n" + more.text;
  }
}

// Prints its arguments with the pretty printer, separated by tabs.
int show_values(lua_State* L) {
  int n = lua_gettop(L);
  std::string line;
  for (int i = 1; i <= n; ++i) {
    if (i > 1) line += '\t';
    line += pretty(L, i);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
  return 0;
}

// Prints the values left on the stack above `base` and removes them.
void print_results(lua_State* L, int base) {
  int n = lua_gettop(L) - base;
  if (n > 0) {
    lua_pushcfunction(L, show_values);
    lua_insert(L, base + 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK) {
      const char* msg = luaL_tolstring(L, -1, nullptr);
      std::fprintf(stderr, "plua: cannot show the result: %s\n", msg);
      std::fflush(stderr);
    }
  }
  lua_settop(L, base);
}

void print_failure(const Outcome& out) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s\n", out.message.c_str());
  if (!out.traceback.empty()) std::fprintf(stderr, "%s\n", out.traceback.c_str());
  std::fflush(stderr);
}

}  // namespace

void run_repl(Runtime& runtime) {
  lua_State* L = runtime.state();
  LineReader reader(L);
  for (;;) {
    int base = lua_gettop(L);
    Read read = read_statement(reader, L);
    if (read == Read::end) break;
    if (read == Read::dropped) continue;
    if (read == Read::syntax_error) {
      print_failure({false, lua_tostring(L, -1), ""});
      lua_settop(L, base);
      continue;
    }
    Outcome out = [&] {
      SigintGuard sigint;
      return runtime.call(0, LUA_MULTRET);
    }();
    lua::clear_interrupt(L);  // a Ctrl-C that came as the code ended must not hit the next statement
    std::fflush(stdout);
    if (!out.ok) {
      print_failure(out);
      lua_settop(L, base);
      continue;
    }
    print_results(L, base);
  }
  if (reader.terminal()) {
    std::fputs("\n", stdout);
    std::fflush(stdout);
  }
}

}  // namespace plua::host
