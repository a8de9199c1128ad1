#include "pool_worker.hpp"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string_view>

#include "plua/core/child_process.hpp"
#include "plua/core/pool_wire.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/interrupt.hpp"
#include "plua/lua/lua.hpp"
#include "plua/lua/modules.hpp"
#include "plua/lua/process.hpp"

namespace plua::lua::pool_worker {
namespace {

using core::pool_wire::Frame;
using core::pool_wire::FrameType;
using core::pool_wire::TaskMode;

// Registry keys of the worker's state.
constexpr const char* kFunctions = "plua.pool.functions";  // id -> function (or {error})
constexpr const char* kInitError = "plua.pool.init_error";  // {error, traceback} if the initializer failed

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Message handler: {error value, the worker's traceback} (the parent re-raises both).
int keep_traceback(lua_State* L) {
  lua_settop(L, 1);
  lua_createtable(L, 2, 0);  // index 2
  lua_pushvalue(L, 1);
  lua_rawseti(L, 2, 1);
  luaL_traceback(L, L, nullptr, 1);
  lua_rawseti(L, 2, 2);
  return 1;
}

// Applies the start kit: the globals (each on its own, so one that cannot be
// decoded here is left out), then the initializer with its args.
int apply_kit(lua_State* L) {
  auto* kit = static_cast<const std::string*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  int n = decode(L, *kit);
  lua_settop(L, 3);
  (void)n;
  if (lua_istable(L, 1)) {
    lua_pushglobaltable(L);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      size_t len = 0;
      const char* msg = lua_tolstring(L, -1, &len);
      lua_pushvalue(L, -2);  // name
      lua_pushcfunction(L, [](lua_State* S) -> int {
        size_t l = 0;
        const char* m = lua_tolstring(S, 1, &l);
        lua_settop(S, 0);
        decode(S, std::string_view(m, l));
        return 1;
      });
      lua_pushlstring(L, msg, len);
      if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        lua_rawset(L, 4);
      } else {
        lua_pop(L, 2);  // left out: cannot travel here
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    int nargs = 0;
    if (lua_istable(L, 3)) {
      nargs = static_cast<int>(luaL_len(L, 3));
      luaL_checkstack(L, nargs + 2, "pool: too many initargs");
      for (int i = 1; i <= nargs; ++i) lua_geti(L, 3, i);
    }
    lua_call(L, nargs, 0);
  }
  return 0;
}

struct ChunkCall {
  const Frame* frame;
  std::string* out;
};

// Runs one chunk (protected by the caller): decodes its values, calls the
// function as the mode says, encodes the results into *out.
int run_chunk(lua_State* L) {
  auto* call = static_cast<ChunkCall*>(lua_touserdata(L, 1));
  const Frame& f = *call->frame;
  lua_settop(L, 0);
  if (lua_getfield(L, LUA_REGISTRYINDEX, kInitError) == LUA_TTABLE) {
    lua_rawgeti(L, 1, 1);
    return lua_error(L);
  }
  lua_settop(L, 0);
  if (f.function != 0) {
    lua_getfield(L, LUA_REGISTRYINDEX, kFunctions);
    if (lua_rawgeti(L, 1, static_cast<lua_Integer>(f.function)) == LUA_TNIL)
      return luaL_error(L, "pool worker: function %I was never sent", static_cast<lua_Integer>(f.function));
    if (lua_istable(L, 2)) {  // the function could not be decoded here
      lua_rawgeti(L, 2, 1);
      return lua_error(L);
    }
    lua_remove(L, 1);
    decode(L, f.payload);
  } else {
    decode(L, f.payload);  // the function is the first value
  }
  // Stack: fn, values...
  int n = lua_gettop(L) - 1;
  switch (f.mode) {
    case TaskMode::apply: {
      lua_call(L, n, LUA_MULTRET);
      int results = lua_gettop(L);
      *call->out = encode(L, 1, results, "result");
      return 0;
    }
    case TaskMode::map:
      for (int i = 2; i <= n + 1; ++i) {
        lua_pushvalue(L, 1);
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        lua_replace(L, i);
      }
      break;
    case TaskMode::starmap:
      for (int i = 2; i <= n + 1; ++i) {
        lua_pushvalue(L, 1);
        int nargs = 0;
        if (lua_type(L, i) == LUA_TTABLE) {
          nargs = static_cast<int>(luaL_len(L, i));
          luaL_checkstack(L, nargs + 2, "pool: too many arguments");
          for (int k = 1; k <= nargs; ++k) lua_geti(L, i, k);
        } else {
          return luaL_error(L, "pool:starmap: item %d is not a table of arguments", i - 1);
        }
        lua_call(L, nargs, 1);
        lua_replace(L, i);
      }
      break;
  }
  *call->out = encode(L, 2, n, "result");
  return 0;
}

// Encodes {error value, traceback}; an error value that cannot travel goes as text.
int encode_failure(lua_State* L) {
  auto* out = static_cast<std::string*>(lua_touserdata(L, 2));
  lua_rawgeti(L, 1, 1);
  lua_rawgeti(L, 1, 2);
  int top = lua_gettop(L);
  *out = encode(L, top - 1, 2, "error");
  return 0;
}

void failure_payload(lua_State* L, int err_idx, std::string& out) {
  err_idx = lua_absindex(L, err_idx);
  lua_pushcfunction(L, encode_failure);
  lua_pushvalue(L, err_idx);
  lua_pushlightuserdata(L, &out);
  if (lua_pcall(L, 2, 0, 0) == LUA_OK) return;
  lua_pop(L, 1);
  // Fall back to the error's text.
  lua_rawgeti(L, err_idx, 1);
  const char* text = luaL_tolstring(L, -1, nullptr);
  lua_pushstring(L, text ? text : "?");
  lua_rawgeti(L, err_idx, 2);
  int top = lua_gettop(L);
  lua_pushcfunction(L, [](lua_State* S) -> int {
    auto* o = static_cast<std::string*>(lua_touserdata(S, 3));
    *o = encode(S, 1, 2, "error");
    return 0;
  });
  lua_pushvalue(L, top - 1);
  lua_pushvalue(L, top);
  lua_pushlightuserdata(L, &out);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    out.clear();
    lua_pop(L, 1);
  }
  lua_settop(L, top - 3);
}

// Decodes a def's function into the cache (or the error, for the tasks that use it).
void define(lua_State* L, const Frame& f, std::deque<std::uint64_t>& order) {
  lua_getfield(L, LUA_REGISTRYINDEX, kFunctions);
  int cache = lua_gettop(L);
  lua_pushcfunction(L, [](lua_State* S) -> int {
    auto* payload = static_cast<const std::string_view*>(lua_touserdata(S, 1));
    lua_settop(S, 0);
    decode(S, *payload);
    lua_settop(S, 1);
    return 1;
  });
  std::string_view payload = f.payload;
  lua_pushlightuserdata(L, &payload);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
  }
  lua_rawseti(L, cache, static_cast<lua_Integer>(f.id));
  order.push_back(f.id);
  if (order.size() > core::pool_wire::kFunctionCache) {
    lua_pushnil(L);
    lua_rawseti(L, cache, static_cast<lua_Integer>(order.front()));
    order.pop_front();
  }
  lua_settop(L, cache - 1);
}

// The interrupt signal once its handler is installed (0 before).
std::atomic<int> g_installed_signal{0};

// os.exit in a worker process: status as Lua's (true/false/integer), then _exit.
int worker_exit(lua_State* L) {
  int status = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE)
                                   : static_cast<int>(luaL_optinteger(L, 1, EXIT_SUCCESS));
  core::run_fork_child_exit_hooks();
  std::fflush(nullptr);
  ::_exit(status);
}

void on_interrupt_signal(int) {
  int saved = errno;
  interrupt_this_thread();
  errno = saved;
}

}  // namespace

int interrupt_signal() {
  static const int sig = [] {
#if defined(__SANITIZE_THREAD__)
    // TSan holds an asynchronous signal back until the thread makes an intercepted
    // call, which a busy Lua loop never does; a synchronous one (SIGSYS) it delivers at once.
    int s = SIGSYS;
#else
    int s = SIGRTMIN + 5;
#endif
    struct sigaction sa {};
    sa.sa_handler = on_interrupt_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(s, &sa, nullptr);
    g_installed_signal.store(s, std::memory_order_release);
    return s;
  }();
  return sig;
}

int run(int in_fd, int out_fd, std::string kit, std::uint64_t max_tasks, bool own_process) {
  if (own_process) become_pool_worker();
  lua_State* L = luaL_newstate();
  if (L == nullptr) return 1;
  luaL_openlibs(L);
  preload_modules(L);
  attach_this_thread(L);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, kFunctions);
  if (own_process) {
    lua_getglobal(L, "os");
    lua_pushcfunction(L, worker_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
  }

  lua_pushcfunction(L, keep_traceback);  // index 1: the message handler
  lua_pushcfunction(L, apply_kit);
  lua_pushlightuserdata(L, &kit);
  if (lua_pcall(L, 1, 0, 1) != LUA_OK) lua_setfield(L, LUA_REGISTRYINDEX, kInitError);

  core::pool_wire::WorkerEndpoint endpoint(in_fd, out_fd);
  std::deque<std::uint64_t> order;
  std::uint64_t done = 0;
  std::string out;
  Frame f;
  try {
    while (endpoint.next(f)) {
      if (f.type == FrameType::quit) break;
      if (f.type == FrameType::def) {
        define(L, f, order);
        continue;
      }
      if (f.type != FrameType::task) continue;
      double start = now();
      ChunkCall call{&f, &out};
      lua_pushcfunction(L, run_chunk);
      lua_pushlightuserdata(L, &call);
      bool ok = lua_pcall(L, 1, 0, 1) == LUA_OK;
      if (!ok) {
        failure_payload(L, -1, out);
        lua_settop(L, 1);
      }
      endpoint.send_result(f.id, ok, now() - start, out);
      out.clear();
      // Output of a task reaches its destination before its result does.
      std::fflush(stdout);
      if (max_tasks && ++done >= max_tasks) break;
    }
    endpoint.flush();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plua: pool worker: %s\n", e.what());
  }
  // Leaving: a late interrupt from terminate must not cut the shutdown hooks short.
  if (int sig = g_installed_signal.load(std::memory_order_acquire)) {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, sig);
    pthread_sigmask(SIG_BLOCK, &block, nullptr);
  }
  clear_interrupt(L);
  detach_this_thread();
  run_shutdown_hooks(L);
  lua_close(L);
  return 0;
}

}  // namespace plua::lua::pool_worker
