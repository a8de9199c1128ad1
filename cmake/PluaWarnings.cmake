add_library(plua_warnings INTERFACE)
target_compile_options(plua_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-missing-field-initializers>)
install(TARGETS plua_warnings EXPORT pluaTargets)
