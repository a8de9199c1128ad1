// Fuzzes FrameConnection::recv_bytes, the manager wire's framing (4-byte
// big-endian length, or -1 and an 8-byte length): the input is the whole
// stream a peer sends, read through a socketpair until EOF or a protocol error.
// Every outcome must be a frame, ConnectionClosed or ProtocolError: never a
// crash, a hang (the stream ends, so a timeout is a bug), or an allocation
// sized by an announced length rather than by bytes received.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_socketpair.hpp"
#include "plua/core/cancel.hpp"
#include "plua/core/frame_connection.hpp"

using plua::core::ConnectionClosed;
using plua::core::Deadline;
using plua::core::FrameConnection;
using plua::core::ProtocolError;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  // First byte: which limit the reader uses (a handshake's 256 bytes, a small
  // one, or the default 64 MiB) and whether each read also asks that per call.
  const std::size_t limits[] = {256, 4096, FrameConnection::kDefaultMaxFrame};
  std::size_t limit = limits[(data[0] & 3) % 3];
  bool per_call = data[0] & 4;
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  plua_fuzz::SocketPair pair;
  if (!pair.feed(stream)) return 0;
  FrameConnection conn(pair.take_reader(), per_call ? FrameConnection::kDefaultMaxFrame : limit);
  std::size_t received = 0;
  try {
    for (;;) {
      if (!conn.poll(Deadline::after(5.0))) std::abort();  // data or EOF is there
      std::string frame = conn.recv_bytes(Deadline::after(5.0), per_call ? limit : 0);
      received += 4 + frame.size();
      if (frame.size() > limit || received > stream.size()) std::abort();
    }
  } catch (const ConnectionClosed&) {
  } catch (const ProtocolError&) {
  }
  return 0;
}
