// multiprocessing.connection's HMAC challenge/response, both roles, in the
// legacy form of Python <= 3.11 (20 random bytes, bare HMAC-MD5 reply) and the
// form of 3.12+ ("{sha256}" + 40 random bytes, reply "{digest}" + HMAC of the
// whole challenge, prefix included).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "plua/core/cancel.hpp"
#include "plua/core/frame_connection.hpp"

namespace plua::core {

// The peer's key differs from ours, or it broke the handshake.
class AuthenticationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ChallengeForm {
  kLegacyMd5,  // Python <= 3.11
  kTagged,     // Python >= 3.12: "{sha256}" prefix
};

// HMAC of message under key with a digest Python names md5, sha256, sha384,
// sha3_256 or sha3_384 (OpenSSL's libcrypto); throws AuthenticationError for others.
std::string hmac_digest(std::string_view digest_name, std::string_view key, std::string_view message);

// Sends a challenge of the given form, checks the reply (a tagged challenge
// accepts an untagged MD5 reply, as 3.12 does, since the prefix is under the
// MAC), and answers #WELCOME# or #FAILURE#. Throws AuthenticationError on a
// wrong reply (after sending #FAILURE#).
void deliver_challenge(FrameConnection& conn, std::string_view authkey, ChallengeForm form,
                       const Deadline& deadline);

// Reads a challenge, replies in the form it came in, and checks for #WELCOME#.
// Returns the form the peer used. Throws AuthenticationError when rejected.
ChallengeForm answer_challenge(FrameConnection& conn, std::string_view authkey,
                               const Deadline& deadline);

}  // namespace plua::core
