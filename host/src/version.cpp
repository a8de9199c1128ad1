#include "plua/version.hpp"

#include "plua/lua/lua.hpp"

namespace plua {

const char* version_banner() noexcept {
  static const char banner[] = "plua 0.1.0 -- " LUA_COPYRIGHT;
  return banner;
}

}  // namespace plua
