# Sanitizers live on one interface target that every plua target links, never as global flags.
add_library(plua_sanitizers INTERFACE)
if(PLUA_ASAN AND PLUA_TSAN)
  message(FATAL_ERROR "PLUA_ASAN and PLUA_TSAN cannot be combined")
endif()
if(PLUA_ASAN)
  target_compile_options(plua_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(plua_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(PLUA_TSAN)
  target_compile_options(plua_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(plua_sanitizers INTERFACE -fsanitize=thread)
endif()
install(TARGETS plua_sanitizers EXPORT pluaTargets)
