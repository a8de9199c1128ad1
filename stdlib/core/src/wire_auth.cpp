#include "plua/core/wire_auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstring>

namespace plua::core {
namespace {

constexpr std::string_view kChallenge = "#CHALLENGE#";
constexpr std::string_view kWelcome = "#WELCOME#";
constexpr std::string_view kFailure = "#FAILURE#";
// Handshake messages are small; Python refuses anything over 256 bytes too.
constexpr std::size_t kMaxHandshake = 256;
constexpr std::size_t kLegacyLength = 20;   // legacy challenge payload
constexpr std::size_t kMd5Length = 16;      // legacy reply: a bare HMAC-MD5
constexpr std::size_t kTaggedLength = 40;   // 3.12+ challenge payload

const EVP_MD* digest_by_python_name(std::string_view name) {
  if (name == "md5") return EVP_md5();
  if (name == "sha256") return EVP_sha256();
  if (name == "sha384") return EVP_sha384();
  if (name == "sha3_256") return EVP_sha3_256();
  if (name == "sha3_384") return EVP_sha3_384();
  return nullptr;
}

// Python's _get_digest_name_and_payload: "" for the legacy lengths, else the
// name inside a leading "{...}" (which must be an allowed digest).
std::string digest_name_of(std::string_view message, std::string_view* payload) {
  if (message.size() == kLegacyLength || message.size() == kMd5Length) {
    *payload = message;
    return {};
  }
  if (!message.empty() && message[0] == '{') {
    std::size_t curly = message.find('}', 1);
    if (curly != std::string_view::npos && curly <= 10) {
      std::string name(message.substr(1, curly - 1));
      if (digest_by_python_name(name)) {
        *payload = message.substr(curly + 1);
        return name;
      }
    }
  }
  throw AuthenticationError("unsupported message length, missing digest prefix, or unsupported digest");
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return out;
}

}  // namespace

std::string hmac_digest(std::string_view digest_name, std::string_view key, std::string_view message) {
  const EVP_MD* md = digest_by_python_name(digest_name);
  if (!md) throw AuthenticationError("digest '" + std::string(digest_name) + "' is not supported");
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(md, key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len))
    throw std::runtime_error("HMAC failed");
  return std::string(reinterpret_cast<char*>(out), len);
}

void deliver_challenge(FrameConnection& conn, std::string_view authkey, ChallengeForm form,
                       const Deadline& deadline) {
  std::string message = form == ChallengeForm::kTagged ? "{sha256}" + random_bytes(kTaggedLength)
                                                       : random_bytes(kLegacyLength);
  conn.send_bytes(std::string(kChallenge) + message, deadline);
  std::string response = conn.recv_bytes(deadline, kMaxHandshake);
  bool ok = false;
  try {
    std::string_view mac;
    std::string name = digest_name_of(response, &mac);
    // A legacy challenge only admits a legacy reply; a tagged one lets the
    // reply pick its digest, since the MAC covers the "{sha256}" prefix.
    if (form == ChallengeForm::kTagged || name.empty()) {
      std::string expected = hmac_digest(name.empty() ? "md5" : name, authkey, message);
      ok = expected.size() == mac.size() && CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) == 0;
    }
  } catch (const AuthenticationError&) {
    ok = false;
  }
  if (!ok) {
    conn.send_bytes(kFailure, deadline);
    throw AuthenticationError("digest received was wrong");
  }
  conn.send_bytes(kWelcome, deadline);
}

ChallengeForm answer_challenge(FrameConnection& conn, std::string_view authkey,
                               const Deadline& deadline) {
  std::string message = conn.recv_bytes(deadline, kMaxHandshake);
  if (message.compare(0, kChallenge.size(), kChallenge) != 0)
    throw AuthenticationError("protocol error, expected a challenge");
  std::string_view body = std::string_view(message).substr(kChallenge.size());
  if (body.size() < kLegacyLength) throw AuthenticationError("challenge too short");
  std::string_view payload;
  std::string name = digest_name_of(body, &payload);
  std::string reply = name.empty() ? hmac_digest("md5", authkey, body)
                                   : "{" + name + "}" + hmac_digest(name, authkey, body);
  conn.send_bytes(reply, deadline);
  std::string response = conn.recv_bytes(deadline, kMaxHandshake);
  if (response != kWelcome) throw AuthenticationError("digest sent was rejected");
  return name.empty() ? ChallengeForm::kLegacyMd5 : ChallengeForm::kTagged;
}

}  // namespace plua::core
