// ManagerServer and ManagerProxy together over loopback: the protocol's
// requests, queue methods with server-side blocking, errors that travel back
// as their kinds, and a server that survives wrong keys, garbage and vanishing
// clients.
#include "plua/core/manager_server.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <future>
#include <random>
#include <thread>

#include "plua/core/manager_client.hpp"
#include "plua/core/served_queue.hpp"
#include "plua/core/wire_auth.hpp"

using namespace plua::core;
namespace pk = plua::core::pickle;

namespace plua::core::pickle {
inline void PrintTo(const Object& o, std::ostream* os) { *os << repr(o); }
}  // namespace plua::core::pickle

namespace {

struct Fixture : ::testing::Test {
  std::shared_ptr<BasicValueQueue> tasks = std::make_shared<BasicValueQueue>();
  std::shared_ptr<BasicValueQueue> small = std::make_shared<BasicValueQueue>(1);
  std::unique_ptr<ManagerServer> server;
  ManagerAddress address;

  void SetUp() override {
    ManagerServer::Options o;
    o.authkey = "abc";
    o.max_frame = 1 << 20;
    server = std::make_unique<ManagerServer>(o);
    server->register_typeid("get_task_queue", std::make_shared<ServedQueue>(tasks));
    server->register_typeid("get_small_queue", std::make_shared<ServedQueue>(small));
    server->start();
    address = {"127.0.0.1", server->port()};
  }
  void TearDown() override { server->shutdown(); }

  std::unique_ptr<ManagerProxy> proxy(const char* type_id = "get_task_queue") {
    return std::make_unique<ManagerProxy>(address, "abc", type_id, Deadline::after(10));
  }
  // Waits (bounded) until the server serves exactly n connections.
  void expect_connections(std::size_t n) {
    Deadline d = Deadline::after(10);
    while (server->active_connections() != n && !d.expired()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(server->active_connections(), n);
  }
};

std::string remote_kind(const std::function<void()>& f) {
  try {
    f();
  } catch (const RemoteError& e) {
    return e.kind();
  }
  return "(no error)";
}

TEST_F(Fixture, BindsLoopbackOnAFreePort) {
  EXPECT_EQ(server->host(), "127.0.0.1");
  EXPECT_NE(server->port(), 0);
}

TEST_F(Fixture, DummyAndBookkeepingRequests) {
  EXPECT_EQ(dispatch(address, "abc", "dummy", {}, Deadline::after(10)), pk::Object());
  auto p = proxy();
  EXPECT_EQ(dispatch(address, "abc", "number_of_objects", {}, Deadline::after(10)), pk::Object(1));
  EXPECT_EQ(dispatch(address, "abc", "incref", {pk::str(p->ident())}, Deadline::after(10)), pk::Object());
  EXPECT_NE(dispatch(address, "abc", "debug_info", {}, Deadline::after(10)).str()->find("refcount=2"),
            std::string::npos);
  EXPECT_EQ(remote_kind([&] { dispatch(address, "abc", "incref", {pk::str("nope")}, Deadline::after(10)); }),
            "RemoteError");
  EXPECT_EQ(remote_kind([&] { dispatch(address, "abc", "frobnicate", {}, Deadline::after(10)); }), "RemoteError");
  EXPECT_EQ(remote_kind([&] { ManagerProxy(address, "abc", "unknown", Deadline::after(10)); }), "RemoteError");
}

TEST_F(Fixture, ProxyPutGetAndQueueQueries) {
  auto p = proxy();
  EXPECT_EQ(p->exposed().size(), 7u);
  EXPECT_TRUE(p->is_exposed("get"));
  EXPECT_EQ(p->call("empty", {}), pk::Object(true));
  p->call("put", {pk::Object(42)});
  p->call("put", {pk::str("h\xc3\xa9")});
  p->call("put", {pk::bytes("\xff")});
  EXPECT_EQ(p->call("qsize", {}), pk::Object(2 + 1));
  EXPECT_EQ(p->call("get", {}), pk::Object(42));
  // The local side sees what the remote one put, as plain Values.
  EXPECT_EQ(tasks->get(Deadline::after(1)), Value("h\xc3\xa9"));
  EXPECT_EQ(p->call("get", {}), pk::bytes("\xff")) << "non-UTF-8 comes back as bytes";
  tasks->put(Value(Value::Array{Value(1), Value("x")}), Deadline::never());
  EXPECT_EQ(p->call("get", {}), pk::Object(pk::List{{pk::Object(1), pk::str("x")}}));
}

TEST_F(Fixture, EmptyAndFullTravelAsTheirKinds) {
  auto p = proxy();
  EXPECT_EQ(remote_kind([&] { p->call("get", {pk::Object(false)}); }), "Empty");
  EXPECT_EQ(remote_kind([&] { p->call("get_nowait", {}); }), "Empty");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(remote_kind([&] { p->call("get", {}, pk::Dict{{{pk::str("timeout"), pk::Object(0.1)}}}); }), "Empty");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(95));
  auto s = proxy("get_small_queue");
  s->call("put", {pk::Object(1)});
  EXPECT_EQ(p->call("empty", {}), pk::Object(true));
  EXPECT_EQ(s->call("full", {}), pk::Object(true));
  EXPECT_EQ(remote_kind([&] { s->call("put", {pk::Object(2), pk::Object(true), pk::Object(0.05)}); }), "Full");
  EXPECT_EQ(remote_kind([&] { s->call("put_nowait", {pk::Object(2)}); }), "Full");
  // Bad arguments are Python's errors, sent back as such; the connection goes on.
  EXPECT_EQ(remote_kind([&] { p->call("get", {}, pk::Dict{{{pk::str("timeout"), pk::Object(-1)}}}); }), "ValueError");
  EXPECT_EQ(remote_kind([&] { p->call("put", {}); }), "TypeError");
  EXPECT_EQ(remote_kind([&] { p->call("pop", {}); }), "RemoteError");
  EXPECT_EQ(p->call("qsize", {}), pk::Object(0));
}

TEST_F(Fixture, OneBlockedGetDoesNotStallAnother) {
  auto blocked = std::async(std::launch::async, [&] {
    auto p = proxy();
    return p->call("get", {}, {}, Deadline::after(30));
  });
  auto other = proxy("get_small_queue");
  for (int i = 0; i < 20; ++i) {
    other->call("put", {pk::Object(i)});
    EXPECT_EQ(other->call("get", {}), pk::Object(i));
  }
  EXPECT_EQ(blocked.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  tasks->put(Value("wake"), Deadline::never());
  EXPECT_EQ(blocked.get(), pk::str("wake"));
}

TEST_F(Fixture, WrongKeyIsRefusedAndTheServerGoesOn) {
  EXPECT_THROW(ManagerClient(address, "wrong", Deadline::after(10)), AuthenticationError);
  EXPECT_THROW(ManagerProxy(address, "", "get_task_queue", Deadline::after(10)), AuthenticationError);
  auto p = proxy();
  p->call("put", {pk::Object(1)});
  EXPECT_EQ(p->call("get", {}), pk::Object(1));
}

TEST_F(Fixture, AVanishedClientsBlockedGetTakesNothing) {
  std::size_t base = server->active_connections();
  {
    ManagerClient raw(address, "abc", Deadline::after(10));
    ManagerProxy p(address, "abc", "get_task_queue", Deadline::after(10));
    raw.call(pk::Object(), "accept_connection", {pk::str("vanishing")}, {}, Deadline::after(10));
    // Send a blocking get and go away without waiting for its reply.
    EXPECT_THROW(raw.call(pk::str(p.ident()), "get", {}, {}, Deadline::after(0.1)), WireTimeout);
  }
  expect_connections(base);
  tasks->put(Value(7), Deadline::never());
  EXPECT_EQ(tasks->qsize(), 1u) << "the dead client's get must not take the item";
}

TEST_F(Fixture, GarbageFramesCloseOnlyTheirConnection) {
  std::mt19937 rng(99);
  auto good = proxy();
  for (int round = 0; round < 60; ++round) {
    FrameConnection c = FrameConnection::connect_tcp("127.0.0.1", server->port(), Deadline::after(10));
    std::string junk(rng() % 64, '\0');
    for (auto& ch : junk) ch = static_cast<char>(rng());
    try {
      if (round % 3 == 0) {
        // Raw bytes, not even a frame.
        ::send(c.fd(), junk.data(), junk.size(), MSG_NOSIGNAL);
      } else {
        // Authenticate properly, then send a random or truncated request.
        answer_challenge(c, "abc", Deadline::after(10));
        deliver_challenge(c, "abc", ChallengeForm::kTagged, Deadline::after(10));
        if (round % 3 == 1) {
          c.send_bytes(junk, Deadline::after(10));
        } else {
          std::string request = pk::dumps(pk::tuple({pk::Object(), pk::str("accept_connection"),
                                                     pk::tuple({pk::str("x")}), pk::Object(pk::Dict{})}));
          c.send_bytes(request, Deadline::after(10));
          c.recv_bytes(Deadline::after(10));
          std::string call = pk::dumps(pk::tuple({pk::str(good->ident()), pk::str("qsize"), pk::tuple({}),
                                                  pk::Object(pk::Dict{})}));
          call.resize(rng() % call.size());
          call += junk;
          c.send_bytes(call, Deadline::after(10));
        }
        c.recv_bytes(Deadline::after(10));
      }
    } catch (const std::exception&) {
      // The server closing on us is the expected outcome.
    }
    EXPECT_EQ(good->call("qsize", {}), pk::Object(0)) << "round " << round;
  }
  // A frame over the size limit closes that connection at once.
  FrameConnection c = FrameConnection::connect_tcp("127.0.0.1", server->port(), Deadline::after(10));
  answer_challenge(c, "abc", Deadline::after(10));
  deliver_challenge(c, "abc", ChallengeForm::kTagged, Deadline::after(10));
  std::string huge_header("\x7f\xff\xff\xff", 4);
  ::send(c.fd(), huge_header.data(), 4, MSG_NOSIGNAL);
  EXPECT_THROW(c.recv_bytes(Deadline::after(10)), ConnectionClosed);
  good->call("put", {pk::Object(5)});
  EXPECT_EQ(good->call("get", {}), pk::Object(5));
}

// Python's serve_client answers a request it cannot unpickle with #TRACEBACK
// and goes on: the frame was whole, so the stream is still in step.
TEST_F(Fixture, AnUndecodableRequestGetsATracebackAndTheConnectionGoesOn) {
  auto good = proxy();
  EXPECT_EQ(good->call("qsize", {}), pk::Object(0));  // its own connection, open from here on
  FrameConnection c = FrameConnection::connect_tcp("127.0.0.1", server->port(), Deadline::after(10));
  answer_challenge(c, "abc", Deadline::after(10));
  deliver_challenge(c, "abc", ChallengeForm::kTagged, Deadline::after(10));
  c.send_bytes(pk::dumps(pk::tuple({pk::Object(), pk::str("accept_connection"), pk::tuple({pk::str("x")}),
                                    pk::Object(pk::Dict{})})),
               Deadline::after(10));
  EXPECT_EQ(pk::loads(c.recv_bytes(Deadline::after(10))), pk::tuple({pk::str("#RETURN"), pk::Object()}));
  auto call = [&](const std::string& method, std::vector<pk::Object> args) {
    return pk::dumps(pk::tuple({pk::str(good->ident()), pk::str(method), pk::Object(pk::Tuple{std::move(args)}),
                                pk::Object(pk::Dict{})}));
  };
  // A class outside the whitelist (Python's object()), an int beyond 64 bits,
  // and bytes that are no pickle at all.
  std::string put_object = "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00(\x8c\x08builtins\x94\x8c\x06object\x94\x93\x94)\x81\x94.";
  std::string big_int = "\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.";
  for (const std::string& bad : {put_object, big_int, std::string("not a pickle")}) {
    c.send_bytes(bad, Deadline::after(10));
    pk::Object reply = pk::loads(c.recv_bytes(Deadline::after(10)));
    ASSERT_TRUE(reply.is<pk::Tuple>());
    EXPECT_EQ(reply.as<pk::Tuple>().items.at(0), pk::str("#TRACEBACK"));
    c.send_bytes(call("put", {pk::Object(7)}), Deadline::after(10));
    EXPECT_EQ(pk::loads(c.recv_bytes(Deadline::after(10))), pk::tuple({pk::str("#RETURN"), pk::Object()}));
    c.send_bytes(call("get", {}), Deadline::after(10));
    EXPECT_EQ(pk::loads(c.recv_bytes(Deadline::after(10))), pk::tuple({pk::str("#RETURN"), pk::Object(7)}));
  }
  expect_connections(2);
}

// A request over the frame limit is refused by the client before anything is
// sent (the connection goes on); a reply over it is accepted, so an item the
// server took always reaches its getter.
TEST_F(Fixture, TheFrameLimitIsCheckedBeforeSendingAndRepliesOfAnySizeArrive) {
  ManagerProxy p(address, "abc", "get_task_queue", Deadline::after(10), 1 << 20);
  EXPECT_EQ(p.call("qsize", {}), pk::Object(0));
  try {
    p.call("put", {pk::str(std::string(2 << 20, 'b'))});
    ADD_FAILURE() << "a 2 MiB put went out";
  } catch (const FrameTooLarge& e) {
    EXPECT_NE(std::string(e.what()).find("limit of 1048576 bytes"), std::string::npos) << e.what();
  }
  EXPECT_EQ(p.call("qsize", {}), pk::Object(0));
  expect_connections(1);  // the same connection: nothing was sent
  std::string big(3 << 20, 'c');
  tasks->put(Value(big), Deadline::never());
  tasks->put(Value(std::string("next")), Deadline::never());
  EXPECT_EQ(p.call("get", {}), pk::str(big));
  EXPECT_EQ(p.call("get", {}), pk::str("next"));
  EXPECT_EQ(tasks->qsize(), 0u);
}

TEST_F(Fixture, ManyClientsAtOnce) {
  std::vector<std::future<void>> clients;
  for (int c = 0; c < 8; ++c)
    clients.push_back(std::async(std::launch::async, [&, c] {
      auto p = proxy();
      for (int i = 0; i < 50; ++i) p->call("put", {pk::Object(c * 1000 + i)});
    }));
  for (auto& f : clients) f.get();
  EXPECT_EQ(tasks->qsize(), 400u);
}

TEST_F(Fixture, RemoteShutdownStopsTheServer) {
  EXPECT_FALSE(server->wait_until_stopped(Deadline::after(0.01)));
  dispatch(address, "abc", "shutdown", {}, Deadline::after(10));
  EXPECT_TRUE(server->wait_until_stopped(Deadline::after(10)));
  server->shutdown();
  EXPECT_EQ(server->active_connections(), 0u);
  EXPECT_THROW(ManagerClient(address, "abc", Deadline::after(2)), std::exception);
}

TEST(ManagerServerPlain, ShutdownInterruptsBlockedCallsAndJoins) {
  ManagerServer::Options o;
  o.authkey = "k";
  ManagerServer server(o);
  auto q = std::make_shared<BasicValueQueue>();
  server.register_typeid("q", std::make_shared<ServedQueue>(q));
  server.start();
  ManagerProxy p({"127.0.0.1", server.port()}, "k", "q", Deadline::after(10));
  auto blocked = std::async(std::launch::async, [&] {
    try {
      p.call("get", {}, {}, Deadline::after(30));
    } catch (const ConnectionClosed&) {
      return true;
    }
    return false;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server.shutdown();
  EXPECT_TRUE(blocked.get());
  EXPECT_EQ(server.active_connections(), 0u);
}

}  // namespace
