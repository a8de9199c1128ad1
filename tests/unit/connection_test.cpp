#include "plua/core/connection.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <thread>

#include "plua/core/child_process.hpp"

using namespace plua::core;
using namespace std::chrono_literals;

TEST(Connection, FramesBothWays) {
  auto [a, b] = Connection::pipe(true);
  a->send_bytes("hello");
  a->send_bytes("");
  b->send_bytes("back");
  EXPECT_EQ(b->recv_bytes(), "hello");
  EXPECT_EQ(b->recv_bytes(), "");
  EXPECT_EQ(a->recv_bytes(), "back");
}

TEST(Connection, LargeMessagesWithAConcurrentReader) {
  auto [a, b] = Connection::pipe(true);
  std::string big(8 << 20, 'z');
  std::thread reader([&, b = b] { EXPECT_EQ(b->recv_bytes()->size(), big.size()); });
  a->send_bytes(big);
  reader.join();
}

TEST(Connection, PollAndTimeout) {
  auto [a, b] = Connection::pipe(true);
  EXPECT_FALSE(b->poll(Deadline::after(0)));
  auto t0 = std::chrono::steady_clock::now();
  bool timed_out = false;
  EXPECT_EQ(b->recv_bytes(Deadline::after(0.05), &timed_out), std::nullopt);
  EXPECT_TRUE(timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 45ms);
  a->send_bytes("x");
  EXPECT_TRUE(b->poll(Deadline::after(1)));
}

TEST(Connection, EndOfFileAndBrokenPipe) {
  auto [a, b] = Connection::pipe(true);
  a->send_bytes("last");
  a->close();
  EXPECT_TRUE(a->closed());
  EXPECT_THROW(a->send_bytes("x"), ConnectionError);
  EXPECT_EQ(b->recv_bytes(), "last");
  EXPECT_EQ(b->recv_bytes(), std::nullopt);
  EXPECT_THROW(b->send_bytes("x"), BrokenPipe);
}

TEST(Connection, SimplexDirections) {
  auto [r, w] = Connection::pipe(false);
  EXPECT_TRUE(r->readable());
  EXPECT_FALSE(r->writable());
  EXPECT_THROW(r->send_bytes("x"), ConnectionError);
  EXPECT_THROW(w->recv_bytes(), ConnectionError);
  w->send_bytes("one way");
  EXPECT_EQ(r->recv_bytes(), "one way");
}

TEST(Connection, AcrossFork) {
  auto [a, b] = Connection::pipe(true);
  pid_t pid = fork_process();
  if (pid == 0) {
    auto m = b->recv_bytes();
    b->send_bytes(m ? *m + "!" : "none");
    _exit(0);
  }
  auto c = ChildProcess::adopt(pid);
  a->send_bytes("hi");
  EXPECT_EQ(a->recv_bytes(Deadline::after(10)), "hi!");
  EXPECT_EQ(c->wait(Deadline::after(10)), 0);
}
