// Fuzzes the manager wire's pickle subset (plua::core::pickle::loads): every
// frame a manager client or server receives from the network goes through it.
// Bytes that are not a pickle of the subset must end in PickleError, never a
// crash, a hang or an allocation out of proportion to the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "plua/core/pickle.hpp"

namespace pickle = plua::core::pickle;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  pickle::Object obj;
  try {
    obj = pickle::loads(bytes);
  } catch (const pickle::PickleError&) {
    return 0;
  }
  // Everything the decoder accepts can be shown, sent back, and reads back the same.
  (void)pickle::repr(obj);
  std::string again;
  try {
    again = pickle::dumps(obj);
  } catch (const pickle::PickleError&) {
    return 0;  // nested deeper than dumps writes (loads shares Limits::max_depth)
  }
  pickle::Object back = pickle::loads(again);
  if (pickle::dumps(back) != again) std::abort();
  try {
    (void)pickle::to_value(obj);
  } catch (const pickle::PickleError&) {
    // exceptions and container keys have no Value form
  }
  return 0;
}
