// Fuzzes the manager server's request decoding (manager_server.cpp) end to
// end: a real ManagerServer on loopback, serving two queues; for each input
// the harness connects, passes the HMAC handshake honestly (the key is not
// what is fuzzed here: handshake_fuzz does that), then sends the input's
// frames and reads every reply until the server closes.
//
// Input: frames separated by "\n##\n". The first is the public request
// (create, accept_connection, incref, debug_info, ...); after an
// accept_connection the others are method calls. A frame that is a pickled
// 4-tuple whose ident is the str "Q1" or "Q2" has it replaced by the real
// ident of the unbounded or the one-slot queue (idents are addresses, which
// an input cannot know); any other frame goes out byte for byte.
//
// Checked: the server never crashes, answers or closes every connection
// (a blocked get or put ends when the peer leaves), and goes on serving the
// next client. Queues are emptied between inputs, so runs repeat.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plua/core/cancel.hpp"
#include "plua/core/frame_connection.hpp"
#include "plua/core/manager_client.hpp"
#include "plua/core/manager_server.hpp"
#include "plua/core/pickle.hpp"
#include "plua/core/served_queue.hpp"
#include "plua/core/wire_auth.hpp"

using namespace plua::core;

namespace {

constexpr std::string_view kKey = "fuzz-key";
constexpr std::string_view kSeparator = "\n##\n";

struct Server {
  std::shared_ptr<BasicValueQueue> q1 = std::make_shared<BasicValueQueue>();
  std::shared_ptr<BasicValueQueue> q2 = std::make_shared<BasicValueQueue>(1);
  std::unique_ptr<ManagerServer> server;
  std::string ident1, ident2;

  Server() {
    ManagerServer::Options o;
    o.authkey = std::string(kKey);
    o.max_frame = 1 << 20;
    o.handshake_timeout = 5.0;
    server = std::make_unique<ManagerServer>(o);
    server->register_typeid("Q1", std::make_shared<ServedQueue>(q1));
    server->register_typeid("Q2", std::make_shared<ServedQueue>(q2));
    server->start();
    ident1 = ident_of("Q1");
    ident2 = ident_of("Q2");
  }
  ~Server() { server->shutdown(); }

  std::string ident_of(const char* type_id) {
    ManagerProxy proxy({"127.0.0.1", server->port()}, std::string(kKey), type_id, Deadline::after(10));
    std::string ident = proxy.ident();
    proxy.release(Deadline::after(10));
    return ident;
  }
  void drain() {
    while (q1->get(Deadline::after(0))) {
    }
    while (q2->get(Deadline::after(0))) {
    }
  }
};

Server* g_server = nullptr;

// The frame to send: placeholders "Q1"/"Q2" in a request's ident become real idents.
std::string prepare(std::string_view frame) {
  try {
    pickle::Object obj = pickle::loads(frame);
    if (obj.is<pickle::Tuple>()) {
      auto& items = obj.as<pickle::Tuple>().items;
      if (items.size() == 4 && items[0].str()) {
        const std::string& id = *items[0].str();
        if (id == "Q1" || id == "Q2") {
          items[0] = pickle::str(id == "Q1" ? g_server->ident1 : g_server->ident2);
          return pickle::dumps(obj);
        }
      }
    }
  } catch (const pickle::PickleError&) {
  }
  return std::string(frame);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (!g_server || g_server->server->stop_requested()) {
    delete g_server;  // a fuzzed "shutdown" request stopped the last one
    g_server = new Server();
  }
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> frames;
  for (;;) {
    std::size_t at = input.find(kSeparator);
    frames.push_back(prepare(input.substr(0, at)));
    if (at == std::string_view::npos) break;
    input.remove_prefix(at + kSeparator.size());
  }

  FrameConnection conn =
      FrameConnection::connect_tcp("127.0.0.1", g_server->server->port(), Deadline::after(10));
  Deadline deadline = Deadline::after(10);
  ChallengeForm form = answer_challenge(conn, kKey, deadline);
  deliver_challenge(conn, kKey, form, deadline);
  try {
    for (const std::string& f : frames) conn.send_bytes(f, deadline);
  } catch (const ConnectionClosed&) {
    // The server ended the session early (a public request other than accept_connection).
  }
  // The server must answer what it can and close once it reads EOF: a get or
  // put that blocks is interrupted because this side has left.
  ::shutdown(conn.fd(), SHUT_WR);
  try {
    for (;;) (void)conn.recv_bytes(deadline);
  } catch (const ConnectionClosed&) {
  } catch (const WireTimeout&) {
    std::fprintf(stderr, "manager_fuzz: the server neither answered nor closed within 10 s\n");
    std::abort();
  }
  g_server->drain();
  return 0;
}
