#include "plua/core/manager_client.hpp"

#include <unistd.h>

#include <limits>
#include <utility>

#include "plua/core/wire_auth.hpp"

namespace plua::core {

using pickle::Object;

RemoteError::RemoteError(std::string kind, std::string message, std::string traceback)
    : std::runtime_error(kind + (message.empty() ? "" : ": " + message)),
      kind_(std::move(kind)),
      message_(std::move(message)),
      traceback_(std::move(traceback)) {}

ManagerClient::ManagerClient(const ManagerAddress& address, std::string_view authkey,
                             const Deadline& deadline, std::size_t max_frame)
    : conn_(FrameConnection::connect_tcp(address.host, address.port, deadline, max_frame)) {
  ChallengeForm form = answer_challenge(conn_, authkey, deadline);
  deliver_challenge(conn_, authkey, form, deadline);
}

Object ManagerClient::call(const Object& ident, std::string_view method, std::vector<Object> args,
                           pickle::Dict kwds, const Deadline& deadline) {
  std::string request = pickle::dumps(pickle::tuple(
      {ident, pickle::str(std::string(method)), Object(pickle::Tuple{std::move(args)}), Object(std::move(kwds))}));
  // A plua server would drop the connection over it: say why, sending nothing.
  if (request.size() > conn_.max_frame())
    throw FrameTooLarge("the request is " + std::to_string(request.size()) +
                        " bytes pickled, over the manager frame limit of " + std::to_string(conn_.max_frame()) +
                        " bytes (" + std::to_string(conn_.max_frame() >> 20) + " MiB); nothing was sent");
  std::string raw;
  try {
    conn_.send_bytes(request, deadline);
    std::string().swap(request);
    raw = conn_.recv_bytes(deadline, std::numeric_limits<std::size_t>::max());
  } catch (...) {
    conn_.close();
    throw;
  }
  Object reply = pickle::loads(raw);
  const auto* t = reply.is<pickle::Tuple>() ? &reply.as<pickle::Tuple>() : nullptr;
  const std::string* kind = t && t->items.size() == 2 ? t->items[0].str() : nullptr;
  if (!kind) {
    conn_.close();
    throw ProtocolError("malformed reply " + pickle::repr(reply).substr(0, 200));
  }
  const Object& value = t->items[1];
  if (*kind == "#RETURN") return value;
  if (*kind == "#ERROR" && value.is<pickle::Exception>()) {
    const auto& e = value.as<pickle::Exception>();
    throw RemoteError(e.name, pickle::exception_message(e), "");
  }
  if ((*kind == "#TRACEBACK" || *kind == "#UNSERIALIZABLE") && value.str())
    throw RemoteError("RemoteError", *value.str(), *value.str());
  throw RemoteError("ValueError", "unrecognized message type " + pickle::repr(t->items[0]), "");
}

Object dispatch(const ManagerAddress& address, std::string_view authkey, std::string_view method,
                std::vector<Object> args, const Deadline& deadline) {
  ManagerClient client(address, authkey, deadline);
  return client.call(Object(), method, std::move(args), {}, deadline);
}

ManagerProxy::ManagerProxy(ManagerAddress address, std::string authkey, const std::string& type_id,
                           const Deadline& deadline, std::size_t max_frame)
    : address_(std::move(address)), authkey_(std::move(authkey)), type_id_(type_id), max_frame_(max_frame) {
  Object r = dispatch(address_, authkey_, "create", {pickle::str(type_id)}, deadline);
  const auto* t = r.is<pickle::Tuple>() ? &r.as<pickle::Tuple>() : nullptr;
  if (!t || t->items.size() != 2 || !t->items[0].str())
    throw ProtocolError("create: malformed reply " + pickle::repr(r).substr(0, 200));
  ident_ = *t->items[0].str();
  const Object& ex = t->items[1];
  const std::vector<Object>* names = ex.is<pickle::Tuple>()  ? &ex.as<pickle::Tuple>().items
                                     : ex.is<pickle::List>() ? &ex.as<pickle::List>().items
                                                             : nullptr;
  if (names)
    for (const Object& n : *names)
      if (n.str()) exposed_.push_back(*n.str());
}

ManagerProxy::~ManagerProxy() { release(Deadline::after(2.0)); }

bool ManagerProxy::is_exposed(std::string_view method) const {
  for (const auto& name : exposed_)
    if (name == method) return true;
  return false;
}

Object ManagerProxy::call(std::string_view method, std::vector<Object> args, pickle::Dict kwds,
                          const Deadline& deadline) {
  if (released_) throw std::runtime_error("the proxy was released");
  if (!conn_ || !conn_->is_open()) {
    conn_.reset();
    // Connecting is bounded on its own: the deadline is for the reply.
    Deadline connect_deadline = Deadline::after(20.0);
    conn_.emplace(address_, authkey_, connect_deadline, max_frame_);
    conn_->call(Object(), "accept_connection", {pickle::str("plua-" + std::to_string(::getpid()))},
                {}, connect_deadline);
  }
  return conn_->call(pickle::str(ident_), method, std::move(args), std::move(kwds), deadline);
}

void ManagerProxy::release(const Deadline& deadline) noexcept {
  if (released_) return;
  released_ = true;
  conn_.reset();
  try {
    dispatch(address_, authkey_, "decref", {pickle::str(ident_)}, deadline);
  } catch (const std::exception&) {
    // The server may be gone already; the reference dies with it.
  }
}

}  // namespace plua::core
