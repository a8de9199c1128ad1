// Fuzzes the manager's HMAC handshake (wire_auth.cpp) in both roles over a
// socketpair; the input, after one mode byte, is everything the peer sends.
//   server role (deliver_challenge): the peer's reply to a random challenge.
//     Nothing it sends may be accepted: the key is never guessed.
//   client role (answer_challenge): the server's challenge and verdict.
// Every outcome must be an AuthenticationError, ConnectionClosed or
// ProtocolError (or, as a client, success): never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_socketpair.hpp"
#include "plua/core/cancel.hpp"
#include "plua/core/frame_connection.hpp"
#include "plua/core/wire_auth.hpp"

using namespace plua::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  bool server = data[0] & 1;
  ChallengeForm form = (data[0] & 2) ? ChallengeForm::kTagged : ChallengeForm::kLegacyMd5;
  std::string_view authkey = (data[0] & 4) ? std::string_view("") : std::string_view("fuzz-key");
  std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  plua_fuzz::SocketPair pair;
  if (!pair.feed(stream)) return 0;
  FrameConnection conn(pair.take_reader());
  try {
    if (server) {
      deliver_challenge(conn, authkey, form, Deadline::after(5.0));
      std::abort();  // a reply to a fresh random challenge that the fuzzer could not have seen
    } else {
      (void)answer_challenge(conn, authkey, Deadline::after(5.0));
    }
  } catch (const AuthenticationError&) {
  } catch (const ConnectionClosed&) {
  } catch (const ProtocolError&) {
  }
  return 0;
}
