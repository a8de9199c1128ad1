// Lua binding of the `lock` module: Python's synchronisation primitives over
// the core's process-shared objects (plua/core/lock.hpp and friends).
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <variant>

#include "plua/core/barrier.hpp"
#include "plua/core/child_process.hpp"
#include "plua/core/condition.hpp"
#include "plua/core/event.hpp"
#include "plua/core/fork_tracked.hpp"
#include "plua/core/lock.hpp"
#include "plua/core/semaphore.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/lock.hpp"

namespace {

namespace core = plua::core;
using plua::lua::call_core;

constexpr const char* kLock = "plua.lock.Lock";
constexpr const char* kRLock = "plua.lock.RLock";
constexpr const char* kCondition = "plua.lock.Condition";
constexpr const char* kSemaphore = "plua.lock.Semaphore";
constexpr const char* kEvent = "plua.lock.Event";
constexpr const char* kBarrier = "plua.lock.Barrier";
constexpr const char* kGuard = "plua.lock.Guard";

// A Lua object's body: the core object, or nothing once closed; tracked so
// that fork children count the copies they inherit (fork_tracked.hpp).
template <class T>
using Box = core::ForkTracked<std::optional<T>>;

template <class T>
T& check(lua_State* L, int idx, const char* tname, const char* op) {
  auto* box = static_cast<Box<T>*>(luaL_checkudata(L, idx, tname));
  if (!box->body()) luaL_error(L, "%s: the object is closed", op);
  return *box->body();
}

template <class T>
void push_box(lua_State* L, T obj, const char* tname, int user_values = 0) {
  auto* box = static_cast<Box<T>*>(lua_newuserdatauv(L, sizeof(Box<T>), user_values));
  new (box) Box<T>(std::move(obj));
  luaL_setmetatable(L, tname);
}

// __close and close(): drop the reference; safe to call twice.
template <class T>
int close_box(lua_State* L) {
  auto* box = static_cast<Box<T>*>(lua_touserdata(L, 1));
  if (box) box->reset();
  return 0;
}

// The close() method: __close's work, for a self that is checked to be a T.
template <class T, const char* const& TName>
int close_method(lua_State* L) {
  luaL_checkudata(L, 1, TName);
  return close_box<T>(L);
}

template <class T>
int gc_box(lua_State* L) {
  auto* box = static_cast<Box<T>*>(lua_touserdata(L, 1));
  if (box) box->~Box<T>();
  return 0;
}

// Reads acquire's (blocking, timeout) at idx, idx+1, as Python.
core::Deadline check_acquire_args(lua_State* L, int idx, bool* blocking) {
  *blocking = plua::lua::opt_boolean(L, idx, true);
  if (!*blocking && !lua_isnoneornil(L, idx + 1))
    luaL_argerror(L, idx + 1, "cannot specify a timeout for a non-blocking call");
  return plua::lua::check_deadline(L, idx + 1);
}

// Pushes acquire's results: true (plus "abandoned", with a warning) or false.
int push_acquired(lua_State* L, core::Acquire a, const char* what) {
  if (a == core::Acquire::failed) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, 1);
  if (a == core::Acquire::acquired) return 1;
  std::fprintf(stderr,
               "plua: warning: %s: a process holding it died; the data it protects may be half-written\n", what);
  std::fflush(stderr);
  lua_pushliteral(L, "abandoned");
  return 2;
}

// ---- guard: a to-be-closed value that releases what it acquired ----

using Guarded = std::variant<std::monostate, core::Lock, core::RLock, core::Condition, core::Semaphore>;

// What a guard acquired (copies: arena references, tracked as a Box) and the
// process that acquired it: a fork child's collection of an inherited guard
// must not release its parent's lock.
struct GuardRefs {
  Guarded held;
  pid_t owner = 0;
};
using GuardBox = core::ForkTracked<GuardRefs>;

void release_guarded(Guarded& g) {
  std::visit(
      [](auto& obj) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(obj)>, std::monostate>) obj.release();
      },
      g);
}

int guard_close(lua_State* L) {
  auto* g = static_cast<GuardBox*>(luaL_checkudata(L, 1, kGuard));
  Guarded held = g->take().held;
  if (!std::holds_alternative<std::monostate>(held))
    call_core(L, "guard:close", [&] { release_guarded(held); return 0; });
  return 0;
}

int guard_gc(lua_State* L) {
  auto* g = static_cast<GuardBox*>(lua_touserdata(L, 1));
  // An unclosed guard releases when collected; a failure has nobody to report to.
  try {
    if (g->body().owner == core::current_pid()) release_guarded(g->body().held);
  } catch (const std::exception&) {
  }
  g->~GuardBox();
  return 0;
}

// obj:guard([timeout]): acquires (TimeoutError if the timeout passes) and
// returns a value whose closing releases (plus "abandoned", as acquire).
template <class T>
int make_guard(lua_State* L, const char* tname, const char* op) {
  T& obj = check<T>(L, 1, tname, op);
  core::Deadline deadline = plua::lua::check_deadline(L, 2);
  core::Acquire a = call_core(L, op, [&] { return obj.acquire(true, deadline); });
  if (a == core::Acquire::failed) plua::lua::raise_error(L, "TimeoutError", std::string(op) + ": timed out");
  auto* g = static_cast<GuardBox*>(lua_newuserdatauv(L, sizeof(GuardBox), 0));
  new (g) GuardBox(GuardRefs{Guarded{obj}, core::current_pid()});
  luaL_setmetatable(L, kGuard);
  if (a != core::Acquire::abandoned) return 1;
  push_acquired(L, a, op);  // warns, and pushes true, "abandoned"
  lua_remove(L, -2);
  return 2;
}

// ---- references for the codec: SharedRefData bytes ----

void append_ref(std::string& out, const core::SharedRefData& d) {
  out.append(reinterpret_cast<const char*>(&d), sizeof d);
}

core::SharedRefData read_ref(lua_State* L, std::string_view& ref) {
  core::SharedRefData d;
  if (ref.size() < sizeof d) luaL_error(L, "lock: malformed reference");
  std::memcpy(&d, ref.data(), sizeof d);
  ref.remove_prefix(sizeof d);
  return d;
}

// Adopts a reference or raises "op: <why>" as a Lua error.
template <class State>
core::SharedRef<State> adopt(lua_State* L, const core::SharedRefData& d) {
  return call_core(L, "lock", [&] { return core::SharedRef<State>::adopt_ref(d); });
}

template <class State>
void drop(std::string_view& ref) noexcept {
  core::SharedRefData d;
  if (ref.size() < sizeof d) return;
  std::memcpy(&d, ref.data(), sizeof d);
  ref.remove_prefix(sizeof d);
  try {
    core::SharedRef<State>::adopt_ref(d);
  } catch (const std::exception&) {
  }
}

// ---- Lock ----

int lock_new(lua_State* L) {
  push_box(L, call_core(L, "lock.Lock", [] { return core::Lock(); }), kLock);
  return 1;
}

int lock_acquire(lua_State* L) {
  core::Lock& l = check<core::Lock>(L, 1, kLock, "Lock:acquire");
  bool blocking;
  core::Deadline d = check_acquire_args(L, 2, &blocking);
  return push_acquired(L, call_core(L, "Lock:acquire", [&] { return l.acquire(blocking, d); }), "Lock");
}

int lock_release(lua_State* L) {
  core::Lock& l = check<core::Lock>(L, 1, kLock, "Lock:release");
  call_core(L, "Lock:release", [&] { l.release(); return 0; });
  return 0;
}

int lock_locked(lua_State* L) {
  lua_pushboolean(L, check<core::Lock>(L, 1, kLock, "Lock:locked").locked());
  return 1;
}

int lock_guard(lua_State* L) { return make_guard<core::Lock>(L, kLock, "Lock:guard"); }

// ---- RLock ----

int rlock_new(lua_State* L) {
  push_box(L, call_core(L, "lock.RLock", [] { return core::RLock(); }), kRLock);
  return 1;
}

int rlock_acquire(lua_State* L) {
  core::RLock& l = check<core::RLock>(L, 1, kRLock, "RLock:acquire");
  bool blocking;
  core::Deadline d = check_acquire_args(L, 2, &blocking);
  return push_acquired(L, call_core(L, "RLock:acquire", [&] { return l.acquire(blocking, d); }), "RLock");
}

int rlock_release(lua_State* L) {
  core::RLock& l = check<core::RLock>(L, 1, kRLock, "RLock:release");
  call_core(L, "RLock:release", [&] { l.release(); return 0; });
  return 0;
}

int rlock_locked(lua_State* L) {
  lua_pushboolean(L, check<core::RLock>(L, 1, kRLock, "RLock:locked").depth() != 0);
  return 1;
}

int rlock_guard(lua_State* L) { return make_guard<core::RLock>(L, kRLock, "RLock:guard"); }

// ---- Condition ----

int condition_new(lua_State* L) {
  core::Condition::AnyLock lock = core::RLock(core::SharedRef<core::LockState>());
  if (lua_isnoneornil(L, 1)) {
    lock = call_core(L, "lock.Condition", [] { return core::RLock(); });
  } else if (auto* b = static_cast<Box<core::Lock>*>(luaL_testudata(L, 1, kLock)); b && b->body()) {
    lock = *b->body();
  } else if (auto* r = static_cast<Box<core::RLock>*>(luaL_testudata(L, 1, kRLock)); r && r->body()) {
    lock = *r->body();
  } else {
    luaL_argerror(L, 1, "Lock or RLock expected");
  }
  push_box(L, call_core(L, "lock.Condition", [&] { return core::Condition(std::move(lock)); }), kCondition);
  return 1;
}

int condition_acquire(lua_State* L) {
  core::Condition& c = check<core::Condition>(L, 1, kCondition, "Condition:acquire");
  bool blocking;
  core::Deadline d = check_acquire_args(L, 2, &blocking);
  return push_acquired(L, call_core(L, "Condition:acquire", [&] { return c.acquire(blocking, d); }), "Condition");
}

int condition_release(lua_State* L) {
  core::Condition& c = check<core::Condition>(L, 1, kCondition, "Condition:release");
  call_core(L, "Condition:release", [&] { c.release(); return 0; });
  return 0;
}

int condition_guard(lua_State* L) { return make_guard<core::Condition>(L, kCondition, "Condition:guard"); }

int condition_wait(lua_State* L) {
  core::Condition& c = check<core::Condition>(L, 1, kCondition, "Condition:wait");
  core::Deadline d = plua::lua::check_deadline(L, 2);
  lua_pushboolean(L, call_core(L, "Condition:wait", [&] { return c.wait(d); }));
  return 1;
}

// wait_for(pred, [timeout]): Python's loop; pred runs with the lock held.
int condition_wait_for(lua_State* L) {
  core::Condition& c = check<core::Condition>(L, 1, kCondition, "Condition:wait_for");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  core::Deadline d = plua::lua::check_deadline(L, 3);
  for (;;) {
    lua_pushvalue(L, 2);
    lua_call(L, 0, 1);
    if (lua_toboolean(L, -1) || d.expired()) return 1;
    lua_pop(L, 1);
    call_core(L, "Condition:wait_for", [&] { return c.wait(d); });
  }
}

int condition_notify(lua_State* L) {
  core::Condition& c = check<core::Condition>(L, 1, kCondition, "Condition:notify");
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 0, 2, "count must be non-negative");
  call_core(L, "Condition:notify", [&] { c.notify(n); return 0; });
  return 0;
}

int condition_notify_all(lua_State* L) {
  core::Condition& c = check<core::Condition>(L, 1, kCondition, "Condition:notify_all");
  call_core(L, "Condition:notify_all", [&] { c.notify_all(); return 0; });
  return 0;
}

// ---- Semaphore / BoundedSemaphore ----

int semaphore_make(lua_State* L, bool bounded) {
  lua_Integer v = luaL_optinteger(L, 1, 1);
  luaL_argcheck(L, v >= 0, 1, "semaphore initial value must be >= 0");
  push_box(L, call_core(L, "lock.Semaphore", [&] { return core::Semaphore(v, bounded); }), kSemaphore);
  return 1;
}
int semaphore_new(lua_State* L) { return semaphore_make(L, false); }
int bounded_semaphore_new(lua_State* L) { return semaphore_make(L, true); }

int semaphore_acquire(lua_State* L) {
  core::Semaphore& s = check<core::Semaphore>(L, 1, kSemaphore, "Semaphore:acquire");
  bool blocking;
  core::Deadline d = check_acquire_args(L, 2, &blocking);
  return push_acquired(L, call_core(L, "Semaphore:acquire", [&] { return s.acquire(blocking, d); }), "Semaphore");
}

int semaphore_release(lua_State* L) {
  core::Semaphore& s = check<core::Semaphore>(L, 1, kSemaphore, "Semaphore:release");
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 1, 2, "n must be one or more");
  call_core(L, "Semaphore:release", [&] { s.release(n); return 0; });
  return 0;
}

int semaphore_guard(lua_State* L) { return make_guard<core::Semaphore>(L, kSemaphore, "Semaphore:guard"); }

// ---- Event ----

int event_new(lua_State* L) {
  push_box(L, call_core(L, "lock.Event", [] { return core::Event(); }), kEvent);
  return 1;
}

int event_set(lua_State* L) {
  check<core::Event>(L, 1, kEvent, "Event:set").set();
  return 0;
}

int event_clear(lua_State* L) {
  check<core::Event>(L, 1, kEvent, "Event:clear").clear();
  return 0;
}

int event_is_set(lua_State* L) {
  lua_pushboolean(L, check<core::Event>(L, 1, kEvent, "Event:is_set").is_set());
  return 1;
}

int event_wait(lua_State* L) {
  core::Event& e = check<core::Event>(L, 1, kEvent, "Event:wait");
  core::Deadline d = plua::lua::check_deadline(L, 2);
  lua_pushboolean(L, call_core(L, "Event:wait", [&] { return e.wait(d); }));
  return 1;
}

// ---- Barrier (user value 1: the action) ----

int barrier_new(lua_State* L) {
  lua_Integer parties = luaL_checkinteger(L, 1);
  luaL_argcheck(L, parties >= 1 && parties <= 0x7fffffff, 1, "parties must be one or more");
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  std::optional<double> timeout = plua::lua::check_timeout(L, 3);
  lua_settop(L, 3);
  push_box(L, call_core(L, "lock.Barrier", [&] {
             return core::Barrier(static_cast<std::uint32_t>(parties), timeout);
           }), kBarrier, 1);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

int barrier_wait(lua_State* L) {
  core::Barrier& b = check<core::Barrier>(L, 1, kBarrier, "Barrier:wait");
  std::optional<double> timeout = plua::lua::check_timeout(L, 2);
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, 1);  // the action, at index 3
  bool has_action = !lua_isnil(L, 3);
  bool action_failed = false;
  // The action runs protected; its error is kept at the stack top and re-raised below.
  std::function<bool()> action;
  if (has_action)
    action = [&] {
      lua_pushvalue(L, 3);
      if (lua_pcall(L, 0, 0, 0) == LUA_OK) return true;
      action_failed = true;
      return false;
    };
  std::uint32_t index = 0;
  bool broken = false, interrupted = false;
  std::string failure;
  try {
    index = b.wait(timeout, action);
  } catch (const core::BrokenBarrier&) {
    broken = true;
  } catch (const core::Interrupted&) {
    interrupted = true;
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (action_failed) lua_error(L);
  if (interrupted) plua::lua::raise_interrupted(L);
  if (broken) plua::lua::raise_error(L, "BrokenBarrierError", "Barrier:wait: the barrier is broken");
  if (!failure.empty()) luaL_error(L, "Barrier:wait: %s", failure.c_str());
  lua_pushinteger(L, index);
  return 1;
}

int barrier_reset(lua_State* L) {
  check<core::Barrier>(L, 1, kBarrier, "Barrier:reset").reset();
  return 0;
}

int barrier_abort(lua_State* L) {
  check<core::Barrier>(L, 1, kBarrier, "Barrier:abort").abort();
  return 0;
}

// Barrier's __index: methods, then the attributes parties, n_waiting, broken.
int barrier_index(lua_State* L) {
  const char* key = lua_tostring(L, 2);
  if (key) {
    if (std::strcmp(key, "parties") == 0) {
      lua_pushinteger(L, check<core::Barrier>(L, 1, kBarrier, "Barrier.parties").parties());
      return 1;
    }
    if (std::strcmp(key, "n_waiting") == 0) {
      lua_pushinteger(L, check<core::Barrier>(L, 1, kBarrier, "Barrier.n_waiting").n_waiting());
      return 1;
    }
    if (std::strcmp(key, "broken") == 0) {
      lua_pushboolean(L, check<core::Barrier>(L, 1, kBarrier, "Barrier.broken").broken());
      return 1;
    }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

// ---- codec classes ----

template <class T, class State>
void write_simple(lua_State* L, int idx, std::string& out, const char* tname) {
  T& obj = check<T>(L, idx, tname, "lock: send");
  append_ref(out, obj.state().ref_retained());
}

template <class T, class State>
void push_simple(lua_State* L, std::string_view ref, const char* tname) {
  core::SharedRefData d = read_ref(L, ref);
  push_box(L, T(adopt<State>(L, d)), tname, std::strcmp(tname, kBarrier) == 0 ? 1 : 0);
}

void lock_write(lua_State* L, int idx, std::string& out) { write_simple<core::Lock, core::LockState>(L, idx, out, kLock); }
void lock_push(lua_State* L, std::string_view ref) { push_simple<core::Lock, core::LockState>(L, ref, kLock); }
void rlock_write(lua_State* L, int idx, std::string& out) { write_simple<core::RLock, core::LockState>(L, idx, out, kRLock); }
void rlock_push(lua_State* L, std::string_view ref) { push_simple<core::RLock, core::LockState>(L, ref, kRLock); }
void semaphore_write(lua_State* L, int idx, std::string& out) {
  write_simple<core::Semaphore, core::SemaphoreState>(L, idx, out, kSemaphore);
}
void semaphore_push(lua_State* L, std::string_view ref) {
  push_simple<core::Semaphore, core::SemaphoreState>(L, ref, kSemaphore);
}
void event_write(lua_State* L, int idx, std::string& out) { write_simple<core::Event, core::EventState>(L, idx, out, kEvent); }
void event_push(lua_State* L, std::string_view ref) { push_simple<core::Event, core::EventState>(L, ref, kEvent); }
void lock_drop(std::string_view ref) noexcept { drop<core::LockState>(ref); }
void semaphore_drop(std::string_view ref) noexcept { drop<core::SemaphoreState>(ref); }
void event_drop(std::string_view ref) noexcept { drop<core::EventState>(ref); }

// Condition: its own ref, then 'L' or 'R' and the lock's ref.
void condition_write(lua_State* L, int idx, std::string& out) {
  core::Condition& c = check<core::Condition>(L, idx, kCondition, "lock: send");
  append_ref(out, c.state().ref_retained());
  if (auto* r = std::get_if<core::RLock>(&c.lock())) {
    out.push_back('R');
    append_ref(out, r->state().ref_retained());
  } else {
    out.push_back('L');
    append_ref(out, std::get<core::Lock>(c.lock()).state().ref_retained());
  }
}

void condition_push(lua_State* L, std::string_view ref) {
  core::SharedRefData cd = read_ref(L, ref);
  if (ref.empty()) luaL_error(L, "lock: malformed reference");
  char kind = ref[0];
  ref.remove_prefix(1);
  core::SharedRefData ld = read_ref(L, ref);
  auto cs = adopt<core::ConditionState>(L, cd);
  auto ls = adopt<core::LockState>(L, ld);
  core::Condition::AnyLock lock = kind == 'R' ? core::Condition::AnyLock(core::RLock(std::move(ls)))
                                              : core::Condition::AnyLock(core::Lock(std::move(ls)));
  push_box(L, core::Condition(std::move(cs), std::move(lock)), kCondition);
}

void condition_drop(std::string_view ref) noexcept {
  drop<core::ConditionState>(ref);
  if (ref.empty()) return;
  ref.remove_prefix(1);
  drop<core::LockState>(ref);
}

// Barrier: its ref, then the action as a codec message (empty: none).
void barrier_write(lua_State* L, int idx, std::string& out) {
  core::Barrier& b = check<core::Barrier>(L, idx, kBarrier, "lock: send");
  std::string action;
  if (lua_getiuservalue(L, idx, 1) == LUA_TFUNCTION) action = plua::lua::encode(L, lua_gettop(L), 1, "action");
  lua_pop(L, 1);
  append_ref(out, b.state().ref_retained());
  out += action;
}

void barrier_push(lua_State* L, std::string_view ref) {
  core::SharedRefData d = read_ref(L, ref);
  auto s = adopt<core::BarrierState>(L, d);
  push_box(L, core::Barrier(std::move(s)), kBarrier, 1);
  if (!ref.empty() && plua::lua::decode(L, ref) == 1) lua_setiuservalue(L, -2, 1);
}

void barrier_drop(std::string_view ref) noexcept {
  drop<core::BarrierState>(ref);
  if (!ref.empty()) plua::lua::discard(ref);
}

// Identity (SendableClass::identity): the object's state block; its first reference names it.
template <class T>
const void* box_identity(lua_State* L, int idx) noexcept {
  const auto& body = static_cast<Box<T>*>(lua_touserdata(L, idx))->body();
  return body ? body->state().get() : nullptr;
}

template <class T>
void register_class(const char* tname, void (*write)(lua_State*, int, std::string&),
                    void (*push)(lua_State*, std::string_view), void (*drop)(std::string_view) noexcept) {
  plua::lua::SendableClass cls{"lock", tname, write, push, drop};
  cls.ref_identity = plua::lua::arena_ref_identity;
  cls.identity = box_identity<T>;
  plua::lua::register_sendable_class(cls);
}

// Creates a metatable with methods (via __index unless index_fn), __gc, __close, __name.
template <class T>
void new_class(lua_State* L, const char* tname, const luaL_Reg* methods, lua_CFunction index_fn = nullptr) {
  if (!luaL_newmetatable(L, tname)) {  // already made by an earlier luaopen in this state
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  if (index_fn) lua_pushcclosure(L, index_fn, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc_box<T>);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close_box<T>);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

constexpr luaL_Reg kLockMethods[] = {
    {"acquire", lock_acquire}, {"release", lock_release}, {"locked", lock_locked},
    {"guard", lock_guard},     {"close", close_method<core::Lock, kLock>}, {nullptr, nullptr}};
constexpr luaL_Reg kRLockMethods[] = {
    {"acquire", rlock_acquire}, {"release", rlock_release}, {"locked", rlock_locked},
    {"guard", rlock_guard},     {"close", close_method<core::RLock, kRLock>}, {nullptr, nullptr}};
constexpr luaL_Reg kConditionMethods[] = {
    {"acquire", condition_acquire}, {"release", condition_release}, {"guard", condition_guard},
    {"wait", condition_wait},       {"wait_for", condition_wait_for}, {"notify", condition_notify},
    {"notify_all", condition_notify_all}, {"close", close_method<core::Condition, kCondition>}, {nullptr, nullptr}};
constexpr luaL_Reg kSemaphoreMethods[] = {
    {"acquire", semaphore_acquire}, {"release", semaphore_release}, {"guard", semaphore_guard},
    {"close", close_method<core::Semaphore, kSemaphore>}, {nullptr, nullptr}};
constexpr luaL_Reg kEventMethods[] = {
    {"set", event_set}, {"clear", event_clear}, {"is_set", event_is_set},
    {"wait", event_wait}, {"close", close_method<core::Event, kEvent>}, {nullptr, nullptr}};
constexpr luaL_Reg kBarrierMethods[] = {
    {"wait", barrier_wait}, {"reset", barrier_reset}, {"abort", barrier_abort},
    {"close", close_method<core::Barrier, kBarrier>}, {nullptr, nullptr}};

constexpr luaL_Reg kFunctions[] = {
    {"Lock", lock_new},           {"RLock", rlock_new},
    {"Condition", condition_new}, {"Semaphore", semaphore_new},
    {"BoundedSemaphore", bounded_semaphore_new},
    {"Event", event_new},         {"Barrier", barrier_new},
    {nullptr, nullptr},
};

int guard_tostring(lua_State* L) {
  lua_pushliteral(L, "lock guard");
  return 1;
}

// Makes the metatables (once per state) and registers the codec classes (once per process).
void ensure_classes(lua_State* L) {
  new_class<core::Lock>(L, kLock, kLockMethods);
  new_class<core::RLock>(L, kRLock, kRLockMethods);
  new_class<core::Condition>(L, kCondition, kConditionMethods);
  new_class<core::Semaphore>(L, kSemaphore, kSemaphoreMethods);
  new_class<core::Event>(L, kEvent, kEventMethods);
  new_class<core::Barrier>(L, kBarrier, kBarrierMethods, barrier_index);
  if (luaL_newmetatable(L, kGuard)) {
    lua_pushcfunction(L, guard_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, guard_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, guard_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  register_class<core::Lock>(kLock, lock_write, lock_push, lock_drop);
  register_class<core::RLock>(kRLock, rlock_write, rlock_push, lock_drop);
  register_class<core::Condition>(kCondition, condition_write, condition_push, condition_drop);
  register_class<core::Semaphore>(kSemaphore, semaphore_write, semaphore_push, semaphore_drop);
  register_class<core::Event>(kEvent, event_write, event_push, event_drop);
  register_class<core::Barrier>(kBarrier, barrier_write, barrier_push, barrier_drop);
}

}  // namespace

namespace plua::lua {

void push_rlock(lua_State* L, core::RLock lock) {
  ensure_classes(L);
  const void* id = lock.state().get();
  if (push_known_object(L, kRLock, id)) return;
  push_box(L, std::move(lock), kRLock);
  remember_object(L, -1, id);
}

}  // namespace plua::lua

int luaopen_plua_lock(lua_State* L) {
  ensure_classes(L);
  luaL_newlib(L, kFunctions);
  for (const char* kind : {"BrokenBarrierError", "RuntimeError", "ValueError", "TimeoutError"}) {
    lua_pushstring(L, kind);
    lua_setfield(L, -2, kind);
  }
  return 1;
}
