// How the REPL shows a value: Lua-like source text for plain data, bounded so
// that a huge or cyclic table prints quickly and readably.
//
//   {1, 2, "three", name = "x", nested = {a = true}, [2.5] = "k"}
//
// Strings are quoted; values with a __tostring (error objects, plua handles)
// are shown through it; a table already being printed is shown as <cycle>.
#pragma once

#include <cstddef>
#include <string>

#include "plua/lua/lua.hpp"

namespace plua::host {

struct PrettyOptions {
  int max_depth = 5;              // deeper tables show as {...}
  int max_items = 50;             // entries shown per table; the rest are counted
  int max_total = 1000;           // entries shown in all; beyond, tables show as {...}
  std::size_t max_string = 200;   // longer strings inside tables are cut
  std::size_t width = 80;         // a table wider than this is laid out one entry a line
};

// Renders the value at idx. May raise a Lua error (a failing __tostring), so
// call it in protected mode.
std::string pretty(lua_State* L, int idx, const PrettyOptions& options = {});

// A Lua string literal for s: "..." with escapes for quotes, backslashes and
// control characters.
std::string quote(std::string_view s);

}  // namespace plua::host
