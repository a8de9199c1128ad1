// A server speaking CPython's multiprocessing.managers protocol (3.11-3.13):
// Python's BaseManager clients and proxies, and plua's, create and call the
// objects registered here.
//
// Each connection gets its own thread: it authenticates (HMAC challenge both
// ways), reads one request among dummy, create, incref, decref, debug_info,
// number_of_objects, shutdown and accept_connection, and for the last one goes
// on serving method calls (ident, method, args, kwds) until the peer leaves.
// A wrong key, a malformed/truncated/oversized frame or a vanished peer ends
// that connection only; a whole frame that is not a request it can decode
// gets Python's #TRACEBACK reply and the connection goes on. A peer that disconnects while its call blocks (a get
// with no timeout) has the call interrupted, so no item is taken for it later.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "plua/core/cancel.hpp"
#include "plua/core/frame_connection.hpp"
#include "plua/core/served_object.hpp"

namespace plua::core {

class ManagerServer {
 public:
  struct Options {
    // Interface to bind: loopback unless given; "" or "0.0.0.0" is every interface.
    std::string host = "127.0.0.1";
    // 0 picks a free port (see port()).
    std::uint16_t port = 0;
    std::string authkey;
    // Frames above this size close their connection.
    std::size_t max_frame = FrameConnection::kDefaultMaxFrame;
    // Connections beyond this many at once are closed on arrival.
    std::size_t max_clients = 512;
    // A client must authenticate and send its first request within this time.
    double handshake_timeout = 20.0;
  };

  // Binds and listens (throws std::system_error); serving starts with start().
  explicit ManagerServer(Options options);
  // shutdown(), then closes the listening socket.
  ~ManagerServer();
  ManagerServer(const ManagerServer&) = delete;
  ManagerServer& operator=(const ManagerServer&) = delete;

  // Makes `create` of type_id return obj (Python's register with a callable
  // that always returns the same object). Allowed before or after start().
  void register_typeid(const std::string& type_id, std::shared_ptr<ServedObject> obj);

  // Starts the accepting thread; returns at once.
  void start();
  // Stops accepting, interrupts every connection's thread and joins them all.
  // Safe to call twice and from any thread except the server's own.
  void shutdown() noexcept;
  // Waits until a client's `shutdown` request or shutdown(); false if the
  // deadline passed first. Throws core::Interrupted if the caller is asked to stop.
  bool wait_until_stopped(const Deadline& deadline);
  bool stop_requested() const noexcept { return stopping_.load(); }

  // The bound address: numeric host and port (the real one when 0 was asked).
  const std::string& host() const noexcept { return host_; }
  std::uint16_t port() const noexcept { return port_; }
  // Connections being served now.
  std::size_t active_connections() const;

 private:
  struct Session;
  struct Entry {
    std::shared_ptr<ServedObject> object;
    // object->exposed(), asked once at registration rather than on every call.
    std::shared_ptr<const std::vector<std::string>> exposed;
    std::string type_id;
    std::int64_t refcount = 0;
  };

  void accept_loop();
  void run_session(Session* s);
  void serve_session(Session* s, FrameConnection& conn);
  void serve_client(Session* s, FrameConnection& conn);
  std::string handle_public(const std::string& fn, const pickle::Tuple& args,
                            const pickle::Dict& kwds, bool* accept);
  std::string handle_call(const pickle::Object& request);
  void request_stop() noexcept;
  void reap_finished(bool all);

  const Options options_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: wakes the accept loop at shutdown
  std::string host_;
  std::uint16_t port_ = 0;

  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex lifecycle_mu_;  // serialises start() and shutdown()

  mutable std::mutex mu_;
  std::condition_variable stopped_cv_;
  std::map<std::string, std::string> typeids_;  // type_id -> ident; guarded by mu_
  std::map<std::string, Entry> objects_;        // ident -> entry; guarded by mu_
  std::list<std::unique_ptr<Session>> sessions_;  // guarded by mu_
};

}  // namespace plua::core
