// Fuzzes the C++ side of the codec (plua::core::codec): decode_values, the
// path by which C++ code receives what Lua put into a queue, and
// visit_objects, which releases the references of a message never decoded.
// A malformed message must end in FormatError or std::runtime_error, never a
// crash, an out-of-bounds read or an allocation out of proportion to its size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "plua/core/codec_format.hpp"

namespace codec = plua::core::codec;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view message(reinterpret_cast<const char*>(data), size);
  std::size_t objects = 0;
  try {
    codec::visit_objects(
        message, [](void* ctx, std::string_view, std::string_view, std::string_view) { ++*static_cast<std::size_t*>(ctx); },
        &objects);
  } catch (const codec::FormatError&) {
  }
  std::string first;
  try {
    first = codec::encode_values(codec::decode_values(message));
  } catch (const std::runtime_error&) {
    return 0;  // FormatError, or content that is not plain data: refused cleanly
  }
  // What decodes re-encodes to a fixed point: a second trip changes nothing.
  std::string second = codec::encode_values(codec::decode_values(first));
  if (second != first) std::abort();
  return 0;
}
