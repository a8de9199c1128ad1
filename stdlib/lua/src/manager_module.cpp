// Lua binding of the `manager` module: BaseManager (a server speaking Python's
// multiprocessing.managers protocol, or a client of one) and the proxies its
// registered names return. The wire, the server and the client are core
// (manager_server.hpp, manager_client.hpp); values cross as Lua -> codec
// message -> core::Value -> pickle, and back.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "plua/core/codec_format.hpp"
#include "plua/core/manager_client.hpp"
#include "plua/core/manager_server.hpp"
#include "plua/core/message_value_queue.hpp"
#include "plua/core/pickle.hpp"
#include "plua/core/wire_auth.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"

namespace plua::lua {
namespace {

namespace pk = core::pickle;

constexpr const char* kManagerType = "plua.BaseManager";
constexpr const char* kProxyType = "plua.ManagerProxy";
constexpr const char* kQueueType = "plua.Queue";
constexpr const char* kAuthenticationError = "AuthenticationError";
constexpr const char* kRemoteError = "RemoteError";
// Connecting and authenticating never wait longer than this.
constexpr double kConnectTimeout = 20.0;

// ---------------------------------------------------------------- values

// What a value that cannot go to a manager is, or "" for one that can (as
// far as this level goes: tables are walked by find_unsendable).
std::string unsendable_name(lua_State* L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TFUNCTION:
      return "function value";
    case LUA_TTHREAD:
      return "thread (coroutine) value";
    case LUA_TLIGHTUSERDATA:
      return "light userdata value";
    case LUA_TUSERDATA: {
      // A plua object or a library's userdata, by its class name when it has one.
      std::string name = "userdata value";
      if (luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
        if (lua_type(L, -1) == LUA_TSTRING) name = lua_tostring(L, -1);
        lua_pop(L, 1);
      }
      return name;
    }
    default:
      return {};
  }
}

// Walks the value at idx (absolute) for the first thing that is not plain
// data; on finding one, sets `what` and `path` and returns true. Tables are
// visited once each (shared and cyclic ones too); very deep ones are left to
// the codec, which refuses them itself.
bool find_unsendable(lua_State* L, int idx, std::string& path, std::string& what,
                     std::unordered_set<const void*>& seen, int depth) {
  what = unsendable_name(L, idx);
  if (!what.empty()) return true;
  if (lua_type(L, idx) != LUA_TTABLE || depth > core::codec::kMaxDepth) return false;
  if (!seen.insert(lua_topointer(L, idx)).second) return false;
  luaL_checkstack(L, 3, "value nested too deeply");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int key = lua_gettop(L) - 1, value = key + 1;
    what = unsendable_name(L, key);
    if (!what.empty()) {
      path += " (a key)";
      lua_pop(L, 2);
      return true;
    }
    std::size_t at = path.size();
    path += key_path_segment(L, key);
    if (find_unsendable(L, value, path, what, seen, depth + 1)) {
      lua_pop(L, 2);
      return true;
    }
    path.resize(at);
    lua_pop(L, 1);
  }
  return false;
}

// A Lua value as a Python one, through the codec's plain-data bridge; `op`
// names the call, and `position` the value among the call's values, in the
// error for a value that is not plain data.
pk::Object to_python(lua_State* L, int idx, const char* op, int position = 1) {
  // Scalars skip the codec round trip: the same Value, made directly.
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      return pk::Object();
    case LUA_TBOOLEAN:
      return pk::Object(static_cast<bool>(lua_toboolean(L, idx)));
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return pk::Object(static_cast<std::int64_t>(lua_tointeger(L, idx)));
      return pk::Object(static_cast<double>(lua_tonumber(L, idx)));
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(L, idx, &len);
      pk::Object out;
      CoreFailure f = attempt_core([&] { out = pk::from_value(core::Value(std::string(s, len))); });
      if (f) raise_core_failure(L, op, f);
      return out;
    }
    default:
      break;
  }
  {
    // Refused before anything is encoded, with the place it was found.
    idx = lua_absindex(L, idx);
    std::string path = "value[" + std::to_string(position) + "]", what;
    std::unordered_set<const void*> seen;
    if (find_unsendable(L, idx, path, what, seen, 1))
      luaL_error(L, "%s: cannot send a %s to a manager at %s", op, what.c_str(), path.c_str());
  }
  std::string message = encode(L, idx, 1, "value");
  std::vector<core::Value> values;
  std::string error;
  try {
    values = core::codec::decode_values(message);
  } catch (const std::exception& e) {
    error = e.what();
  }
  discard(message);
  if (!error.empty()) luaL_error(L, "%s: cannot send this value to a manager: %s", op, error.c_str());
  pk::Object out;
  CoreFailure f = attempt_core([&] { out = pk::from_value(values.at(0)); });
  if (f) raise_core_failure(L, op, f);
  return out;
}

void push_python(lua_State* L, const pk::Object& obj) {
  // Scalars go straight onto the stack, as the codec would decode them.
  if (obj.is_none()) {
    lua_pushnil(L);
    return;
  }
  if (obj.is<bool>()) {
    lua_pushboolean(L, obj.as<bool>());
    return;
  }
  if (obj.is<std::int64_t>()) {
    lua_pushinteger(L, static_cast<lua_Integer>(obj.as<std::int64_t>()));
    return;
  }
  if (obj.is<double>()) {
    lua_pushnumber(L, static_cast<lua_Number>(obj.as<double>()));
    return;
  }
  if (const std::string* text = obj.str()) {
    lua_pushlstring(L, text->data(), text->size());
    return;
  }
  if (obj.is<pk::Bytes>()) {
    const std::string& data = obj.as<pk::Bytes>().data;
    lua_pushlstring(L, data.data(), data.size());
    return;
  }
  std::string message;
  CoreFailure f = attempt_core([&] { message = core::codec::encode_values({pk::to_value(obj)}); });
  if (f) raise_core_failure(L, "manager", f);
  decode(L, message);
}

// ---------------------------------------------------------------- proxies

struct ProxyHandle {
  std::unique_ptr<core::ManagerProxy> proxy;
};

ProxyHandle* check_proxy(lua_State* L, int idx = 1) {
  auto* h = static_cast<ProxyHandle*>(luaL_checkudata(L, idx, kProxyType));
  if (!h->proxy) luaL_argerror(L, idx, "proxy was closed");
  return h;
}

// Runs a method on the server and pushes its result.
// `h` was checked on entry; converting the arguments may have run Lua code
// that closed it since.
int proxy_call(lua_State* L, ProxyHandle* h, const char* op, const std::string& method,
               std::vector<pk::Object> args) {
  if (!h->proxy) luaL_argerror(L, 1, "proxy was closed");
  core::ManagerProxy& p = *h->proxy;
  pk::Object result;
  CoreFailure f = attempt_core([&] { result = p.call(method, std::move(args)); });
  if (f) raise_core_failure(L, op, f);
  push_python(L, result);
  return 1;
}

pk::Object timeout_arg(lua_State* L, int idx) {
  std::optional<double> t = check_timeout(L, idx);
  return t ? pk::Object(*t) : pk::Object();
}

// proxy:put(v, [block=true], [timeout])
int proxy_put(lua_State* L) {
  ProxyHandle* p = check_proxy(L);
  luaL_checkany(L, 2);
  pk::Object v = to_python(L, 2, "proxy:put");
  bool block = opt_boolean(L, 3, true);
  return proxy_call(L, p, "proxy:put", "put", {v, pk::Object(block), timeout_arg(L, 4)}) * 0;
}

// proxy:get([block=true], [timeout])
int proxy_get(lua_State* L) {
  ProxyHandle* p = check_proxy(L);
  bool block = opt_boolean(L, 2, true);
  return proxy_call(L, p, "proxy:get", "get", {pk::Object(block), timeout_arg(L, 3)});
}

int proxy_put_nowait(lua_State* L) {
  ProxyHandle* p = check_proxy(L);
  luaL_checkany(L, 2);
  return proxy_call(L, p, "proxy:put_nowait", "put_nowait", {to_python(L, 2, "proxy:put_nowait")}) * 0;
}

int proxy_get_nowait(lua_State* L) {
  return proxy_call(L, check_proxy(L), "proxy:get_nowait", "get_nowait", {});
}
int proxy_qsize(lua_State* L) {
  return proxy_call(L, check_proxy(L), "proxy:qsize", "qsize", {});
}
int proxy_empty(lua_State* L) {
  return proxy_call(L, check_proxy(L), "proxy:empty", "empty", {});
}
int proxy_full(lua_State* L) {
  return proxy_call(L, check_proxy(L), "proxy:full", "full", {});
}

// Any other exposed method: positional arguments, converted as values are.
int proxy_generic(lua_State* L) {
  const char* method = lua_tostring(L, lua_upvalueindex(1));
  ProxyHandle* p = check_proxy(L);
  std::vector<pk::Object> args;
  std::string op = std::string("proxy:") + method;
  for (int i = 2; i <= lua_gettop(L); ++i) args.push_back(to_python(L, i, op.c_str(), i - 1));
  return proxy_call(L, p, op.c_str(), method, std::move(args));
}

int proxy_close(lua_State* L) {
  auto* h = static_cast<ProxyHandle*>(luaL_checkudata(L, 1, kProxyType));
  if (h->proxy) {
    // decref with a short deadline: the server may be gone or unreachable.
    h->proxy->release(core::Deadline::after(2.0));
    h->proxy.reset();
  }
  return 0;
}

int proxy_gc(lua_State* L) {
  proxy_close(L);
  auto* h = static_cast<ProxyHandle*>(luaL_checkudata(L, 1, kProxyType));
  h->~ProxyHandle();
  return 0;
}

int proxy_tostring(lua_State* L) {
  auto* h = static_cast<ProxyHandle*>(luaL_checkudata(L, 1, kProxyType));
  if (!h->proxy) {
    lua_pushliteral(L, "<closed manager proxy>");
  } else {
    lua_pushfstring(L, "<AutoProxy[%s] object, ident '%s'>", h->proxy->type_id_name().c_str(),
                    h->proxy->ident().c_str());
  }
  return 1;
}

constexpr luaL_Reg kProxyMethods[] = {
    {"put", proxy_put},
    {"get", proxy_get},
    {"put_nowait", proxy_put_nowait},
    {"get_nowait", proxy_get_nowait},
    {"qsize", proxy_qsize},
    {"empty", proxy_empty},
    {"full", proxy_full},
    {"close", proxy_close},
    {nullptr, nullptr},
};

// __index: the queue methods above, then any other method the server exposes.
int proxy_index(lua_State* L) {
  auto* h = static_cast<ProxyHandle*>(luaL_checkudata(L, 1, kProxyType));
  const char* key = luaL_checkstring(L, 2);
  lua_getfield(L, lua_upvalueindex(1), key);
  if (!lua_isnil(L, -1)) return 1;
  if (h->proxy && h->proxy->is_exposed(key)) {
    lua_pushstring(L, key);
    lua_pushcclosure(L, proxy_generic, 1);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

// ---------------------------------------------------------------- managers

struct ManagerHandle {
  std::string host;  // as given; "" means every interface when serving
  std::uint16_t port = 0;
  bool host_given = false;
  std::string authkey;
  std::unique_ptr<core::ManagerServer> server;
};

ManagerHandle& check_manager(lua_State* L, int idx = 1) {
  return *static_cast<ManagerHandle*>(luaL_checkudata(L, idx, kManagerType));
}

// Where clients connect: the server's own address once serving, else the given one.
core::ManagerAddress client_address(const ManagerHandle& m) {
  if (m.server) {
    std::string host = m.server->host();
    if (host == "0.0.0.0" || host == "::") host = "127.0.0.1";
    return {host, m.server->port()};
  }
  return {m.host.empty() ? "127.0.0.1" : m.host, m.port};
}

// BaseManager{address = {host, port}, authkey = key}
int manager_new(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_option_names(L, 1, 1, {"address", "authkey"});
  std::string host = "127.0.0.1";
  bool host_given = false;
  lua_Integer port = 0;
  if (lua_getfield(L, 1, "address") != LUA_TNIL) {
    if (!lua_istable(L, -1)) luaL_argerror(L, 1, "address must be a table {host, port}");
    if (lua_rawgeti(L, -1, 1) != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 1, "address[1] (host) must be a string");
      host = lua_tostring(L, -1);
      host_given = true;
    }
    lua_pop(L, 1);
    if (lua_rawgeti(L, -1, 2) != LUA_TNIL) {
      int isnum = 0;
      port = lua_tointegerx(L, -1, &isnum);
      if (!isnum || port < 0 || port > 65535)
        luaL_argerror(L, 1, "address[2] (port) must be an integer in 0..65535");
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "authkey") != LUA_TSTRING)
    luaL_argerror(L, 1, "authkey must be a string (the key both sides share)");
  size_t keylen = 0;
  const char* key = lua_tolstring(L, -1, &keylen);
  std::string authkey(key, keylen);
  lua_pop(L, 1);

  auto* m = static_cast<ManagerHandle*>(lua_newuserdatauv(L, sizeof(ManagerHandle), 1));
  new (m) ManagerHandle{host, static_cast<std::uint16_t>(port), host_given, std::move(authkey), nullptr};
  luaL_setmetatable(L, kManagerType);
  lua_newtable(L);  // registered names -> callable or false
  lua_setiuservalue(L, -2, 1);
  return 1;
}

// register(name, [callable])
int manager_register(lua_State* L) {
  ManagerHandle& m = check_manager(L);
  const char* name = luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
  if (m.server) luaL_error(L, "manager:register: the server is already running");
  // A name must not hide a method of the manager.
  luaL_getmetatable(L, kManagerType);
  lua_getfield(L, -1, "__methods");
  if (lua_getfield(L, -1, name) != LUA_TNIL || std::strcmp(name, "address") == 0)
    luaL_argerror(L, 2, "name is a BaseManager member");
  lua_pop(L, 3);
  lua_getiuservalue(L, 1, 1);
  if (lua_isnoneornil(L, 3))
    lua_pushboolean(L, 0);
  else
    lua_pushvalue(L, 3);
  lua_setfield(L, -2, name);
  return 0;
}

// Calls each registered callable once and starts serving what they return.
void start_server(lua_State* L, ManagerHandle& m, const char* op) {
  if (m.server) luaL_error(L, "%s: the server is already running", op);
  std::vector<std::pair<std::string, core::SharedRef<core::MessageQueue>>> served;
  lua_getiuservalue(L, 1, 1);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    std::string name = lua_tostring(L, -2);
    if (lua_isfunction(L, -1)) {
      lua_call(L, 0, 1);
      if (!luaL_testudata(L, -1, kQueueType))
        luaL_error(L, "%s: the callable registered as '%s' must return a queue.Queue (got %s)", op,
                   name.c_str(), luaL_typename(L, -1));
      // The queue module's by-reference form is its arena reference, retained for us.
      const SendableClass* cls = find_sendable_class(kQueueType);
      if (!cls) luaL_error(L, "%s: the queue module is not loaded", op);
      std::string ref;
      cls->write_ref(L, lua_gettop(L), ref);
      core::SharedRefData d{};
      if (ref.size() != sizeof d) luaL_error(L, "%s: unexpected queue reference", op);
      std::memcpy(&d, ref.data(), sizeof d);
      core::SharedRef<core::MessageQueue> q;
      CoreFailure f = attempt_core([&] { q = core::SharedRef<core::MessageQueue>::adopt_ref(d); });
      if (f) raise_core_failure(L, op, f);
      served.emplace_back(name, std::move(q));
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  CoreFailure f = attempt_core([&] {
    core::ManagerServer::Options o;
    // Python's ('', port) is every interface; no address at all is loopback.
    o.host = m.host_given ? m.host : "127.0.0.1";
    o.port = m.port;
    o.authkey = m.authkey;
    auto server = std::make_unique<core::ManagerServer>(o);
    for (auto& [name, q] : served)
      server->register_typeid(name, std::make_shared<core::ServedQueue>(
                                        std::make_shared<core::MessageValueQueue>(std::move(q))));
    server->start();
    m.server = std::move(server);
  });
  if (f) raise_core_failure(L, op, f);
}

int manager_start(lua_State* L) {
  start_server(L, check_manager(L), "manager:start");
  return 0;
}

// serve_forever(): serves until a client's shutdown request or an interrupt.
int manager_serve_forever(lua_State* L) {
  ManagerHandle& m = check_manager(L);
  start_server(L, m, "manager:serve_forever");
  CoreFailure f = attempt_core([&] {
    try {
      m.server->wait_until_stopped(core::Deadline::never());
    } catch (const core::Interrupted&) {
      m.server->shutdown();
      throw;
    }
    m.server->shutdown();
  });
  m.server.reset();
  if (f) raise_core_failure(L, "manager:serve_forever", f);
  return 0;
}

// connect(): checks that the server answers and accepts our key.
int manager_connect(lua_State* L) {
  ManagerHandle& m = check_manager(L);
  core::ManagerAddress a = client_address(m);
  CoreFailure f = attempt_core([&] { core::dispatch(a, m.authkey, "dummy", {}, core::Deadline::after(kConnectTimeout)); });
  if (f) raise_core_failure(L, "manager:connect", f);
  return 0;
}

int manager_shutdown(lua_State* L) {
  ManagerHandle& m = check_manager(L);
  if (m.server) {
    m.server->shutdown();
    m.server.reset();
  }
  return 0;
}

int manager_gc(lua_State* L) {
  manager_shutdown(L);
  check_manager(L).~ManagerHandle();
  return 0;
}

// The method a registered name becomes: creates a proxy of the served object.
int manager_create(lua_State* L) {
  ManagerHandle& m = check_manager(L);
  const char* name = lua_tostring(L, lua_upvalueindex(1));
  core::ManagerAddress a = client_address(m);
  std::unique_ptr<core::ManagerProxy> proxy;
  CoreFailure f = attempt_core([&] {
    proxy = std::make_unique<core::ManagerProxy>(a, m.authkey, name, core::Deadline::after(kConnectTimeout));
  });
  std::string op = std::string("manager:") + name;
  if (f) raise_core_failure(L, op.c_str(), f);
  auto* h = static_cast<ProxyHandle*>(lua_newuserdatauv(L, sizeof(ProxyHandle), 0));
  new (h) ProxyHandle{std::move(proxy)};
  luaL_setmetatable(L, kProxyType);
  return 1;
}

int manager_index(lua_State* L) {
  ManagerHandle& m = check_manager(L);
  const char* key = luaL_checkstring(L, 2);
  lua_getfield(L, lua_upvalueindex(1), key);
  if (!lua_isnil(L, -1)) return 1;
  if (std::strcmp(key, "address") == 0) {
    core::ManagerAddress a = m.server ? core::ManagerAddress{m.server->host(), m.server->port()}
                                      : core::ManagerAddress{m.host, m.port};
    lua_createtable(L, 2, 0);
    lua_pushstring(L, a.host.c_str());
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, a.port);
    lua_rawseti(L, -2, 2);
    return 1;
  }
  lua_getiuservalue(L, 1, 1);
  if (lua_getfield(L, -1, key) != LUA_TNIL) {
    lua_pushstring(L, key);
    lua_pushcclosure(L, manager_create, 1);
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

int manager_tostring(lua_State* L) {
  ManagerHandle& m = check_manager(L);
  core::ManagerAddress a = client_address(m);
  lua_pushfstring(L, "<BaseManager %s:%d%s>", a.host.c_str(), static_cast<int>(a.port),
                  m.server ? " serving" : "");
  return 1;
}

constexpr luaL_Reg kManagerMethods[] = {
    {"register", manager_register},
    {"start", manager_start},
    {"serve_forever", manager_serve_forever},
    {"connect", manager_connect},
    {"shutdown", manager_shutdown},
    {nullptr, nullptr},
};

constexpr luaL_Reg kFunctions[] = {
    {"BaseManager", manager_new},
    {nullptr, nullptr},
};

}  // namespace
}  // namespace plua::lua

int luaopen_plua_manager(lua_State* L) {
  using namespace plua::lua;
  if (luaL_newmetatable(L, kProxyType)) {
    luaL_newlib(L, kProxyMethods);
    lua_pushcclosure(L, proxy_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, proxy_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, proxy_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, proxy_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, kManagerType)) {
    luaL_newlib(L, kManagerMethods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_pushcclosure(L, manager_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, manager_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, manager_shutdown);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, manager_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, kFunctions);
  const char* kinds[] = {kAuthenticationError, kRemoteError, "Empty", "Full"};
  for (const char* k : kinds) {
    lua_pushstring(L, k);
    lua_setfield(L, -2, k);
  }
  return 1;
}
