// The client side of CPython's multiprocessing.managers protocol: connections
// to a manager server (Python's or plua's) and proxies of the objects it serves.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "plua/core/cancel.hpp"
#include "plua/core/frame_connection.hpp"
#include "plua/core/pickle.hpp"

namespace plua::core {

struct ManagerAddress {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
};

// An error the server sent back: ('#ERROR', exception) gives the exception's
// class name as kind (e.g. "Empty", "KeyError"); ('#TRACEBACK', text) gives
// kind "RemoteError" with the server's traceback text.
class RemoteError : public std::runtime_error {
 public:
  RemoteError(std::string kind, std::string message, std::string traceback);
  const std::string& kind() const noexcept { return kind_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& traceback() const noexcept { return traceback_; }

 private:
  std::string kind_;
  std::string message_;
  std::string traceback_;
};

// One authenticated connection to a manager server. Not thread-safe.
class ManagerClient {
 public:
  // Connects and authenticates (answering the server's challenge, then
  // challenging it in the same form). Throws AuthenticationError on a wrong key.
  ManagerClient(const ManagerAddress& address, std::string_view authkey, const Deadline& deadline,
                std::size_t max_frame = FrameConnection::kDefaultMaxFrame);

  // Sends (ident, method, args, kwds) and returns the '#RETURN' value; throws
  // RemoteError for '#ERROR'/'#TRACEBACK'. A request pickled larger than the
  // frame limit (what a plua server accepts) throws FrameTooLarge before
  // anything is sent, and the connection stays usable. A reply may be of any
  // size (Python's server has no limit; a reply holds an item the server
  // already took, so refusing it would lose the item). The reply is awaited
  // until `deadline` (WireTimeout) or an interrupt; after any other exception
  // the connection is closed, since a late reply would be read as the next one's.
  pickle::Object call(const pickle::Object& ident, std::string_view method,
                      std::vector<pickle::Object> args = {}, pickle::Dict kwds = {},
                      const Deadline& deadline = Deadline::never());

  bool is_open() const noexcept { return conn_.is_open(); }
  void close() noexcept { conn_.close(); }

 private:
  FrameConnection conn_;
};

// Python's dispatch on a fresh connection: connect, one request, close.
pickle::Object dispatch(const ManagerAddress& address, std::string_view authkey,
                        std::string_view method, std::vector<pickle::Object> args,
                        const Deadline& deadline);

// A proxy of one object on a manager server, as BaseManager's generated
// methods make: `create` on construction, methods over a connection opened
// with accept_connection on first use, `decref` on release. Not thread-safe.
class ManagerProxy {
 public:
  // Asks the server to create `type_id` and holds the reference it returns.
  // Its connection refuses requests over max_frame bytes (see ManagerClient::call).
  ManagerProxy(ManagerAddress address, std::string authkey, const std::string& type_id,
               const Deadline& deadline, std::size_t max_frame = FrameConnection::kDefaultMaxFrame);
  ~ManagerProxy();
  ManagerProxy(const ManagerProxy&) = delete;
  ManagerProxy& operator=(const ManagerProxy&) = delete;

  // Calls a method of the referent; waits for the reply until `deadline`.
  pickle::Object call(std::string_view method, std::vector<pickle::Object> args,
                      pickle::Dict kwds = {}, const Deadline& deadline = Deadline::never());
  // Gives the reference back (decref) and closes the connection; errors are
  // ignored (the server may be gone). Later calls raise. Safe to call twice.
  void release(const Deadline& deadline) noexcept;

  bool is_exposed(std::string_view method) const;
  const std::string& ident() const noexcept { return ident_; }
  const std::string& type_id_name() const noexcept { return type_id_; }
  const std::vector<std::string>& exposed() const noexcept { return exposed_; }

 private:
  ManagerAddress address_;
  std::string authkey_;
  std::string type_id_;
  std::string ident_;
  std::vector<std::string> exposed_;
  std::size_t max_frame_;
  std::optional<ManagerClient> conn_;
  bool released_ = false;
};

}  // namespace plua::core
