// The interactive loop of `plua` and `plua -i`.
#pragma once

#include "plua/runtime.hpp"

namespace plua::host {

// Reads statements until end of input, printing the values of expressions.
void run_repl(Runtime& runtime);

}  // namespace plua::host
