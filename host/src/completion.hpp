// Tab completion for the REPL: global names, table fields (`string.fo`),
// and methods (`q:pu`, found through metatables' __index tables).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plua/lua/lua.hpp"

namespace plua::host {

// The words that complete `word` (the text before the cursor back to the last
// separator, e.g. "pri", "string.for", "q:ge"), each given in full, sorted,
// without duplicates. Reads the state with raw accesses only (no metamethod
// runs but __index tables are followed), and never raises.
std::vector<std::string> completions(lua_State* L, std::string_view word);

// Characters that end a word for completion: everything that cannot be part
// of a dotted name (so `.` and `:` are not among them).
inline constexpr const char* kWordBreaks = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^~#";

}  // namespace plua::host
