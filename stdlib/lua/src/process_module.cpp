// Lua binding of the `process` module: Python's multiprocessing.Process and
// the os process calls. Process control (fork, reaping, signals) is in
// core::ChildProcess; this file keeps names, roles and the Lua side of start.
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plua/core/child_process.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/interrupt.hpp"
#include "plua/lua/modules.hpp"
#include "plua/lua/process.hpp"
#include "plua/lua/weak_table.hpp"
#include "process_spawn.hpp"

namespace plua::lua {
namespace {

using core::ChildProcess;

// What a Process handle stands for; shared by the handles of every thread.
struct ProcessState {
  enum class Role { created, child, self, parent };
  Role role = Role::created;
  std::vector<int> identity;              // Python's _identity: (1,), (1, 2), ...
  mutable std::mutex mu;
  std::string name;                       // guarded by mu
  bool daemon = false;                    // guarded by mu
  bool started = false;                   // guarded by mu
  bool closed = false;                    // guarded by mu
  pid_t pid = 0;                          // for Role::parent
  std::shared_ptr<ChildProcess> child;    // for Role::child, set once by start

  std::string get_name() const { std::lock_guard l(mu); return name; }
  bool get_daemon() const { std::lock_guard l(mu); return daemon; }
};
using StatePtr = std::shared_ptr<ProcessState>;

// This process as the module sees it; copied (and partly reset) by fork.
struct Globals {
  std::mutex mu;
  StatePtr current;                   // guarded by mu
  StatePtr parent;                    // guarded by mu
  int counter = 0;                    // children started so far, guarded by mu
  std::vector<StatePtr> children;     // started, not yet seen ended; guarded by mu
  std::string start_method = "fork";  // guarded by mu
  bool method_set = false;            // guarded by mu

  static Globals& get() {
    // Leaked on purpose: shutdown hooks may run after static destructors.
    static Globals* g = [] {
      auto* globals = new Globals;
      auto main = std::make_shared<ProcessState>();
      main->role = ProcessState::Role::self;
      main->name = "MainProcess";
      globals->current = main;
      pthread_atfork([] { get().mu.lock(); }, [] { get().mu.unlock(); },
                     [] {
                       // The parent's children are not the child's.
                       Globals& self = get();
                       self.children.clear();
                       self.mu.unlock();
                     });
      return globals;
    }();
    return *g;
  }
};

struct Handle {
  StatePtr state;
};

// Registry key of the cache of this state's Process handles (weak values).
char kHandleCacheKey;

// Pushes the one userdata of this state for `state` (so identity compares).
void push_handle(lua_State* L, const StatePtr& state) {
  push_registry_weak_table(L, &kHandleCacheKey, "v");
  if (lua_rawgetp(L, -1, state.get()) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  auto* h = static_cast<Handle*>(lua_newuserdatauv(L, sizeof(Handle), 1));
  new (h) Handle{state};
  luaL_setmetatable(L, kProcessTypeName);
  lua_newtable(L);  // {target=, args=, attrs=}
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, -3, state.get());
  lua_remove(L, -2);
}

Handle& check_handle(lua_State* L, int idx = 1) {
  return *static_cast<Handle*>(luaL_checkudata(L, idx, kProcessTypeName));
}

[[noreturn]] void raise_value_error(lua_State* L, const std::string& message) {
  raise_error(L, "ValueError", message);
}

// The Lua part of a handle's state: its uservalue table's field `key`.
void get_private(lua_State* L, int idx, const char* key) {
  lua_getiuservalue(L, idx, 1);
  lua_getfield(L, -1, key);
  lua_remove(L, -2);
}

std::string default_name(const std::vector<int>& identity) {
  std::string name = "Process-";
  for (size_t i = 0; i < identity.size(); ++i) {
    if (i) name += ':';
    name += std::to_string(identity[i]);
  }
  return name;
}

// Message handler for targets: the error's text plus a traceback.
int child_traceback(lua_State* L) {
  luaL_traceback(L, L, push_error_text(L, 1), 1);
  return 1;
}

// The children this process started that are still running; forgets ended ones.
std::vector<StatePtr> live_children() {
  Globals& g = Globals::get();
  std::vector<StatePtr> all;
  {
    std::lock_guard lock(g.mu);
    all = g.children;
  }
  std::vector<StatePtr> alive;
  for (auto& s : all)
    if (s->child && s->child->owned_by_this_process() && !s->child->poll()) alive.push_back(s);
  std::lock_guard lock(g.mu);
  std::erase_if(g.children, [&](const StatePtr& s) {
    return std::find(alive.begin(), alive.end(), s) == alive.end();
  });
  return alive;
}

// At exit (and when a child ends): daemon children are terminated, the others
// joined, as Python's multiprocessing does.
void finish_children() {
  std::vector<StatePtr> alive = live_children();
  std::vector<StatePtr> daemons;
  for (auto& s : alive)
    if (s->get_daemon()) {
      s->child->send_signal(SIGTERM);
      daemons.push_back(s);
    }
  for (auto& s : daemons)
    if (!s->child->wait(core::Deadline::after(1.0))) {
      s->child->send_signal(SIGKILL);
      s->child->wait(core::Deadline::never());
    }
  for (auto& s : alive)
    if (!s->get_daemon()) s->child->wait(core::Deadline::never());
  core::reap_orphans();
}

// Runs the target (with its args) that is on the stack as [fn, args-table];
// returns the exit status, printing a failure as Python does. It runs on a
// fresh Lua thread, so the traceback shows the process's frames only.
int run_target(lua_State* L, const std::string& name) {
  lua_State* co = lua_newthread(L);
  lua_insert(L, -3);
  lua_xmove(L, co, 2);
  lua_pushcfunction(co, child_traceback);
  lua_insert(co, 1);
  int nargs = 0;
  if (lua_istable(co, 3)) {
    int n = static_cast<int>(luaL_len(co, 3));
    luaL_checkstack(co, n + 2, "too many arguments for the target");
    for (int i = 1; i <= n; ++i) lua_geti(co, 3, i);
    lua_remove(co, 3);
    nargs = n;
  } else {
    lua_pop(co, 1);
  }
  int status = 0;
  if (!lua_isnil(co, 2)) {
    lua_State* attached = attached_state();
    attach_this_thread(co);  // interrupts aim at the Lua thread that runs
    if (lua_pcall(co, nargs, 0, 1) != LUA_OK) {
      std::fflush(stdout);
      std::fprintf(stderr, "Process %s:\n%s\n", name.c_str(), lua_tostring(co, -1));
      std::fflush(stderr);
      status = 1;
    }
    attach_this_thread(attached);
  }
  lua_pop(L, 1);  // the Lua thread
  return status;
}

// Becomes `state` in a fork child: runs the target and leaves with _exit, so
// the parent's shutdown hooks and atexit handlers never run twice.
[[noreturn]] void run_fork_child(lua_State* L, int handle_idx, const StatePtr& state,
                                 const StatePtr& parent) {
  Globals& g = Globals::get();
  {
    std::lock_guard lock(g.mu);
    state->role = ProcessState::Role::self;
    g.current = state;
    g.parent = parent;
    g.counter = 0;
    g.children.clear();
  }
  clear_interrupt(L);
  // A thread that forked may block signals; the child is a process of its own.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
  get_private(L, handle_idx, "target");
  get_private(L, handle_idx, "args");
  int status = run_target(L, state->get_name());
  try {
    finish_children();
  } catch (const std::exception&) {
    // An interrupt while joining the child's own children: leave anyway.
  }
  core::run_fork_child_exit_hooks();
  std::fflush(nullptr);
  ::_exit(status);
}

// Process{target=, args=, name=, daemon=}
int process_new(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_option_names(L, 1, 1, {"target", "args", "name", "daemon"});
  int target = lua_getfield(L, 1, "target");
  if (target != LUA_TNIL && target != LUA_TFUNCTION && !luaL_getmetafield(L, -1, "__call"))
    luaL_argerror(L, 1, "target must be a function");
  if (target != LUA_TNIL && target != LUA_TFUNCTION) lua_pop(L, 1);
  int args = lua_getfield(L, 1, "args");
  if (args != LUA_TNIL && args != LUA_TTABLE) luaL_argerror(L, 1, "args must be a table");
  int name_type = lua_getfield(L, 1, "name");
  if (name_type != LUA_TNIL && name_type != LUA_TSTRING) luaL_argerror(L, 1, "name must be a string");
  int daemon_type = lua_getfield(L, 1, "daemon");
  if (daemon_type != LUA_TNIL && daemon_type != LUA_TBOOLEAN)
    luaL_argerror(L, 1, "daemon must be a boolean");

  Globals& g = Globals::get();
  auto state = std::make_shared<ProcessState>();
  {
    std::lock_guard lock(g.mu);
    state->identity = g.current->identity;
    state->identity.push_back(++g.counter);
    state->daemon = daemon_type == LUA_TBOOLEAN ? lua_toboolean(L, -1) : g.current->get_daemon();
  }
  state->name = name_type == LUA_TSTRING ? lua_tostring(L, -2) : default_name(state->identity);
  push_handle(L, state);
  lua_getiuservalue(L, -1, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "target");
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "args");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "made_here");
  lua_pop(L, 1);
  return 1;
}

int process_start(lua_State* L) {
  Handle& h = check_handle(L);
  StatePtr state = h.state;
  bool closed, startable;
  {
    std::lock_guard lock(state->mu);
    closed = state->closed;
    startable = state->role == ProcessState::Role::created && !state->started;
  }
  if (closed) raise_value_error(L, "process object is closed");
  if (!startable) return luaL_error(L, "process:start: cannot start a process twice");
  Globals& g = Globals::get();
  StatePtr me;
  std::string method;
  {
    std::lock_guard lock(g.mu);
    me = g.current;
    method = g.start_method;
  }
  if (me->get_daemon())
    return luaL_error(L, "process:start: daemonic processes are not allowed to have children");
  get_private(L, 1, "made_here");
  if (!lua_toboolean(L, -1))
    return luaL_error(L, "process:start: a process can only be started by the thread that created it");
  lua_settop(L, 1);
  core::reap_orphans();

  std::shared_ptr<ChildProcess> child;
  if (method == "spawn") {
    child = spawn_process(L, 1, state->get_name(), state->identity, state->get_daemon());
  } else {
    auto parent = std::make_shared<ProcessState>();
    parent->role = ProcessState::Role::parent;
    parent->name = me->get_name();
    parent->identity = me->identity;
    parent->pid = ::getpid();
    pid_t pid = call_core(L, "process:start", [] { return core::fork_process(); });
    if (pid == 0) run_fork_child(L, 1, state, parent);
    child = call_core(L, "process:start", [&] { return ChildProcess::adopt(pid); });
  }
  {
    std::lock_guard lock(state->mu);
    state->child = child;
    state->role = ProcessState::Role::child;
    state->started = true;
  }
  std::lock_guard lock(g.mu);
  g.children.push_back(state);
  return 0;
}

// The started child of a handle, or a Lua error naming the operation.
std::shared_ptr<ChildProcess> started_child(lua_State* L, const char* op) {
  Handle& h = check_handle(L);
  bool closed;
  std::shared_ptr<ChildProcess> child;
  ProcessState::Role role;
  {
    std::lock_guard lock(h.state->mu);
    closed = h.state->closed;
    child = h.state->child;
    role = h.state->role;
  }
  if (closed) raise_value_error(L, "process object is closed");
  if (role == ProcessState::Role::self || role == ProcessState::Role::parent)
    luaL_error(L, "process:%s: can only %s a child process", op, op);
  if (!child) luaL_error(L, "process:%s: can only %s a started process", op, op);
  if (!child->owned_by_this_process()) luaL_error(L, "process:%s: can only %s a child process", op, op);
  return child;
}

int process_join(lua_State* L) {
  auto child = started_child(L, "join");
  auto deadline = check_deadline(L, 2);
  bool ended = call_core(L, "process:join", [&] { return child->wait(deadline).has_value(); });
  if (ended) live_children();
  lua_pushboolean(L, ended);
  return 1;
}

int process_is_alive(lua_State* L) {
  Handle& h = check_handle(L);
  StatePtr s = h.state;
  bool alive = false;
  switch (s->role) {
    case ProcessState::Role::self: alive = true; break;
    case ProcessState::Role::parent: alive = ::getppid() == s->pid; break;
    case ProcessState::Role::created: alive = false; break;
    case ProcessState::Role::child: {
      auto child = started_child(L, "test");
      alive = !call_core(L, "process:is_alive", [&] { return child->poll().has_value(); });
      break;
    }
  }
  lua_pushboolean(L, alive);
  return 1;
}

int signal_child(lua_State* L, const char* op, int sig) {
  auto child = started_child(L, op);
  call_core(L, op, [&] { child->send_signal(sig); });
  return 0;
}

int process_terminate(lua_State* L) { return signal_child(L, "terminate", SIGTERM); }
int process_kill(lua_State* L) { return signal_child(L, "kill", SIGKILL); }

int process_close(lua_State* L) {
  Handle& h = check_handle(L);
  std::shared_ptr<ChildProcess> child;
  {
    std::lock_guard lock(h.state->mu);
    if (h.state->closed) return 0;
    child = h.state->child;
  }
  bool running = child && child->owned_by_this_process() &&
                 !call_core(L, "process:close", [&] { return child->poll().has_value(); });
  if (running)
    raise_value_error(L, "Cannot close a process while it is still running. "
                         "You should first call join() or terminate().");
  std::lock_guard lock(h.state->mu);
  h.state->closed = true;
  return 0;
}

// __close: releases the handle's resources if the process has ended; never raises.
int process_gc_close(lua_State* L) {
  Handle& h = check_handle(L);
  std::lock_guard lock(h.state->mu);
  if (h.state->child && h.state->child->owned_by_this_process() && h.state->child->poll())
    h.state->closed = true;
  return 0;
}

int process_gc(lua_State* L) {
  check_handle(L).~Handle();
  return 0;
}

int process_index(lua_State* L) {
  Handle& h = check_handle(L);
  const char* key = lua_tostring(L, 2);
  StatePtr s = h.state;
  if (key && lua_type(L, 2) == LUA_TSTRING) {
    if (luaL_getmetafield(L, 1, "__methods")) {
      if (lua_getfield(L, -1, key) != LUA_TNIL) return 1;
      lua_pop(L, 2);
    }
    if (std::strcmp(key, "name") == 0) {
      std::string name = s->get_name();
      lua_pushlstring(L, name.data(), name.size());
      return 1;
    }
    if (std::strcmp(key, "daemon") == 0) {
      lua_pushboolean(L, s->get_daemon());
      return 1;
    }
    if (std::strcmp(key, "pid") == 0 || std::strcmp(key, "ident") == 0) {
      switch (s->role) {
        case ProcessState::Role::self: lua_pushinteger(L, ::getpid()); break;
        case ProcessState::Role::parent: lua_pushinteger(L, s->pid); break;
        case ProcessState::Role::child: lua_pushinteger(L, s->child->pid()); break;
        case ProcessState::Role::created: lua_pushnil(L); break;
      }
      return 1;
    }
    if (std::strcmp(key, "exitcode") == 0) {
      std::optional<int> code;
      if (s->role == ProcessState::Role::child && s->child->owned_by_this_process())
        code = call_core(L, "process.exitcode", [&] { return s->child->poll(); });
      if (code) lua_pushinteger(L, *code); else lua_pushnil(L);
      return 1;
    }
  }
  get_private(L, 1, "attrs");
  if (lua_isnil(L, -1)) return 1;
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}

int process_newindex(lua_State* L) {
  Handle& h = check_handle(L);
  const char* key = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
  if (std::strcmp(key, "name") == 0) {
    std::string name = luaL_checkstring(L, 3);
    std::lock_guard lock(h.state->mu);
    h.state->name = name;
    return 0;
  }
  if (std::strcmp(key, "daemon") == 0) {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    bool active;
    {
      std::lock_guard lock(h.state->mu);
      active = h.state->started || h.state->role != ProcessState::Role::created;
      if (!active) h.state->daemon = lua_toboolean(L, 3);
    }
    if (active) luaL_error(L, "process.daemon: cannot set daemon status of an active process");
    return 0;
  }
  if (!std::strcmp(key, "pid") || !std::strcmp(key, "exitcode") || !std::strcmp(key, "ident"))
    return luaL_error(L, "process.%s is read-only", key);
  lua_getiuservalue(L, 1, 1);
  if (lua_getfield(L, -1, "attrs") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "attrs");
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_settable(L, -3);
  return 0;
}

int process_tostring(lua_State* L) {
  Handle& h = check_handle(L);
  StatePtr s = h.state;
  std::string text = "<Process name='" + s->get_name() + "'";
  switch (s->role) {
    case ProcessState::Role::self:
      text += " pid=" + std::to_string(::getpid()) + " started";
      break;
    case ProcessState::Role::parent:
      text += " pid=" + std::to_string(s->pid) + " (parent)";
      break;
    case ProcessState::Role::created:
      text += " initial";
      break;
    case ProcessState::Role::child: {
      text += " pid=" + std::to_string(s->child->pid());
      std::optional<int> code;
      if (s->child->owned_by_this_process())
        code = call_core(L, "tostring", [&] { return s->child->poll(); });
      text += code ? " stopped exitcode=" + std::to_string(*code) : " started";
      break;
    }
  }
  if (s->get_daemon()) text += " daemon";
  text += ">";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

int process_getpid(lua_State* L) {
  lua_pushinteger(L, ::getpid());
  return 1;
}

int process_getppid(lua_State* L) {
  lua_pushinteger(L, ::getppid());
  return 1;
}

// fork(): the raw os.fork; the child keeps running the same code.
int process_fork(lua_State* L) {
  pid_t pid = call_core(L, "process.fork", [] { return core::fork_process(); });
  if (pid > 0) {
    // Adopted so that active_children() and the exit hook see it; exitcode via the handle only.
    call_core(L, "process.fork", [&] { core::ChildProcess::adopt(pid); });
  } else {
    clear_interrupt(L);
  }
  lua_pushinteger(L, pid);
  return 1;
}

int process_current_process(lua_State* L) {
  Globals& g = Globals::get();
  StatePtr current;
  {
    std::lock_guard lock(g.mu);
    current = g.current;
  }
  push_handle(L, current);
  return 1;
}

int process_parent_process(lua_State* L) {
  Globals& g = Globals::get();
  StatePtr parent;
  {
    std::lock_guard lock(g.mu);
    parent = g.parent;
  }
  if (parent) push_handle(L, parent); else lua_pushnil(L);
  return 1;
}

int process_active_children(lua_State* L) {
  auto alive = call_core(L, "process.active_children", [] {
    core::reap_orphans();
    return live_children();
  });
  lua_createtable(L, static_cast<int>(alive.size()), 0);
  for (size_t i = 0; i < alive.size(); ++i) {
    push_handle(L, alive[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int process_cpu_count(lua_State* L) {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

// set_start_method("fork"|"spawn", [force]): as Python, setting it twice
// without force is a RuntimeError.
int process_set_start_method(lua_State* L) {
  static const char* const kMethods[] = {"fork", "spawn", nullptr};
  int which = luaL_checkoption(L, 1, nullptr, kMethods);
  bool force = opt_boolean(L, 2, false);
  Globals& g = Globals::get();
  std::unique_lock lock(g.mu);
  if (g.method_set && !force) {
    lock.unlock();
    raise_error(L, "RuntimeError", "context has already been set");
  }
  g.start_method = kMethods[which];
  g.method_set = true;
  return 0;
}

int process_get_start_method(lua_State* L) {
  Globals& g = Globals::get();
  std::string method;
  {
    std::lock_guard lock(g.mu);
    method = g.start_method;
  }
  lua_pushlstring(L, method.data(), method.size());
  return 1;
}

// Shutdown hook: at the end of the main thread's state, daemon children are
// terminated and the others joined.
int process_at_exit(lua_State* L) {
  if (::syscall(SYS_gettid) != ::getpid()) return 0;
  call_core(L, "process (at exit)", [] { finish_children(); });
  return 0;
}

constexpr luaL_Reg kMethods[] = {
    {"start", process_start},         {"join", process_join},
    {"is_alive", process_is_alive},   {"terminate", process_terminate},
    {"kill", process_kill},           {"close", process_close},
    {nullptr, nullptr},
};

constexpr luaL_Reg kMeta[] = {
    {"__index", process_index},       {"__newindex", process_newindex},
    {"__tostring", process_tostring}, {"__gc", process_gc},
    {"__close", process_gc_close},    {nullptr, nullptr},
};

constexpr luaL_Reg kFunctions[] = {
    {"Process", process_new},
    {"getpid", process_getpid},
    {"getppid", process_getppid},
    {"fork", process_fork},
    {"current_process", process_current_process},
    {"parent_process", process_parent_process},
    {"active_children", process_active_children},
    {"cpu_count", process_cpu_count},
    {"set_start_method", process_set_start_method},
    {"get_start_method", process_get_start_method},
    {nullptr, nullptr},
};

}  // namespace

std::shared_ptr<core::ChildProcess> to_child_process(lua_State* L, int idx) {
  auto* h = static_cast<Handle*>(luaL_testudata(L, idx, kProcessTypeName));
  if (h == nullptr) return nullptr;
  std::lock_guard lock(h->state->mu);
  if (!h->state->child || !h->state->child->owned_by_this_process()) return nullptr;
  return h->state->child;
}

// Becomes the spawned process the start message describes (see process_spawn.hpp).
void become_spawned(const std::string& name, const std::vector<int>& identity, bool daemon,
                    pid_t parent_pid, const std::string& parent_name) {
  Globals& g = Globals::get();
  auto self = std::make_shared<ProcessState>();
  self->role = ProcessState::Role::self;
  self->name = name;
  self->identity = identity;
  self->daemon = daemon;
  auto parent = std::make_shared<ProcessState>();
  parent->role = ProcessState::Role::parent;
  parent->name = parent_name;
  parent->pid = parent_pid;
  std::lock_guard lock(g.mu);
  g.current = self;
  g.parent = parent;
  // Only spawn starts a fresh process: as Python's, the child's context is set to it.
  g.start_method = "spawn";
  g.method_set = true;
}

namespace {
// The number prepare_pool_worker took on this thread, for the worker it forks.
thread_local int t_pool_worker_number = 0;
}  // namespace

void prepare_pool_worker() {
  Globals& g = Globals::get();
  std::lock_guard lock(g.mu);
  t_pool_worker_number = ++g.counter;
}

void become_pool_worker() {
  Globals& g = Globals::get();
  std::lock_guard lock(g.mu);
  StatePtr owner = g.current;
  auto self = std::make_shared<ProcessState>();
  self->role = ProcessState::Role::self;
  self->identity = owner->identity;
  self->identity.push_back(t_pool_worker_number);
  // Python renames the worker's Process-1:2 to ForkPoolWorker-1:2.
  self->name = "ForkPoolWorker" + default_name(self->identity).substr(std::strlen("Process"));
  self->daemon = true;
  auto parent = std::make_shared<ProcessState>();
  parent->role = ProcessState::Role::parent;
  parent->name = owner->get_name();
  parent->identity = owner->identity;
  parent->pid = ::getppid();
  g.current = self;
  g.parent = parent;
  g.counter = 0;
  g.children.clear();
}

std::string current_process_name() {
  Globals& g = Globals::get();
  std::lock_guard lock(g.mu);
  return g.current->get_name();
}

int run_target_on_stack(lua_State* L, const std::string& name) { return run_target(L, name); }

void register_process_sendable() {
  register_sendable_class(SendableClass{
      "process", kProcessTypeName,
      [](lua_State* L, int idx, std::string& out) { write_shared_ref(out, check_handle(L, idx).state); },
      [](lua_State* L, std::string_view ref) {
        push_handle(L, take_shared_ref<ProcessState>(L, ref, kProcessTypeName));
      },
      drop_shared_ref<ProcessState>, true});
}

}  // namespace plua::lua

int luaopen_plua_process(lua_State* L) {
  using namespace plua::lua;
  Globals::get();
  if (luaL_newmetatable(L, kProcessTypeName)) {
    luaL_setfuncs(L, kMeta, 0);
    luaL_newlib(L, kMethods);
    lua_setfield(L, -2, "__methods");
  }
  lua_pop(L, 1);
  register_process_sendable();
  add_shutdown_hook(L, process_at_exit);
  luaL_newlib(L, kFunctions);
  return 1;
}
