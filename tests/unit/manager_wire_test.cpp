// The manager's wire below the server: length-prefixed frames over a socket,
// and the HMAC challenge/response in both roles and both forms.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "plua/core/frame_connection.hpp"
#include "plua/core/wire_auth.hpp"

using namespace plua::core;

namespace {

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

struct Pair {
  FrameConnection a, b;
  Pair(std::size_t max_frame = FrameConnection::kDefaultMaxFrame) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
    a = FrameConnection(fds[0], max_frame);
    b = FrameConnection(fds[1], max_frame);
  }
};

TEST(Frames, RoundTripSmallAndLarge) {
  Pair p;
  std::string big(3 << 20, 'z');
  auto sender = std::async(std::launch::async, [&] {
    p.a.send_bytes("hello", Deadline::after(10));
    p.a.send_bytes("", Deadline::after(10));
    p.a.send_bytes(big, Deadline::after(10));
  });
  EXPECT_EQ(p.b.recv_bytes(Deadline::after(10)), "hello");
  EXPECT_EQ(p.b.recv_bytes(Deadline::after(10)), "");
  EXPECT_EQ(p.b.recv_bytes(Deadline::after(10)), big);
  sender.get();
}

TEST(Frames, HeaderIsBigEndianAndTheLongFormIsRead) {
  Pair p;
  p.a.send_bytes("abc");
  char raw[7];
  ASSERT_EQ(::recv(p.b.fd(), raw, 7, MSG_WAITALL), 7);
  EXPECT_EQ(std::string(raw, 7), std::string("\0\0\0\3abc", 7));
  // -1 then an 8-byte length: the form Python uses for frames of 2 GiB and more.
  std::string longform("\xff\xff\xff\xff\0\0\0\0\0\0\0\5hello", 17);
  ASSERT_EQ(::send(p.a.fd(), longform.data(), longform.size(), 0), 17);
  EXPECT_EQ(p.b.recv_bytes(Deadline::after(5)), "hello");
}

TEST(Frames, OversizedAndNegativeLengthsAreProtocolErrors) {
  Pair p(1024);
  std::string header("\0\0\x10\0", 4);  // 4096 bytes announced, limit 1024
  ASSERT_EQ(::send(p.a.fd(), header.data(), 4, 0), 4);
  EXPECT_THROW(p.b.recv_bytes(Deadline::after(5)), ProtocolError);
  Pair q;
  std::string negative("\xff\xff\xff\xfe", 4);
  ASSERT_EQ(::send(q.a.fd(), negative.data(), 4, 0), 4);
  EXPECT_THROW(q.b.recv_bytes(Deadline::after(5)), ProtocolError);
}

TEST(Frames, TruncatedFrameIsConnectionClosed) {
  Pair p;
  std::string partial("\0\0\0\x10" "abc", 7);
  ASSERT_EQ(::send(p.a.fd(), partial.data(), partial.size(), 0), 7);
  p.a.close();
  EXPECT_THROW(p.b.recv_bytes(Deadline::after(5)), ConnectionClosed);
}

TEST(Frames, TimeoutAndInterrupt) {
  Pair p;
  EXPECT_THROW(p.b.recv_bytes(Deadline::after(0.05)), WireTimeout);
  this_thread_stop_flag().request();
  EXPECT_THROW(p.b.recv_bytes(Deadline::never()), Interrupted);
}

TEST(Frames, ATimeoutLongerThanAWaitSliceLastsItsLength) {
  Pair p;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(p.b.recv_bytes(Deadline::after(0.13)), WireTimeout);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(waited, 0.13);
  EXPECT_LT(waited, 5.0);
  // The connection still works after a timeout that read nothing.
  p.a.send_bytes("late");
  EXPECT_EQ(p.b.recv_bytes(Deadline::after(5)), "late");
}

TEST(Frames, AStopRequestEndsAReceiveThatWaitsForever) {
  Pair p;
  std::promise<StopFlag*> flag;
  auto receiver = std::async(std::launch::async, [&] {
    flag.set_value(&this_thread_stop_flag());
    p.b.recv_bytes(Deadline::never());
  });
  flag.get_future().get()->request();
  ASSERT_EQ(receiver.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_THROW(receiver.get(), Interrupted);
}

TEST(Frames, PingPongSurvivesIdleGapsBetweenBursts) {
  // Quick replies and slow ones alternate, so receives that poll before
  // sleeping and receives that sleep at once both occur; every frame arrives.
  Pair p;
  auto echo = std::async(std::launch::async, [&] {
    for (int i = 0; i < 300; ++i) p.b.send_bytes(p.b.recv_bytes(Deadline::after(10)), Deadline::after(10));
  });
  for (int i = 0; i < 300; ++i) {
    if (i % 50 == 49) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::string m = "m" + std::to_string(i) + std::string(static_cast<std::size_t>(i) * 97, 'x');
    p.a.send_bytes(m, Deadline::after(10));
    ASSERT_EQ(p.a.recv_bytes(Deadline::after(10)), m);
  }
  echo.get();
}

TEST(Auth, HmacMatchesKnownVectors) {
  std::string msg = "The quick brown fox jumps over the lazy dog";
  EXPECT_EQ(hex(hmac_digest("md5", "key", msg)), "80070713463e7749b90c2dc24911e275");
  EXPECT_EQ(hex(hmac_digest("sha256", "key", msg)),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
  EXPECT_THROW(hmac_digest("sha1", "key", msg), AuthenticationError);
}

void handshake(ChallengeForm form, const std::string& server_key, const std::string& client_key,
               bool expect_ok) {
  Pair p;
  auto server = std::async(std::launch::async, [&] {
    deliver_challenge(p.a, server_key, form, Deadline::after(10));
    answer_challenge(p.a, server_key, Deadline::after(10));
  });
  ChallengeForm seen{};
  bool client_ok = true;
  try {
    seen = answer_challenge(p.b, client_key, Deadline::after(10));
    deliver_challenge(p.b, client_key, seen, Deadline::after(10));
  } catch (const AuthenticationError&) {
    client_ok = false;
    p.b.close();
  }
  bool server_ok = true;
  try {
    server.get();
  } catch (const AuthenticationError&) {
    server_ok = false;
  } catch (const ConnectionClosed&) {
    server_ok = false;
  }
  EXPECT_EQ(client_ok, expect_ok);
  EXPECT_EQ(server_ok, expect_ok);
  if (expect_ok) {
    EXPECT_EQ(seen, form);
  }
}

TEST(Auth, LegacyMd5BothWays) { handshake(ChallengeForm::kLegacyMd5, "abc", "abc", true); }
TEST(Auth, TaggedSha256BothWays) { handshake(ChallengeForm::kTagged, "abc", "abc", true); }
TEST(Auth, WrongKeyFailsBothForms) {
  handshake(ChallengeForm::kLegacyMd5, "abc", "abd", false);
  handshake(ChallengeForm::kTagged, "abc", "", false);
}

TEST(Auth, TaggedChallengeAcceptsAnUntaggedMd5Reply) {
  // What a Python 3.11 client does with a 3.12 server's "{sha256}" challenge:
  // HMAC-MD5 of the whole message, prefix included.
  Pair p;
  auto server = std::async(std::launch::async,
                           [&] { deliver_challenge(p.a, "abc", ChallengeForm::kTagged, Deadline::after(10)); });
  std::string challenge = p.b.recv_bytes(Deadline::after(10));
  ASSERT_EQ(challenge.rfind("#CHALLENGE#{sha256}", 0), 0u);
  EXPECT_EQ(challenge.size(), 11u + 8u + 40u);
  p.b.send_bytes(hmac_digest("md5", "abc", challenge.substr(11)), Deadline::after(10));
  EXPECT_EQ(p.b.recv_bytes(Deadline::after(10)), "#WELCOME#");
  server.get();
}

TEST(Auth, LegacyChallengeRefusesATaggedReply) {
  Pair p;
  auto server = std::async(std::launch::async, [&] {
    deliver_challenge(p.a, "abc", ChallengeForm::kLegacyMd5, Deadline::after(10));
  });
  std::string challenge = p.b.recv_bytes(Deadline::after(10));
  EXPECT_EQ(challenge.size(), 11u + 20u);
  p.b.send_bytes("{sha256}" + hmac_digest("sha256", "abc", challenge.substr(11)), Deadline::after(10));
  EXPECT_EQ(p.b.recv_bytes(Deadline::after(10)), "#FAILURE#");
  EXPECT_THROW(server.get(), AuthenticationError);
}

}  // namespace
