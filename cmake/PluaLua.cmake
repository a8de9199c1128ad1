# Wraps Debian's C++ build of Lua 5.4 (lua_error throws, so C++ destructors run)
# in one imported target, plua::lua.
if(NOT TARGET plua::lua)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(PLUA_LUA REQUIRED IMPORTED_TARGET lua5.4-c++)
  add_library(plua::lua INTERFACE IMPORTED)
  target_link_libraries(plua::lua INTERFACE PkgConfig::PLUA_LUA)
endif()
