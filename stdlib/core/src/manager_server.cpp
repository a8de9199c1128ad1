#include "plua/core/manager_server.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <system_error>
#include <vector>

#include "plua/core/wire_auth.hpp"

namespace plua::core {

struct ManagerServer::Session {
  explicit Session(int fd, std::size_t max_frame) : conn(fd, max_frame), fd(fd) {}
  FrameConnection conn;  // used by the session's thread only; closed after join
  const int fd;          // watched by the accept loop while a call blocks
  std::thread thread;
  StopFlag* flag = nullptr;  // the session thread's stop flag; guarded by mu_
  bool stop = false;         // guarded by mu_
  std::atomic<bool> in_call{false};
  std::atomic<bool> finished{false};
};

namespace {

using pickle::Object;

// True once the session's peer has hung up (or its socket failed): its call
// is then abandoned, so nothing is taken for a client that cannot receive it.
bool peer_gone(void* fd) noexcept {
  pollfd p{*static_cast<const int*>(fd), POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::string reply(const char* kind, Object value) {
  return pickle::dumps(pickle::tuple({pickle::str(kind), std::move(value)}));
}
std::string reply_return(Object value) { return reply("#RETURN", std::move(value)); }
// What Python's format_exc() would send: the client raises RemoteError with it.
std::string reply_traceback(const std::string& type, const std::string& message) {
  return reply("#TRACEBACK", pickle::str("Traceback (most recent call last):\n"
                                         "  File \"<plua manager server>\"\n" +
                                         type + ": " + message + "\n"));
}

std::string ident_of(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%zx", reinterpret_cast<std::uintptr_t>(p));
  return buf;
}

}  // namespace

ManagerServer::ManagerServer(Options options) : options_(std::move(options)) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  std::string service = std::to_string(options_.port);
  const char* node = options_.host.empty() ? nullptr : options_.host.c_str();
  if (node == nullptr) hints.ai_family = AF_INET;
  if (int rc = getaddrinfo(node, service.c_str(), &hints, &found); rc != 0)
    throw std::runtime_error("cannot resolve '" + options_.host + "': " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  const addrinfo* ai = list.get();
  listen_fd_ = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw_errno("socket");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_fd_, ai->ai_addr, ai->ai_addrlen) < 0 || ::listen(listen_fd_, 128) < 0) {
    int err = errno;
    ::close(listen_fd_);
    throw std::system_error(err, std::generic_category(),
                            "cannot listen on " + options_.host + ":" + service);
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  char hostbuf[NI_MAXHOST], portbuf[NI_MAXSERV];
  getnameinfo(reinterpret_cast<sockaddr*>(&bound), len, hostbuf, sizeof hostbuf, portbuf,
              sizeof portbuf, NI_NUMERICHOST | NI_NUMERICSERV);
  host_ = hostbuf;
  port_ = static_cast<std::uint16_t>(std::stoi(portbuf));
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    int err = errno;
    ::close(listen_fd_);
    throw std::system_error(err, std::generic_category(), "eventfd");
  }
}

ManagerServer::~ManagerServer() {
  shutdown();
  ::close(wake_fd_);
}

void ManagerServer::register_typeid(const std::string& type_id, std::shared_ptr<ServedObject> obj) {
  std::lock_guard lock(mu_);
  std::string ident = ident_of(obj.get());
  auto& entry = objects_[ident];
  entry.exposed = std::make_shared<const std::vector<std::string>>(obj->exposed());
  entry.object = std::move(obj);
  entry.type_id = type_id;
  typeids_[type_id] = ident;
}

void ManagerServer::start() {
  std::lock_guard lock(lifecycle_mu_);
  if (acceptor_.joinable() || stopping_) return;
  acceptor_ = std::thread([this] { accept_loop(); });
}

void ManagerServer::request_stop() noexcept {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stopped_cv_.notify_all();
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wake_fd_, &one, sizeof one);
}

void ManagerServer::shutdown() noexcept {
  std::lock_guard lock(lifecycle_mu_);
  request_stop();
  if (acceptor_.joinable()) acceptor_.join();
  // Refuse new connections at once, as a Python server process that exited would.
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

bool ManagerServer::wait_until_stopped(const Deadline& deadline) {
  std::unique_lock lock(mu_);
  return wait_until(stopped_cv_, lock, deadline, [&] { return stopping_.load(); });
}

std::size_t ManagerServer::active_connections() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& s : sessions_) n += s->finished ? 0 : 1;
  return n;
}

void ManagerServer::reap_finished(bool all) {
  std::list<std::unique_ptr<Session>> done;
  {
    std::lock_guard lock(mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (all || (*it)->finished) {
        done.push_back(std::move(*it));
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : done)
    if (s->thread.joinable()) s->thread.join();
}

void ManagerServer::accept_loop() {
  std::vector<pollfd> fds;
  std::vector<Session*> watched;
  while (!stopping_) {
    fds.assign({pollfd{listen_fd_, POLLIN, 0}, pollfd{wake_fd_, POLLIN, 0}});
    watched.clear();
    {
      std::lock_guard lock(mu_);
      for (auto& s : sessions_)
        if (s->in_call && !s->finished) {
          fds.push_back(pollfd{s->fd, POLLRDHUP, 0});
          watched.push_back(s.get());
        }
    }
    int rc = ::poll(fds.data(), fds.size(), static_cast<int>(kWaitSlice.count()));
    if (rc < 0 && errno != EINTR) break;
    if (stopping_) break;
    // A peer that went away while its call blocks: interrupt the call.
    for (std::size_t i = 0; i < watched.size(); ++i)
      if (fds[i + 2].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
        std::lock_guard lock(mu_);
        if (watched[i]->flag) watched[i]->flag->request();
      }
    if (fds[0].revents & POLLIN) {
      for (;;) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        std::lock_guard lock(mu_);
        if (sessions_.size() >= options_.max_clients) {
          ::close(fd);
          continue;
        }
        try {
          sessions_.push_back(std::make_unique<Session>(fd, options_.max_frame));
          Session* s = sessions_.back().get();
          s->thread = std::thread([this, s] { run_session(s); });
        } catch (const std::exception&) {
          // Out of threads or memory: this client is dropped, the server goes on.
          if (!sessions_.empty() && !sessions_.back()->thread.joinable()) sessions_.pop_back();
        }
      }
    }
    reap_finished(false);
  }
  {
    std::lock_guard lock(mu_);
    for (auto& s : sessions_) {
      s->stop = true;
      if (s->flag) s->flag->request();
    }
  }
  reap_finished(true);
}

void ManagerServer::run_session(Session* s) {
  {
    std::lock_guard lock(mu_);
    s->flag = &this_thread_stop_flag();
    if (s->stop) s->flag->request();
  }
  // Before a blocked call takes an item, the session checks its peer itself:
  // the accept loop notices a hang-up only within a wait slice or two.
  this_thread_stop_flag().set_probe(peer_gone, const_cast<int*>(&s->fd));
  try {
    serve_session(s, s->conn);
  } catch (const std::exception&) {
    // Interrupted, a vanished or misbehaving peer, a wrong key: this connection ends.
  }
  this_thread_stop_flag().set_probe(nullptr, nullptr);
  {
    std::lock_guard lock(mu_);
    s->flag = nullptr;
  }
  s->finished = true;
}

void ManagerServer::serve_session(Session* s, FrameConnection& conn) {
  Deadline handshake = Deadline::after(options_.handshake_timeout);
  deliver_challenge(conn, options_.authkey, ChallengeForm::kTagged, handshake);
  answer_challenge(conn, options_.authkey, handshake);
  std::string raw = conn.recv_bytes(handshake);
  Object request;
  try {
    request = pickle::loads(raw);
  } catch (const pickle::PickleError& e) {
    conn.send_bytes(reply_traceback("UnpicklingError", e.what()), handshake);
    return;
  }
  const auto* t = request.is<pickle::Tuple>() ? &request.as<pickle::Tuple>() : nullptr;
  if (!t || t->items.size() != 4 || !t->items[1].str() || !t->items[2].is<pickle::Tuple>() ||
      !t->items[3].is<pickle::Dict>()) {
    conn.send_bytes(reply_traceback("ValueError", "malformed request " + pickle::repr(request).substr(0, 200)),
                    handshake);
    return;
  }
  bool accept = false;
  std::string answer = handle_public(*t->items[1].str(), t->items[2].as<pickle::Tuple>(),
                                     t->items[3].as<pickle::Dict>(), &accept);
  conn.send_bytes(answer, handshake);
  if (*t->items[1].str() == "shutdown") request_stop();
  if (accept) serve_client(s, conn);
}

std::string ManagerServer::handle_public(const std::string& fn, const pickle::Tuple& args,
                                         const pickle::Dict& kwds, bool* accept) {
  auto arg_str = [&](std::size_t i) -> const std::string* {
    return i < args.items.size() ? args.items[i].str() : nullptr;
  };
  if (fn == "dummy") return reply_return(Object());
  if (fn == "accept_connection") {
    *accept = true;
    return reply_return(Object());
  }
  if (fn == "shutdown") return reply_return(Object());
  std::lock_guard lock(mu_);
  if (fn == "create") {
    const std::string* type_id = arg_str(0);
    if (!type_id) return reply_traceback("TypeError", "create() needs a type_id string");
    auto it = typeids_.find(*type_id);
    if (it == typeids_.end()) return reply_traceback("KeyError", pickle::repr(args.items[0]));
    if (args.items.size() > 1 || !kwds.items.empty())
      return reply_traceback("TypeError", "'" + *type_id +
                                              "' takes no arguments: plua calls the registered "
                                              "callable once, when the server starts");
    Entry& e = objects_[it->second];
    ++e.refcount;
    std::vector<Object> exposed;
    for (auto& name : *e.exposed) exposed.push_back(pickle::str(name));
    return reply_return(pickle::tuple({pickle::str(it->second), pickle::tuple(std::move(exposed))}));
  }
  if (fn == "incref" || fn == "decref") {
    const std::string* ident = arg_str(0);
    auto it = ident ? objects_.find(*ident) : objects_.end();
    if (it == objects_.end())
      return reply_traceback("KeyError", args.items.empty() ? "()" : pickle::repr(args.items[0]));
    if (fn == "incref") {
      ++it->second.refcount;
    } else {
      if (it->second.refcount <= 0)
        return reply_traceback("AssertionError", "Id " + *ident + " has refcount 0, not 1+");
      --it->second.refcount;
    }
    return reply_return(Object());
  }
  if (fn == "number_of_objects") {
    std::int64_t n = 0;
    for (auto& [ident, e] : objects_) n += e.refcount > 0 ? 1 : 0;
    return reply_return(Object(n));
  }
  if (fn == "debug_info") {
    std::string out;
    for (auto& [ident, e] : objects_) {
      if (e.refcount <= 0) continue;
      if (!out.empty()) out += '\n';
      out += "  " + ident + ":       refcount=" + std::to_string(e.refcount) + "\n    " +
             e.object->describe().substr(0, 75);
    }
    return reply_return(pickle::str(out));
  }
  return reply_traceback("AssertionError", "'" + fn + "' unrecognized");
}

void ManagerServer::serve_client(Session* s, FrameConnection& conn) {
  for (;;) {
    std::string raw = conn.recv_bytes(Deadline::never());
    Object request;
    try {
      request = pickle::loads(raw);
    } catch (const pickle::PickleError& e) {
      // The frame was whole, so the stream is still in step: say why and go
      // on, as Python's serve_client does (only a bad frame ends the connection).
      conn.send_bytes(reply_traceback("UnpicklingError", e.what()),
                      Deadline::after(options_.handshake_timeout));
      continue;
    }
    s->in_call = true;
    std::string answer = handle_call(request);
    s->in_call = false;
    conn.send_bytes(answer, Deadline::after(options_.handshake_timeout));
  }
}

std::string ManagerServer::handle_call(const Object& request) {
  const auto* t = request.is<pickle::Tuple>() ? &request.as<pickle::Tuple>() : nullptr;
  if (!t || t->items.size() != 4 || !t->items[1].str() || !t->items[2].is<pickle::Tuple>() ||
      !t->items[3].is<pickle::Dict>())
    return reply_traceback("ValueError", "malformed request " + pickle::repr(request).substr(0, 200));
  const std::string& method = *t->items[1].str();
  std::shared_ptr<ServedObject> obj;
  std::shared_ptr<const std::vector<std::string>> exposed;
  {
    std::lock_guard lock(mu_);
    const std::string* ident = t->items[0].str();
    auto it = ident ? objects_.find(*ident) : objects_.end();
    if (it != objects_.end()) {
      obj = it->second.object;
      exposed = it->second.exposed;
    }
  }
  if (!obj) return reply_traceback("KeyError", pickle::repr(t->items[0]));
  if (method == "__str__" || method == "__repr__") return reply_return(pickle::str(obj->describe()));
  bool known = false;
  for (auto& name : *exposed) known = known || name == method;
  if (!known) {
    std::string list;
    for (auto& name : *exposed) list += (list.empty() ? "'" : ", '") + name + "'";
    return reply_traceback("AttributeError", "method '" + method + "' of " + obj->describe() +
                                                 " is not in exposed=(" + list + ")");
  }
  try {
    Object result = obj->call(method, t->items[2].as<pickle::Tuple>().items,
                              t->items[3].as<pickle::Dict>());
    return reply_return(std::move(result));
  } catch (const RaisedException& e) {
    return reply("#ERROR", Object(e.exception()));
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    return reply_traceback("RuntimeError", e.what());
  }
}

}  // namespace plua::core
