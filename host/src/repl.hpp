// The interactive loop of `plua` and `plua -i`.
#pragma once

#include "plua/runtime.hpp"

namespace plua::host {

// Reads statements until end of input (Ctrl-D), printing the values of
// expressions with the pretty printer. Ctrl-C while code runs interrupts it
// (KeyboardInterrupt) and comes back to the prompt; at the prompt it drops the
// line. Works with readline on a terminal and with plain reads otherwise.
void run_repl(Runtime& runtime);

}  // namespace plua::host
