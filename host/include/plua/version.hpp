#pragma once

namespace plua {

inline constexpr const char* kVersion = "0.1.0";

// "plua 0.1.0 -- Lua 5.4.x  Copyright ...", as `plua -v` prints it.
const char* version_banner() noexcept;

}  // namespace plua
