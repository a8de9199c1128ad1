// Lua binding of the `thread` module: Python's threading over plua::core::Thread.
// Each thread runs in its own lua_State (plua/lua/thread_state.hpp); the
// target, its arguments, the globals snapshot, the results and the error
// travel through the codec.
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "plua/core/cancel.hpp"
#include "plua/core/thread.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/interrupt.hpp"
#include "plua/lua/modules.hpp"
#include "plua/lua/thread_state.hpp"
#include "plua/lua/weak_table.hpp"

namespace {

namespace core = plua::core;
namespace pl = plua::lua;

constexpr const char* kThread = "plua.thread.Thread";
constexpr const char* kRuntimeError = "RuntimeError";

// Registry key of this state's weak table: core::Thread address -> its Lua object.
char kObjectsKey;
// Registry key of the state's thread group (core::Thread::Options::group).
char kGroupKey;

// Uservalues of a Thread object in the state that created it.
constexpr int kTargetSlot = 1;
constexpr int kArgsSlot = 2;
// The fields a script sets on the object (this state's only), as a Python Thread's attributes.
constexpr int kAttrsSlot = 3;

// A Lua Thread object: the shared core thread, and what only its creator knows.
struct Box {
  std::shared_ptr<core::Thread> thread;
  bool owner = false;     // made by Thread{}/Timer() in this state: holds target and args
  double interval = 0.0;  // Timer: seconds to wait before running the target
};

// What a new thread needs, encoded by start() in the creating state. Messages
// never decoded are discarded, so by-reference objects in them are released.
struct Payload {
  std::string target, args, globals;
  std::string path, cpath;
  double interval = -1.0;  // >= 0: a Timer
  bool has_target = false;
  bool consumed = false;
  ~Payload() {
    if (consumed) return;
    pl::discard(target);
    pl::discard(args);
    pl::discard(globals);
  }
};

Box* check_box(lua_State* L, int idx) { return static_cast<Box*>(luaL_checkudata(L, idx, kThread)); }

core::Thread& check_thread(lua_State* L, int idx) {
  Box* box = check_box(L, idx);
  if (!box->thread) luaL_argerror(L, idx, "the thread object is closed");
  return *box->thread;
}

// Pushes this state's object for a core thread (one object per thread per state).
void push_thread(lua_State* L, const std::shared_ptr<core::Thread>& thread) {
  pl::push_registry_weak_table(L, &kObjectsKey, "v");
  if (lua_rawgetp(L, -1, thread.get()) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  auto* box = static_cast<Box*>(lua_newuserdatauv(L, sizeof(Box), 3));
  new (box) Box{thread};
  luaL_setmetatable(L, kThread);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, -3, thread.get());
  lua_remove(L, -2);
}

// ---- The new thread's side ----

// What the new thread's Lua code reports back to its C++ side.
struct RunContext {
  Payload* payload;
  core::Thread::Outcome outcome;
};

// Message handler: records the error's text and the traceback where it was
// raised, and keeps the error value itself for :result().
int capture_error(lua_State* L) {
  auto* ctx = static_cast<RunContext*>(lua_touserdata(L, lua_upvalueindex(1)));
  ctx->outcome.message = pl::push_error_text(L, 1);
  luaL_traceback(L, L, nullptr, 1);
  ctx->outcome.traceback = lua_tostring(L, -1);
  lua_settop(L, 1);
  return 1;
}

// Runs in the new state: globals, then target(args...), then the results encoded.
int run_target(lua_State* L) {
  auto* ctx = static_cast<RunContext*>(lua_touserdata(L, 1));
  Payload& p = *ctx->payload;
  p.consumed = true;  // decoding takes the references over, even when it fails midway
  pl::set_package_paths(L, p.path, p.cpath);
  pl::apply_globals(L, p.globals);
  int base = lua_gettop(L);
  pl::decode(L, p.target);
  int nargs = pl::decode(L, p.args);
  if (!p.has_target) return 0;
  lua_gc(L, LUA_GCRESTART);
  lua_call(L, nargs, LUA_MULTRET);
  int nresults = lua_gettop(L) - base;
  ctx->outcome.values = pl::encode(L, base + 1, nresults, "results");
  return 0;
}

// Encodes the error value at index 1 into the context (protected: it may not travel).
int encode_error(lua_State* L) {
  auto* ctx = static_cast<RunContext*>(lua_touserdata(L, 2));
  ctx->outcome.values = pl::encode(L, 1, 1, "error");
  return 0;
}

// Closes a thread's state on every way out of the body.
struct StateOwner {
  lua_State* L;
  explicit StateOwner(lua_State* state) : L(state) { pl::attach_this_thread(L); }
  ~StateOwner() {
    pl::run_shutdown_hooks(L);
    pl::detach_this_thread();
    pl::close_thread_state(L);
  }
  StateOwner(const StateOwner&) = delete;
  StateOwner& operator=(const StateOwner&) = delete;
};

// A fresh state a parked worker built for the next body on its OS thread;
// closed when the OS thread exits unused.
struct SpareState {
  lua_State* L = nullptr;
  SpareState() = default;
  SpareState(const SpareState&) = delete;
  SpareState& operator=(const SpareState&) = delete;
  ~SpareState() {
    if (L) pl::close_thread_state(L);
  }
};
thread_local SpareState tl_spare;

// Park hook (core::Thread::set_park_hook): builds the next body's state while
// nobody waits for this OS thread, which takes it off the next start's path.
void prepare_spare_state() noexcept {
  if (tl_spare.L) return;
  try {
    tl_spare.L = pl::new_thread_state();
  } catch (const std::bad_alloc&) {
    // The next body builds its own state (and reports the shortage itself).
  }
}

// The spare state of this OS thread if there is one, else a new state.
lua_State* take_thread_state() {
  if (tl_spare.L) return std::exchange(tl_spare.L, nullptr);
  return pl::new_thread_state();
}

void set_state_group(lua_State* L, std::uint64_t group) {
  lua_pushinteger(L, static_cast<lua_Integer>(group));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kGroupKey);
}

// The group of the threads this state starts: its program's or runtime's,
// and, in a state the thread module did not set up, the calling thread's.
std::uint64_t state_group(lua_State* L) {
  int type = lua_rawgetp(L, LUA_REGISTRYINDEX, &kGroupKey);
  auto group = static_cast<std::uint64_t>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  if (type == LUA_TNUMBER) return group;
  return pl::call_core(L, "thread", [] { return core::Thread::current()->group(); });
}

// The body of every plua thread, on its own OS thread.
void thread_body(core::Thread& self, Payload& payload) {
  if (payload.interval >= 0) {
    bool cancelled = true;
    try {
      cancelled = self.wait_cancelled(core::Deadline::after(payload.interval));
    } catch (const core::Interrupted&) {
      // An interrupted timer counts as cancelled.
    }
    if (cancelled) return;
  }
  RunContext ctx{&payload, {}};
  ctx.outcome.discard = pl::discard;
  StateOwner owner(take_thread_state());
  lua_State* L = owner.L;
  set_state_group(L, self.group());
  // Setting up holds no garbage worth a collection step; the target's own allocations restart it.
  lua_gc(L, LUA_GCSTOP);
  lua_pushlightuserdata(L, &ctx);
  lua_pushcclosure(L, capture_error, 1);
  lua_pushcfunction(L, run_target);
  lua_pushlightuserdata(L, &ctx);
  if (lua_pcall(L, 1, 0, 1) == LUA_OK) {
    self.set_outcome(std::move(ctx.outcome));
    return;
  }
  ctx.outcome.ok = false;
  lua_pushcfunction(L, encode_error);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, &ctx);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) ctx.outcome.values.clear();
  // Like Python's threading.excepthook: the error goes to stderr as it happens.
  std::string report = "Exception in thread " + self.name() + ":\n" + ctx.outcome.message + "\n" +
                       ctx.outcome.traceback + "\n";
  std::fwrite(report.data(), 1, report.size(), stderr);
  std::fflush(stderr);
  self.set_outcome(std::move(ctx.outcome));
}

// ---- The Lua API ----

// Thread{target=, args=, name=, daemon=}
int thread_new(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  pl::check_option_names(L, 1, 1, {"target", "args", "name", "daemon"});
  int target = lua_getfield(L, 1, "target");
  if (target != LUA_TNIL && target != LUA_TFUNCTION) luaL_argerror(L, 1, "'target' must be a function");
  int args = lua_getfield(L, 1, "args");
  if (args != LUA_TNIL && args != LUA_TTABLE) luaL_argerror(L, 1, "'args' must be a table");
  int name = lua_getfield(L, 1, "name");
  if (name != LUA_TNIL && name != LUA_TSTRING) luaL_argerror(L, 1, "'name' must be a string");
  int daemon = lua_getfield(L, 1, "daemon");
  if (daemon != LUA_TNIL && daemon != LUA_TBOOLEAN) luaL_argerror(L, 1, "'daemon' must be a boolean");
  core::Thread::Options options;
  if (name == LUA_TSTRING) options.name = lua_tostring(L, 4);
  options.group = state_group(L);
  // As Python: a thread is a daemon if the thread creating it is.
  options.daemon = daemon == LUA_TBOOLEAN ? lua_toboolean(L, 5)
                                          : pl::call_core(L, "thread.Thread", [] { return core::Thread::current()->daemon(); });
  auto thread = pl::call_core(L, "thread.Thread", [&] { return core::Thread::create(std::move(options)); });
  push_thread(L, thread);
  Box* box = check_box(L, -1);
  box->owner = true;
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, kTargetSlot);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, kArgsSlot);
  return 1;
}

// Timer(interval, fn, [args]): a Thread that waits interval seconds, then runs fn unless cancelled.
int thread_timer(lua_State* L) {
  lua_Number interval = luaL_checknumber(L, 1);
  if (interval != interval || interval < 0) luaL_argerror(L, 1, "interval must be a non-negative number");
  if (std::isinf(interval)) luaL_argerror(L, 1, "interval must be finite");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  core::Thread::Options options;
  options.timer = true;
  options.group = state_group(L);
  options.daemon = pl::call_core(L, "thread.Timer", [] { return core::Thread::current()->daemon(); });
  auto thread = pl::call_core(L, "thread.Timer", [&] { return core::Thread::create(std::move(options)); });
  push_thread(L, thread);
  Box* box = check_box(L, -1);
  box->owner = true;
  box->interval = interval;
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, kTargetSlot);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, kArgsSlot);
  return 1;
}

// t:start(): snapshots target, args and globals, and runs the target on a new thread.
int thread_start(lua_State* L) {
  Box* box = check_box(L, 1);
  core::Thread& t = check_thread(L, 1);
  if (t.started()) pl::raise_error(L, kRuntimeError, "thread:start: threads can only be started once");
  if (!box->owner) luaL_error(L, "thread:start: this thread was created in another thread; start it there");
  auto payload = std::make_shared<Payload>();
  payload->interval = t.is_timer() ? box->interval : -1.0;
  lua_settop(L, 1);
  int top = lua_gettop(L);
  payload->has_target = lua_getiuservalue(L, 1, kTargetSlot) == LUA_TFUNCTION;
  payload->target = pl::encode(L, top + 1, 1, "target");
  int nargs = 0;
  if (lua_getiuservalue(L, 1, kArgsSlot) == LUA_TTABLE) {
    int args = lua_gettop(L);
    lua_Integer n = lua_getfield(L, args, "n") == LUA_TNUMBER ? lua_tointeger(L, -1)
                                                              : static_cast<lua_Integer>(lua_rawlen(L, args));
    lua_pop(L, 1);
    if (n < 0 || n > 100000) luaL_error(L, "thread:start: bad argument count %I", n);
    luaL_checkstack(L, static_cast<int>(n), "thread:start");
    for (lua_Integer i = 1; i <= n; ++i) lua_rawgeti(L, args, i);
    nargs = static_cast<int>(n);
    payload->args = pl::encode(L, args + 1, nargs, "args");
  } else {
    payload->args = pl::encode(L, top + 3, 0, "args");
  }
  lua_settop(L, 1);
  payload->globals = pl::encode_globals(L);
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    if (lua_getfield(L, -1, "path") == LUA_TSTRING) payload->path = lua_tostring(L, -1);
    if (lua_getfield(L, -2, "cpath") == LUA_TSTRING) payload->cpath = lua_tostring(L, -1);
  }
  lua_settop(L, 1);
  std::shared_ptr<core::Thread> self = box->thread;
  pl::call_core(L, "thread:start", [&] {
    t.start([self, payload] { thread_body(*self, *payload); });
  });
  return 0;
}

// t:join([timeout]) -> true when the thread has finished.
int thread_join(lua_State* L) {
  core::Thread& t = check_thread(L, 1);
  core::Deadline deadline = pl::check_deadline(L, 2);
  lua_pushboolean(L, pl::call_core(L, "thread:join", [&] { return t.join(deadline); }));
  return 1;
}

int thread_is_alive(lua_State* L) {
  lua_pushboolean(L, check_thread(L, 1).is_alive());
  return 1;
}

// Serialises result() calls: decoding takes a message's references over, so
// each call decodes and puts back a fresh encoding while holding this.
std::recursive_mutex& result_mutex() {
  static auto* mu = new std::recursive_mutex;
  return *mu;
}

// t:result(): the target's return values, or raises the error it died with.
int thread_result(lua_State* L) {
  core::Thread& t = check_thread(L, 1);
  lua_settop(L, 1);
  if (!t.finished()) {
    std::string msg = "thread:result: thread " + t.name() + (t.started() ? " has not finished" : " was not started");
    pl::raise_error(L, kRuntimeError, msg);
  }
  std::unique_lock lock(result_mutex());
  core::Thread::Outcome out = *t.outcome();
  int n = out.values.empty() ? 0 : pl::decode(L, out.values);
  // The decoded message's references are spent: keep a fresh copy for the next call.
  if (n > 0) out.values = pl::encode(L, 2, n, out.ok ? "results" : "error");
  t.set_outcome(out);
  lock.unlock();
  if (out.ok) return n;
  if (n == 0) {
    lua_pushstring(L, out.message.c_str());
    lua_pushliteral(L, "\n");
    lua_pushstring(L, out.traceback.c_str());
    lua_concat(L, 3);
  } else if (lua_type(L, -1) == LUA_TTABLE) {
    // Metatables do not travel: an error object gets its __tostring back.
    if (!lua_getmetatable(L, -1) && lua_getfield(L, -1, "kind") == LUA_TSTRING) {
      pl::push_error_object(L, "", "");
      lua_getmetatable(L, -1);
      lua_setmetatable(L, -4);
      lua_pop(L, 2);
    } else {
      lua_pop(L, 1);
    }
    if (lua_getfield(L, -1, "traceback") == LUA_TNIL) {
      lua_pushstring(L, out.traceback.c_str());
      lua_setfield(L, -3, "traceback");
    }
    lua_pop(L, 1);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    lua_pushliteral(L, "\n");
    lua_pushstring(L, out.traceback.c_str());
    lua_concat(L, 3);
  }
  return lua_error(L);
}

// timer:cancel(): the target will not run if the timer is still waiting.
int thread_cancel(lua_State* L) {
  core::Thread& t = check_thread(L, 1);
  if (!t.is_timer()) luaL_argerror(L, 1, "not a Timer");
  t.cancel();
  return 0;
}

int push_optional_integer(lua_State* L, bool has, lua_Integer v) {
  if (has)
    lua_pushinteger(L, v);
  else
    lua_pushnil(L);
  return 1;
}

constexpr luaL_Reg kMethods[] = {
    {"start", thread_start},   {"join", thread_join},     {"is_alive", thread_is_alive},
    {"result", thread_result}, {"cancel", thread_cancel}, {nullptr, nullptr},
};

// Fields: name, ident, native_id, daemon; then the methods.
int thread_index(lua_State* L) {
  core::Thread& t = check_thread(L, 1);
  if (lua_type(L, 2) != LUA_TSTRING) {
    if (lua_getiuservalue(L, 1, kAttrsSlot) != LUA_TTABLE) return 0;
    lua_pushvalue(L, 2);
    lua_gettable(L, -2);
    return 1;
  }
  const char* key = lua_tostring(L, 2);
  std::string_view k(key);
  if (k == "name") {
    std::string name = t.name();
    lua_pushlstring(L, name.data(), name.size());
    return 1;
  }
  if (k == "daemon") {
    lua_pushboolean(L, t.daemon());
    return 1;
  }
  if (k == "ident") {
    auto v = t.ident();
    return push_optional_integer(L, v.has_value(), v ? static_cast<lua_Integer>(*v) : 0);
  }
  if (k == "native_id") {
    auto v = t.native_id();
    return push_optional_integer(L, v.has_value(), v ? static_cast<lua_Integer>(*v) : 0);
  }
  lua_getmetatable(L, 1);
  lua_getfield(L, -1, "methods");
  if (lua_getfield(L, -1, key) != LUA_TNIL) return 1;
  if (lua_getiuservalue(L, 1, kAttrsSlot) != LUA_TTABLE) return 0;
  lua_getfield(L, -1, key);
  return 1;
}

// Only .name may be changed (daemon is fixed at creation, as in Thread{daemon=}).
int thread_newindex(lua_State* L) {
  core::Thread& t = check_thread(L, 1);
  lua_settop(L, 3);
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char* key = lua_tostring(L, 2);
    std::string_view k(key);
    if (k == "name") {
      t.set_name(luaL_checkstring(L, 3));
      return 0;
    }
    if (k == "daemon") {
      luaL_checktype(L, 3, LUA_TBOOLEAN);
      bool daemon = lua_toboolean(L, 3);
      pl::call_core(L, "thread.daemon", [&] { t.set_daemon(daemon); });
      return 0;
    }
    if (k == "ident" || k == "native_id") return luaL_error(L, "thread: field '%s' is read-only", key);
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    if (lua_getfield(L, -1, key) != LUA_TNIL) return luaL_error(L, "thread: cannot replace method '%s'", key);
    lua_settop(L, 3);
  }
  if (lua_getiuservalue(L, 1, kAttrsSlot) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, kAttrsSlot);
  }
  lua_insert(L, 2);  // attrs, key, value
  lua_settable(L, 2);
  return 0;
}

// <Thread(NAME, initial|started IDENT|stopped IDENT[, daemon])>, as Python's repr.
int thread_tostring(lua_State* L) {
  core::Thread& t = check_thread(L, 1);
  std::string s = std::string("<") + (t.is_timer() ? "Timer" : t.is_main() ? "MainThread" : "Thread") + "(" + t.name() + ", ";
  if (!t.started())
    s += "initial";
  else
    s += std::string(t.finished() ? "stopped " : "started ") + std::to_string(t.ident().value_or(0));
  if (t.daemon()) s += " daemon";
  s += ")>";
  lua_pushlstring(L, s.data(), s.size());
  return 1;
}

int thread_gc(lua_State* L) {
  auto* box = static_cast<Box*>(lua_touserdata(L, 1));
  if (box) box->~Box();
  return 0;
}

int thread_current(lua_State* L) {
  push_thread(L, pl::call_core(L, "thread.current_thread", [] { return core::Thread::current(); }));
  return 1;
}

int thread_main_thread(lua_State* L) {
  push_thread(L, pl::call_core(L, "thread.main_thread", [] { return core::Thread::main_thread(); }));
  return 1;
}

int thread_enumerate(lua_State* L) {
  auto all = pl::call_core(L, "thread.enumerate", [] { return core::Thread::enumerate(); });
  lua_createtable(L, static_cast<int>(all.size()), 0);
  lua_Integer i = 0;
  for (const auto& t : all) {
    push_thread(L, t);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

int thread_active_count(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(core::Thread::active_count()));
  return 1;
}

int thread_get_ident(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(core::Thread::current_ident()));
  return 1;
}

int thread_get_native_id(lua_State* L) {
  auto id = pl::call_core(L, "thread.get_native_id", [] { return core::Thread::current()->native_id(); });
  lua_pushinteger(L, static_cast<lua_Integer>(id.value_or(0)));
  return 1;
}

// sleep(seconds): waits, but gives way to Ctrl-C and other interrupts.
int thread_sleep(lua_State* L) {
  lua_Number seconds = luaL_checknumber(L, 1);
  if (seconds != seconds || seconds < 0) luaL_argerror(L, 1, "sleep length must be non-negative");
  if (std::isinf(seconds)) luaL_argerror(L, 1, "sleep length must be finite");
  auto deadline = core::Deadline::after(seconds);
  pl::call_core(L, "thread.sleep", [&] { core::sleep_until(deadline); });
  return 0;
}

// At exit, as Python: wait for every non-daemon thread this program or
// runtime started (Ctrl-C gives up).
int join_at_exit(lua_State* L) {
  std::uint64_t group = state_group(L);
  pl::call_core(L, "thread: joining threads at exit",
                [group] { core::Thread::join_non_daemon(core::Deadline::never(), group); });
  return 0;
}

void thread_write_ref(lua_State* L, int idx, std::string& out) {
  pl::write_shared_ref(out, check_box(L, idx)->thread);
}

void thread_push_ref(lua_State* L, std::string_view ref) {
  push_thread(L, pl::take_shared_ref<core::Thread>(L, ref, kThread));
}

constexpr luaL_Reg kFunctions[] = {
    {"Thread", thread_new},
    {"Timer", thread_timer},
    {"current_thread", thread_current},
    {"main_thread", thread_main_thread},
    {"enumerate", thread_enumerate},
    {"active_count", thread_active_count},
    {"get_ident", thread_get_ident},
    {"get_native_id", thread_get_native_id},
    {"sleep", thread_sleep},
    {nullptr, nullptr},
};

}  // namespace

int luaopen_plua_thread(lua_State* L) {
  if (luaL_newmetatable(L, kThread)) {
    lua_pushcfunction(L, thread_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, thread_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, thread_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, thread_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, kMethods);
    lua_setfield(L, -2, "methods");
  }
  lua_pop(L, 1);
  core::Thread::set_park_hook(prepare_spare_state);
  pl::register_sendable_class(
      pl::SendableClass{"thread", kThread, thread_write_ref, thread_push_ref, pl::drop_shared_ref<core::Thread>, true});
  // Only the program's own states wait for threads at exit; a thread's state must not wait for its siblings.
  if (!pl::is_thread_state(L) && !core::Thread::in_started_thread()) {
    // A program's or runtime's own state: its threads form a group its exit waits for.
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kGroupKey) == LUA_TNIL) set_state_group(L, core::Thread::new_group());
    lua_pop(L, 1);
    pl::add_shutdown_hook(L, join_at_exit);
  }
  luaL_newlib(L, kFunctions);
  lua_pushstring(L, kRuntimeError);
  lua_setfield(L, -2, "RuntimeError");
  return 1;
}
