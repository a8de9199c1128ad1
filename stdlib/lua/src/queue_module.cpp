// Lua binding of the `queue` module: Queue, SimpleQueue, JoinableQueue (one
// core::MessageQueue in the shared arena, so the same object works between
// threads, fork children and spawned children), Pipe (core::Connection) and
// wait. Values travel as codec messages, encoded and decoded outside any lock.
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "plua/core/child_process.hpp"
#include "plua/core/connection.hpp"
#include "plua/core/fork_tracked.hpp"
#include "plua/core/message_queue.hpp"
#include "plua/core/wait_any.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/process.hpp"

namespace plua::lua {
namespace {

using core::Connection;
using core::MessageQueue;

constexpr const char* kQueueType = "plua.Queue";
constexpr const char* kConnectionType = "plua.Connection";

constexpr const char* kEmpty = "Empty";
constexpr const char* kFull = "Full";
constexpr const char* kEOFError = "EOFError";
constexpr const char* kBrokenPipeError = "BrokenPipeError";
constexpr const char* kValueError = "ValueError";
constexpr const char* kOSError = "OSError";

// ---------------------------------------------------------------- queues

// A Lua handle holds one counted reference to the shared queue, tracked so
// that fork children count the copies they inherit (fork_tracked.hpp).
using QueueHandle = core::ForkTracked<core::SharedRef<MessageQueue>>;

MessageQueue& check_queue(lua_State* L, int idx = 1) {
  auto* h = static_cast<QueueHandle*>(luaL_checkudata(L, idx, kQueueType));
  if (!h->body()) luaL_argerror(L, idx, "queue handle was released");
  return *h->body();
}

void push_queue(lua_State* L, core::SharedRef<MessageQueue> q) {
  auto* h = static_cast<QueueHandle*>(lua_newuserdatauv(L, sizeof(QueueHandle), 0));
  new (h) QueueHandle(std::move(q));
  luaL_setmetatable(L, kQueueType);
}

int new_queue(lua_State* L, MessageQueue::Kind kind, std::uint64_t maxsize) {
  core::SharedRef<MessageQueue> q;
  CoreFailure f = attempt_core([&] { q = MessageQueue::create(kind, maxsize); });
  if (f) raise_core_failure(L, "queue.Queue", f);
  push_queue(L, std::move(q));
  return 1;
}

// Python: maxsize <= 0 means unbounded.
std::uint64_t opt_maxsize(lua_State* L, int idx) {
  lua_Integer n = luaL_optinteger(L, idx, 0);
  return n > 0 ? static_cast<std::uint64_t>(n) : 0;
}

int queue_Queue(lua_State* L) { return new_queue(L, MessageQueue::Kind::queue, opt_maxsize(L, 1)); }
int queue_SimpleQueue(lua_State* L) { return new_queue(L, MessageQueue::Kind::simple, 0); }
int queue_JoinableQueue(lua_State* L) {
  return new_queue(L, MessageQueue::Kind::joinable, opt_maxsize(L, 1));
}

// The queue of a method call (self at index 1): the methods hold the
// metatable as upvalue 1, so the usual case is one pointer comparison instead
// of luaL_checkudata's lookup by name; anything else gets check_queue's error.
// Leaves the metatable pushed (callers return no value or reset the stack).
MessageQueue& method_queue(lua_State* L) {
  // The same test as luaL_testudata's, with the metatable at hand.
  auto* h = static_cast<QueueHandle*>(lua_touserdata(L, 1));
  if (h && lua_getmetatable(L, 1) && lua_topointer(L, -1) == lua_topointer(L, lua_upvalueindex(1)) && h->body())
    return *h->body();
  return check_queue(L);
}

int do_put(lua_State* L, const char* op, bool block, const core::Deadline& deadline) {
  bool has_item = lua_gettop(L) >= 2;
  MessageQueue& q = method_queue(L);
  if (!has_item) luaL_argerror(L, 2, "value expected");  // as luaL_checkany (the metatable is on top now)
  // One scalar (most items) is written to the stack, with no allocation.
  char scalar[kScalarMessageMax];
  std::size_t scalar_len = encode_scalar(L, 2, scalar);
  std::string encoded;
  if (scalar_len == 0) encoded = encode(L, 2, 1, "item");
  std::string_view message = scalar_len ? std::string_view(scalar, scalar_len) : std::string_view(encoded);
  MessageQueue::PutStatus status = MessageQueue::PutStatus::full;
  CoreFailure f = attempt_core([&] { status = q.put(message, block, deadline); });
  if (f || status != MessageQueue::PutStatus::ok) {
    discard(message);  // its by-reference objects go nowhere
    if (f) raise_core_failure(L, op, f);
    raise_error(L, kFull, "queue is full");
  }
  return 0;
}

// put(v, [block=true], [timeout])
int queue_put(lua_State* L) {
  if (lua_gettop(L) <= 2) return do_put(L, "queue:put", true, core::Deadline::never());
  bool block = opt_boolean(L, 3, true);
  core::Deadline deadline = check_deadline(L, 4);
  return do_put(L, "queue:put", block, deadline);
}

int queue_put_nowait(lua_State* L) {
  return do_put(L, "queue:put_nowait", false, core::Deadline::after(0));
}

int do_get(lua_State* L, const char* op, bool block, const core::Deadline& deadline) {
  MessageQueue& q = method_queue(L);
  // A buffer reused per thread, so most gets allocate nothing before decoding
  // (unless a get runs inside a decode, e.g. from a module it requires).
  thread_local std::string reused;
  thread_local bool reused_busy = false;
  std::string own;
  bool borrow = !reused_busy;
  std::string& message = borrow ? reused : own;
  MessageQueue::GetStatus status = MessageQueue::GetStatus::empty;
  CoreFailure f = attempt_core([&] { status = q.get(message, block, deadline); });
  if (f) raise_core_failure(L, op, f);
  if (status == MessageQueue::GetStatus::empty) raise_error(L, kEmpty, "queue is empty");
  if (status == MessageQueue::GetStatus::closed) raise_error(L, kEmpty, "queue is closed and empty");
  if (decode_scalar(L, message)) return 1;  // the top value is the result: no need to clear the stack
  lua_settop(L, 0);
  struct Busy {
    bool on;
    explicit Busy(bool b) : on(b) { if (on) reused_busy = true; }
    ~Busy() {
      if (!on) return;
      reused_busy = false;
      if (reused.capacity() > (1u << 20)) std::string().swap(reused);  // do not keep a big buffer
    }
  } busy(borrow);
  return decode(L, message);
}

// get([block=true], [timeout])
int queue_get(lua_State* L) {
  if (lua_gettop(L) <= 1) return do_get(L, "queue:get", true, core::Deadline::never());
  bool block = opt_boolean(L, 2, true);
  core::Deadline deadline = check_deadline(L, 3);
  return do_get(L, "queue:get", block, deadline);
}

int queue_get_nowait(lua_State* L) {
  return do_get(L, "queue:get_nowait", false, core::Deadline::after(0));
}

int queue_qsize(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_queue(L).qsize()));
  return 1;
}

int queue_empty(lua_State* L) {
  lua_pushboolean(L, check_queue(L).empty());
  return 1;
}

int queue_full(lua_State* L) {
  lua_pushboolean(L, check_queue(L).full());
  return 1;
}

// Closing twice is harmless (rule 6), and so is closing a released handle.
int queue_close(lua_State* L) {
  auto* h = static_cast<QueueHandle*>(luaL_checkudata(L, 1, kQueueType));
  if (h->body()) h->body()->close();
  return 0;
}

MessageQueue& check_joinable(lua_State* L, const char* op) {
  MessageQueue& q = check_queue(L);
  if (q.kind() != MessageQueue::Kind::joinable) luaL_error(L, "queue:%s: not a JoinableQueue", op);
  return q;
}

int queue_task_done(lua_State* L) {
  MessageQueue& q = check_joinable(L, "task_done");
  CoreFailure f = attempt_core([&] { q.task_done(); });
  if (f) raise_core_failure(L, "queue:task_done", f);
  return 0;
}

// join([timeout]): true once every item put was task_done (false on timeout).
int queue_join(lua_State* L) {
  MessageQueue& q = check_joinable(L, "join");
  core::Deadline deadline = check_deadline(L, 2);
  bool done = false;
  CoreFailure f = attempt_core([&] { done = q.join(deadline); });
  if (f) raise_core_failure(L, "queue:join", f);
  lua_pushboolean(L, done);
  return 1;
}

// __gc and __close: this handle lets go of the queue (others keep it alive).
int queue_release(lua_State* L) {
  static_cast<QueueHandle*>(luaL_checkudata(L, 1, kQueueType))->reset();
  return 0;
}

int queue_gc(lua_State* L) {
  static_cast<QueueHandle*>(luaL_checkudata(L, 1, kQueueType))->~QueueHandle();
  return 0;
}

int queue_tostring(lua_State* L) {
  auto* h = static_cast<QueueHandle*>(luaL_checkudata(L, 1, kQueueType));
  if (!h->body()) {
    lua_pushliteral(L, "<Queue (released)>");
    return 1;
  }
  static const char* const kNames[] = {"Queue", "SimpleQueue", "JoinableQueue"};
  const MessageQueue& q = *h->body();
  lua_pushfstring(L, "<%s %p size=%d%s>", kNames[static_cast<int>(q.kind())],
                  static_cast<const void*>(&q), static_cast<int>(q.qsize()),
                  q.closed() ? " closed" : "");
  return 1;
}

// By reference: an arena reference, valid in any process (fork or spawn).
void queue_write_ref(lua_State* L, int idx, std::string& out) {
  MessageQueue& q = check_queue(L, idx);
  auto* h = static_cast<QueueHandle*>(lua_touserdata(L, idx));
  (void)q;
  core::SharedRefData d = h->body().ref_retained();
  out.append(reinterpret_cast<const char*>(&d), sizeof d);
}

bool read_queue_ref(std::string_view ref, core::SharedRefData& d) {
  if (ref.size() != sizeof d) return false;
  std::memcpy(&d, ref.data(), sizeof d);
  return true;
}

// Identity (SendableClass): a queue is its block in the shared arena.
const void* queue_identity(lua_State* L, int idx) noexcept {
  return static_cast<QueueHandle*>(lua_touserdata(L, idx))->body().get();
}

void queue_push_ref(lua_State* L, std::string_view ref) {
  core::SharedRefData d;
  if (!read_queue_ref(ref, d)) luaL_error(L, "codec: malformed queue reference");
  core::SharedRef<MessageQueue> q;
  CoreFailure f = attempt_core([&] { q = core::SharedRef<MessageQueue>::adopt_ref(d); });
  if (f) raise_core_failure(L, "queue (received)", f);
  push_queue(L, std::move(q));
}

void queue_drop_ref(std::string_view ref) noexcept {
  core::SharedRefData d;
  if (!read_queue_ref(ref, d)) return;
  try {
    core::SharedRef<MessageQueue>::adopt_ref(d);  // released at once
  } catch (const std::exception&) {
    // The arena is gone: so is the count we would drop.
  }
}

// ---------------------------------------------------------------- pipes

struct ConnHandle {
  std::shared_ptr<Connection> c;
};

Connection& check_conn(lua_State* L, int idx = 1) {
  return *static_cast<ConnHandle*>(luaL_checkudata(L, idx, kConnectionType))->c;
}

void push_conn(lua_State* L, std::shared_ptr<Connection> c) {
  auto* h = static_cast<ConnHandle*>(lua_newuserdatauv(L, sizeof(ConnHandle), 0));
  new (h) ConnHandle{std::move(c)};
  luaL_setmetatable(L, kConnectionType);
}

// Pipe([duplex=true]) -> two Connections (simplex: the first receives, the second sends).
int queue_Pipe(lua_State* L) {
  bool duplex = opt_boolean(L, 1, true);
  std::pair<std::shared_ptr<Connection>, std::shared_ptr<Connection>> ends;
  CoreFailure f = attempt_core([&] { ends = Connection::pipe(duplex); });
  if (f) raise_core_failure(L, "queue.Pipe", f);
  push_conn(L, std::move(ends.first));
  push_conn(L, std::move(ends.second));
  return 2;
}

int send_message(lua_State* L, const char* op, std::string message) {
  Connection& c = check_conn(L);
  CoreFailure f = attempt_core([&] { c.send_bytes(message); });
  if (f) {
    discard(message);
    raise_core_failure(L, op, f);
  }
  return 0;
}

int conn_send(lua_State* L) {
  check_conn(L);
  luaL_checkany(L, 2);
  return send_message(L, "connection:send", encode(L, 2, 1, "obj"));
}

// send_bytes(s): raw bytes; the other side reads them with recv_bytes.
int conn_send_bytes(lua_State* L) {
  size_t len = 0;
  check_conn(L);
  const char* s = luaL_checklstring(L, 2, &len);
  Connection& c = check_conn(L);
  CoreFailure f = attempt_core([&] { c.send_bytes(std::string_view(s, len)); });
  if (f) raise_core_failure(L, "connection:send_bytes", f);
  return 0;
}

std::string receive(lua_State* L, const char* op) {
  Connection& c = check_conn(L);
  std::optional<std::string> message;
  CoreFailure f = attempt_core([&] { message = c.recv_bytes(); });
  if (f) raise_core_failure(L, op, f);
  if (!message) raise_error(L, kEOFError, "the other end of the pipe is closed");
  return std::move(*message);
}

int conn_recv(lua_State* L) {
  std::string message = receive(L, "connection:recv");
  lua_settop(L, 0);
  return decode(L, message);
}

int conn_recv_bytes(lua_State* L) {
  std::string message = receive(L, "connection:recv_bytes");
  lua_pushlstring(L, message.data(), message.size());
  return 1;
}

// poll([timeout]): as Python, no argument means 0 (do not wait) and nil means forever.
int conn_poll(lua_State* L) {
  Connection& c = check_conn(L);
  core::Deadline deadline = lua_isnone(L, 2) ? core::Deadline::after(0) : check_deadline(L, 2);
  bool ready = false;
  CoreFailure f = attempt_core([&] { ready = c.poll(deadline); });
  if (f) raise_core_failure(L, "connection:poll", f);
  lua_pushboolean(L, ready);
  return 1;
}

int conn_close(lua_State* L) {
  check_conn(L).close();
  return 0;
}

int conn_fileno(lua_State* L) {
  Connection& c = check_conn(L);
  if (c.closed()) raise_error(L, kOSError, "connection is closed");
  lua_pushinteger(L, c.fd());
  return 1;
}

int conn_gc(lua_State* L) {
  static_cast<ConnHandle*>(luaL_checkudata(L, 1, kConnectionType))->~ConnHandle();
  return 0;
}

int conn_index(lua_State* L) {
  Connection& c = check_conn(L);
  const char* key = luaL_checkstring(L, 2);
  if (std::strcmp(key, "closed") == 0) {
    lua_pushboolean(L, c.closed());
    return 1;
  }
  if (std::strcmp(key, "readable") == 0) {
    lua_pushboolean(L, c.readable());
    return 1;
  }
  if (std::strcmp(key, "writable") == 0) {
    lua_pushboolean(L, c.writable());
    return 1;
  }
  luaL_getmetafield(L, 1, "__methods");
  lua_getfield(L, -1, key);
  return 1;
}

int conn_tostring(lua_State* L) {
  Connection& c = check_conn(L);
  lua_pushfstring(L, "<Connection fd=%d%s%s%s>", c.fd(), c.readable() ? " r" : "",
                  c.writable() ? " w" : "", c.closed() ? " closed" : "");
  return 1;
}

// Connections received by a spawned child, so one descriptor is one object.
std::mutex g_received_mu;
std::map<std::pair<int, int>, std::weak_ptr<Connection>> g_received;  // guarded by g_received_mu

// In-process: a shared reference ('L'). For a spawned child's start message:
// the descriptor, passed to the child ('F' + pid + fd + direction).
void conn_write_ref(lua_State* L, int idx, std::string& out) {
  Connection& c = check_conn(L, idx);
  auto* h = static_cast<ConnHandle*>(lua_touserdata(L, idx));
  int fd = c.fd();
  if (fd >= 0 && spawn_pass_fd(fd)) {
    std::int32_t ids[2] = {static_cast<std::int32_t>(::getpid()), fd};
    out.push_back('F');
    out.append(reinterpret_cast<const char*>(ids), sizeof ids);
    out.push_back(static_cast<char>((c.readable() ? 1 : 0) | (c.writable() ? 2 : 0)));
    return;
  }
  out.push_back('L');
  write_shared_ref(out, h->c);
}

// To another process only as a spawn child's inherited descriptor (a pool's
// worker processes, for one, cannot receive it).
bool conn_can_cross(lua_State* L, int idx) {
  auto* h = static_cast<ConnHandle*>(luaL_testudata(L, idx, kConnectionType));
  return h && h->c->fd() >= 0 && spawn_collecting_fds();
}

// Identity (SendableClass): a Connection in this process is its core object;
// one received as a descriptor (a spawn child's) is new there anyway.
const void* conn_identity(lua_State* L, int idx) noexcept {
  return static_cast<ConnHandle*>(lua_touserdata(L, idx))->c.get();
}
const void* conn_ref_identity(std::string_view ref) noexcept {
  if (ref.empty() || ref[0] != 'L') return nullptr;
  return shared_ref_identity<Connection>(ref.substr(1));
}

void conn_push_ref(lua_State* L, std::string_view ref) {
  if (!ref.empty() && ref[0] == 'L') {
    push_conn(L, take_shared_ref<Connection>(L, ref.substr(1), kConnectionType));
    return;
  }
  std::int32_t ids[2];
  if (ref.size() != 2 + sizeof ids || ref[0] != 'F') luaL_error(L, "codec: malformed connection reference");
  std::memcpy(ids, ref.data() + 1, sizeof ids);
  int mode = ref.back();
  std::shared_ptr<Connection> c;
  {
    std::lock_guard lock(g_received_mu);
    auto& slot = g_received[{ids[0], ids[1]}];
    c = slot.lock();
    if (!c) {
      int local = spawn_take_inherited_fd(ids[0], ids[1]);
      if (local >= 0) {
        c = std::make_shared<Connection>(core::OwnedFd(local), mode & 1, mode & 2);
        slot = c;
      }
    }
  }
  if (!c) luaL_error(L, "a Connection cannot cross to another process (except as a spawned Process's argument)");
  push_conn(L, std::move(c));
}

void conn_drop_ref(std::string_view ref) noexcept {
  if (!ref.empty() && ref[0] == 'L') drop_shared_ref<Connection>(ref.substr(1));
}

// ---------------------------------------------------------------- wait

bool queue_ready(const void* q) { return static_cast<const MessageQueue*>(q)->readable(); }
bool conn_ready(const void* c) {
  auto* conn = static_cast<const Connection*>(c);
  return conn->closed() || conn->has_buffered();
}
bool always_ready(const void*) { return true; }

// wait(objects, [timeout]) -> the ready ones (an empty list on timeout).
int queue_wait(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  core::Deadline deadline = check_deadline(L, 2);
  lua_Integer n = luaL_len(L, 1);
  std::vector<core::WaitSource> sources;
  std::vector<std::shared_ptr<void>> keep;  // holds connections and processes while waiting
  std::vector<core::SharedRef<MessageQueue>> keep_queues;
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_geti(L, 1, i);
    core::WaitSource src;
    if (auto* qh = static_cast<QueueHandle*>(luaL_testudata(L, -1, kQueueType))) {
      if (!qh->body()) luaL_argerror(L, 1, "a queue handle was released");
      keep_queues.push_back(qh->body());
      src.ready = queue_ready;
      src.arg = qh->body().get();
    } else if (auto* ch = static_cast<ConnHandle*>(luaL_testudata(L, -1, kConnectionType))) {
      // As Python's wait: a connection closed here has no handle to wait on.
      if (ch->c->closed())
        raise_error(L, kOSError, lua_pushfstring(L, "queue.wait: objects[%I] is a closed connection", i));
      keep.push_back(ch->c);
      src.fd = ch->c->fd();
      src.ready = conn_ready;
      src.arg = ch->c.get();
    } else if (auto child = to_child_process(L, -1)) {
      keep.push_back(child);
      src.fd = child->pidfd();
      if (src.fd < 0) src.ready = always_ready;  // already reaped
    } else {
      luaL_argerror(L, 1, "objects must be Connections, Queues or started child Processes");
    }
    sources.push_back(src);
    lua_pop(L, 1);
  }
  std::vector<std::size_t> ready;
  CoreFailure f = attempt_core([&] { ready = core::wait_any(sources, deadline); });
  if (f) raise_core_failure(L, "queue.wait", f);
  lua_createtable(L, static_cast<int>(ready.size()), 0);
  for (std::size_t k = 0; k < ready.size(); ++k) {
    lua_geti(L, 1, static_cast<lua_Integer>(ready[k] + 1));
    lua_rawseti(L, -2, static_cast<lua_Integer>(k + 1));
  }
  return 1;
}

// ---------------------------------------------------------------- tables

constexpr luaL_Reg kQueueMethods[] = {
    {"put", queue_put},         {"get", queue_get},
    {"put_nowait", queue_put_nowait}, {"get_nowait", queue_get_nowait},
    {"qsize", queue_qsize},     {"empty", queue_empty},
    {"full", queue_full},       {"close", queue_close},
    {"task_done", queue_task_done}, {"join", queue_join},
    {nullptr, nullptr},
};

constexpr luaL_Reg kQueueMeta[] = {
    {"__gc", queue_gc}, {"__close", queue_release}, {"__tostring", queue_tostring},
    {nullptr, nullptr},
};

constexpr luaL_Reg kConnMethods[] = {
    {"send", conn_send},   {"recv", conn_recv},     {"send_bytes", conn_send_bytes},
    {"recv_bytes", conn_recv_bytes}, {"poll", conn_poll}, {"close", conn_close},
    {"fileno", conn_fileno}, {nullptr, nullptr},
};

constexpr luaL_Reg kConnMeta[] = {
    {"__index", conn_index}, {"__gc", conn_gc}, {"__close", conn_close},
    {"__tostring", conn_tostring}, {nullptr, nullptr},
};

constexpr luaL_Reg kFunctions[] = {
    {"Queue", queue_Queue},   {"SimpleQueue", queue_SimpleQueue},
    {"JoinableQueue", queue_JoinableQueue}, {"Pipe", queue_Pipe},
    {"wait", queue_wait},     {nullptr, nullptr},
};

}  // namespace
}  // namespace plua::lua

int luaopen_plua_queue(lua_State* L) {
  using namespace plua::lua;
  if (luaL_newmetatable(L, kQueueType)) {
    luaL_setfuncs(L, kQueueMeta, 0);
    luaL_newlibtable(L, kQueueMethods);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, kQueueMethods, 1);  // the metatable as upvalue 1: see method_queue
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, kConnectionType)) {
    luaL_setfuncs(L, kConnMeta, 0);
    luaL_newlib(L, kConnMethods);
    lua_setfield(L, -2, "__methods");
  }
  lua_pop(L, 1);
  SendableClass queues{"queue", kQueueType, queue_write_ref, queue_push_ref, queue_drop_ref};
  queues.ref_identity = arena_ref_identity;
  queues.identity = queue_identity;
  register_sendable_class(queues);
  SendableClass connections{"queue", kConnectionType, conn_write_ref, conn_push_ref, conn_drop_ref, false, conn_can_cross};
  connections.ref_identity = conn_ref_identity;
  connections.identity = conn_identity;
  register_sendable_class(connections);
  luaL_newlib(L, kFunctions);
  for (const char* kind : {kEmpty, kFull, kEOFError, kBrokenPipeError, kValueError, kOSError}) {
    lua_pushstring(L, kind);
    lua_setfield(L, -2, kind);
  }
  return 1;
}
