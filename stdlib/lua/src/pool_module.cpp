// Lua binding of the `pool` module: Python's multiprocessing.Pool and
// multiprocessing.pool.ThreadPool over core::WorkerPool. This file turns Lua
// values into chunk messages and outcomes back into values and errors, and
// runs callbacks in the owner's state; the workers' side is pool_worker.cpp.
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "plua/core/codec_format.hpp"
#include "plua/core/worker_pool.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/lua.hpp"
#include "plua/lua/process.hpp"
#include "plua/lua/weak_table.hpp"
#include "pool_worker.hpp"

namespace plua::lua {
namespace {

using core::ChunkOutcome;
using core::PoolFunction;
using core::PoolJob;
using core::WorkerPool;
using core::pool_wire::TaskMode;

constexpr const char* kPoolType = "plua.Pool";
constexpr const char* kResultType = "plua.AsyncResult";
constexpr const char* kIteratorType = "plua.PoolIterator";
constexpr const char* kFunctionType = "plua.PoolFunction";

constexpr const char* kTimeoutError = "TimeoutError";
constexpr const char* kWorkerLostError = "WorkerLostError";
constexpr const char* kRemoteError = "RemoteError";
constexpr const char* kValueError = "ValueError";

// A chunk's values sit on a worker's Lua stack at once: keep them well inside its limit.
constexpr lua_Integer kMaxChunk = 50000;

// One Lua state's handle of a pool. The state that made the pool holds the
// creator handle (tag 0: it makes start kits, and its __gc terminates the
// pool); a pool received from another thread gets a handle of its own, with
// its own tag, so the callbacks of what it submits run in its state.
struct PoolHandle {
  std::shared_ptr<WorkerPool> pool;
  pid_t owner = 0;
  bool threads = false;
  std::uint64_t tag = 0;
};

std::atomic<std::uint64_t> g_next_tag{0};

struct ResultHandle {
  std::shared_ptr<WorkerPool> pool;
  std::shared_ptr<PoolJob> job;
  bool is_map = false;     // a list of one value per item, or all of apply's values
  bool resolved = false;   // outcome decoded into the uservalue (value or error)
  bool ok = false;
  lua_Integer items = 0;   // map: the list's length, so the result table is sized once
  std::size_t decoded = 0; // chunks decoded so far into uservalue.partial, in order
  lua_Integer count = 0;   // values in uservalue.partial
};

struct IteratorHandle {
  std::shared_ptr<WorkerPool> pool;
  std::shared_ptr<PoolJob> job;
  bool ordered = true;
  std::size_t next = 0;                 // ordered: next chunk; unordered: next arrival
  std::vector<lua_Integer> first_item;  // the list position of each chunk's first item
};

struct FunctionRef {
  std::shared_ptr<const PoolFunction> fn;
};

// True if the message holds plua objects (by-reference values, decoded at most once).
bool has_objects(std::string_view message) noexcept {
  bool found = false;
  try {
    core::codec::visit_objects(
        message, [](void* ctx, std::string_view, std::string_view, std::string_view) { *static_cast<bool*>(ctx) = true; },
        &found);
  } catch (const std::exception&) {
    return true;  // unreadable here: treated as single-use
  }
  return found;
}

// The uservalue table of the userdata at idx: its field `key`.
void get_private(lua_State* L, int idx, const char* key) {
  lua_getiuservalue(L, idx, 1);
  lua_getfield(L, -1, key);
  lua_remove(L, -2);
}

void set_private(lua_State* L, int idx, const char* key) {
  idx = lua_absindex(L, idx);
  lua_getiuservalue(L, idx, 1);
  lua_insert(L, -2);
  lua_setfield(L, -2, key);
  lua_pop(L, 1);
}

PoolHandle& check_pool(lua_State* L, int idx, const char* op) {
  auto* h = static_cast<PoolHandle*>(luaL_checkudata(L, idx, kPoolType));
  if (h->owner != ::getpid())
    luaL_error(L, "%s: a pool can only be used by the process that created it", op);
  return *h;
}

// ---- start kits ----

// {globals = {name = message}, initializer, initargs} as one message; sets
// *reusable when no part of it holds plua objects (so every worker may
// decode the same bytes).
std::string make_kit(lua_State* L, int pool_idx, bool* reusable) {
  pool_idx = lua_absindex(L, pool_idx);
  bool objects = false;
  auto globals = encode_globals_each(L);
  lua_createtable(L, 0, static_cast<int>(globals.size()));
  for (auto& [name, message] : globals) {
    objects = objects || has_objects(message);
    lua_pushlstring(L, message.data(), message.size());
    lua_setfield(L, -2, name.c_str());
  }
  get_private(L, pool_idx, "initializer");
  get_private(L, pool_idx, "initargs");
  std::string kit = encode(L, lua_gettop(L) - 2, 3, "kit");
  lua_pop(L, 3);
  objects = objects || has_objects(kit);
  if (reusable) *reusable = !objects;
  return kit;
}

// ---- errors from outcomes ----

std::string signal_text(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  std::string text = "signal " + std::to_string(sig);
  if (abbrev) text += std::string(" (SIG") + abbrev + ")";
  return text;
}

// Pushes the error object a failed outcome stands for.
void push_outcome_error(lua_State* L, const ChunkOutcome& o) {
  if (o.status == ChunkOutcome::Status::lost) {
    std::string what = o.pid ? "worker process " + std::to_string(o.pid) : std::string("worker thread");
    std::string how = o.exitcode < 0 ? "was killed by " + signal_text(-o.exitcode)
                                     : "exited with status " + std::to_string(o.exitcode);
    push_error_object(L, kWorkerLostError, what + " " + how + " while running the task");
    lua_pushinteger(L, o.pid);
    lua_setfield(L, -2, "pid");
    lua_pushinteger(L, o.exitcode);
    lua_setfield(L, -2, "exitcode");
    if (o.exitcode < 0) {
      lua_pushinteger(L, -o.exitcode);
      lua_setfield(L, -2, "signal");
    }
    return;
  }
  if (o.status == ChunkOutcome::Status::terminated) {
    push_error_object(L, kWorkerLostError, "the pool was terminated before the task finished");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "terminated");
    return;
  }
  // A task's own error: {error value, traceback}.
  int top = lua_gettop(L);
  lua_pushcfunction(L, [](lua_State* S) -> int {
    size_t len = 0;
    const char* p = lua_tolstring(S, 1, &len);
    lua_settop(S, 0);
    decode(S, std::string_view(p, len));
    lua_settop(S, 2);
    return 2;
  });
  lua_pushlstring(L, o.payload.data(), o.payload.size());
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
    const char* why = lua_tostring(L, -1);
    push_error_object(L, kRemoteError, std::string("the task failed, and its error could not be read: ") + (why ? why : "?"));
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return;
  }
  int err = top + 1, tb = top + 2;
  if (lua_type(L, err) == LUA_TTABLE) {
    lua_getfield(L, err, "kind");
    bool kinded = lua_type(L, -1) == LUA_TSTRING;
    if (kinded) {
      // A Python-kind error object: the same kind again, with every field it had.
      size_t klen = 0;
      const char* kind = lua_tolstring(L, -1, &klen);
      lua_getfield(L, err, "message");
      const char* message = lua_tostring(L, -1);
      push_error_object(L, std::string_view(kind, klen), message ? message : "");
      int obj = lua_gettop(L);
      lua_pushnil(L);
      while (lua_next(L, err)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, obj);
      }
      lua_replace(L, err);
      lua_settop(L, tb);
      lua_getfield(L, err, "traceback");
      if (lua_isnil(L, -1)) {
        lua_pushvalue(L, tb);
        lua_setfield(L, err, "traceback");
      }
      lua_pop(L, 1);
      lua_settop(L, err);
      return;
    }
    lua_pop(L, 1);
  }
  {
    // Any other value (a table without a kind included): RemoteError holding it.
    const char* text = luaL_tolstring(L, err, nullptr);
    push_error_object(L, kRemoteError, text ? text : "?");
    lua_remove(L, -2);
    lua_pushvalue(L, err);
    lua_setfield(L, -2, "value");
    lua_pushvalue(L, tb);
    lua_setfield(L, -2, "traceback");
    lua_replace(L, err);
  }
  lua_settop(L, err);
}

// ---- functions ----

// The function at fn_idx as workers get it: cached per pool when its message
// holds no plua objects (sent once per worker), otherwise a fresh copy that
// travels inside each chunk (PoolFunction id 0; its objects are decoded once).
std::shared_ptr<const PoolFunction> pool_function(lua_State* L, int pool_idx, PoolHandle& h, int fn_idx) {
  fn_idx = lua_absindex(L, fn_idx);
  get_private(L, pool_idx, "functions");
  int cache = lua_gettop(L);
  if (lua_isfunction(L, fn_idx) || lua_istable(L, fn_idx) || lua_isuserdata(L, fn_idx)) {
    lua_pushvalue(L, fn_idx);
    if (lua_rawget(L, cache) == LUA_TUSERDATA) {
      auto* ref = static_cast<FunctionRef*>(luaL_checkudata(L, -1, kFunctionType));
      auto fn = ref->fn;
      lua_settop(L, cache - 1);
      return fn;
    }
    lua_pop(L, 1);
  }
  std::string message = encode(L, fn_idx, 1, "f");
  if (has_objects(message)) {
    discard(message);
    lua_settop(L, cache - 1);
    return std::make_shared<PoolFunction>();
  }
  auto fn = std::make_shared<PoolFunction>(PoolFunction{h.pool->next_function_id(), std::move(message)});
  if (lua_isfunction(L, fn_idx) || lua_istable(L, fn_idx) || lua_isuserdata(L, fn_idx)) {
    lua_pushvalue(L, fn_idx);
    auto* ref = static_cast<FunctionRef*>(lua_newuserdatauv(L, sizeof(FunctionRef), 0));
    new (ref) FunctionRef{fn};
    luaL_setmetatable(L, kFunctionType);
    lua_rawset(L, cache);
  }
  lua_settop(L, cache - 1);
  return fn;
}

// ---- callbacks and the owner's chores ----

void resolve(lua_State* L, int result_idx);

// Does what the pool needs from its owner: start kits for new workers, and
// the callbacks of results that became ready (in that order). Each callback
// runs protected; the first error among them is raised afterwards.
void service(lua_State* L, int pool_idx, PoolHandle& h) {
  pool_idx = lua_absindex(L, pool_idx);
  if (h.tag == 0) {
    for (std::size_t n = h.pool->kits_wanted(); n > 0; --n) {
      EncodingForAnotherProcess for_workers(!h.threads);
      h.pool->add_kit(make_kit(L, pool_idx, nullptr));
    }
  }
  auto jobs = h.pool->take_callback_jobs(h.tag);
  if (jobs.empty()) return;
  int top = lua_gettop(L);
  get_private(L, pool_idx, "pending");
  int pending = lua_gettop(L);
  lua_pushnil(L);
  int first_error = lua_gettop(L);
  for (auto& job : jobs) {
    if (lua_rawgetp(L, pending, job.get()) != LUA_TUSERDATA) {
      lua_pop(L, 1);
      continue;
    }
    int result = lua_gettop(L);
    lua_pushnil(L);
    lua_rawsetp(L, pending, job.get());
    resolve(L, result);
    auto* r = static_cast<ResultHandle*>(lua_touserdata(L, result));
    get_private(L, result, r->ok ? "callback" : "error_callback");
    if (!lua_isnil(L, -1)) {
      get_private(L, result, r->ok ? "value" : "error");
      if (r->ok && !r->is_map) {
        // apply's callback gets the task's first value, as Python's gets its one.
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
      }
      if (lua_pcall(L, 1, 0, 0) != LUA_OK && lua_isnil(L, first_error)) {
        lua_replace(L, first_error);
      } else {
        lua_settop(L, result);
      }
    }
    lua_settop(L, result - 1);
  }
  if (!lua_isnil(L, first_error)) {
    lua_pushvalue(L, first_error);
    lua_error(L);
  }
  lua_settop(L, top);
}

// The pool userdata a result or iterator belongs to, pushed; its handle.
PoolHandle& push_owner_pool(lua_State* L, int idx, const char* op) {
  get_private(L, idx, "pool");
  return check_pool(L, lua_gettop(L), op);
}

// Waits for `ready` while doing the owner's chores; false on timeout.
template <class Wait>
bool wait_serving(lua_State* L, int pool_idx, PoolHandle& h, const char* op, Wait wait) {
  for (;;) {
    service(L, pool_idx, h);
    WorkerPool::Wake wake = call_core(L, op, wait);
    if (wake == WorkerPool::Wake::done) {
      service(L, pool_idx, h);
      return true;
    }
    if (wake == WorkerPool::Wake::timeout) return false;
  }
}

// ---- AsyncResult ----

// Settles a result as failed with the error on top of the stack (popped).
void fail_result(lua_State* L, int result_idx, ResultHandle* r) {
  set_private(L, result_idx, "error");
  lua_pushnil(L);
  set_private(L, result_idx, "partial");
  r->resolved = true;
  r->ok = false;
}

// Decodes the chunks that have arrived, in list order, onto uservalue.partial
// (a map's values go there while its later chunks still run); a chunk that
// did not succeed, or cannot be read, settles the result as failed.
void advance(lua_State* L, int result_idx) {
  result_idx = lua_absindex(L, result_idx);
  auto* r = static_cast<ResultHandle*>(lua_touserdata(L, result_idx));
  const char* op = "AsyncResult:get";
  if (r->resolved) return;
  get_private(L, result_idx, "partial");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, static_cast<int>(std::min<lua_Integer>(r->items, INT_MAX)), r->is_map ? 0 : 1);
    lua_pushvalue(L, -1);
    set_private(L, result_idx, "partial");
  }
  int values = lua_gettop(L);
  while (r->decoded < r->job->chunks() &&
         call_core(L, op, [&] { return r->pool->has_outcome(*r->job, r->decoded); })) {
    ChunkOutcome o = call_core(L, op, [&] { return r->pool->take(*r->job, r->decoded); });
    if (o.status != ChunkOutcome::Status::ok) {
      push_outcome_error(L, o);
      fail_result(L, result_idx, r);
      break;
    }
    lua_pushcfunction(L, [](lua_State* S) -> int {
      auto* p = static_cast<std::string*>(lua_touserdata(S, 1));
      lua_settop(S, 0);
      return decode(S, *p);
    });
    lua_pushlightuserdata(L, &o.payload);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
      push_error_object(L, kRemoteError, std::string("cannot read the task's result: ") +
                                             (lua_tostring(L, -1) ? lua_tostring(L, -1) : "?"));
      fail_result(L, result_idx, r);
      break;
    }
    // In list order: filled back to front, the list would start in the hash
    // part and be rehashed over and over as it grows.
    int got = lua_gettop(L) - values;
    for (int k = 1; k <= got; ++k) {
      lua_pushvalue(L, values + k);
      lua_rawseti(L, values, r->count + k);
    }
    lua_settop(L, values);
    r->count += got;
    ++r->decoded;
  }
  lua_settop(L, values - 1);
}

// Decodes a ready result once: uservalue.value (a list, with n for apply) or .error.
void resolve(lua_State* L, int result_idx) {
  result_idx = lua_absindex(L, result_idx);
  auto* r = static_cast<ResultHandle*>(luaL_checkudata(L, result_idx, kResultType));
  if (r->resolved) return;
  auto failed = call_core(L, "AsyncResult:get", [&] { return r->pool->failure(*r->job); });
  if (failed) {
    ChunkOutcome o = call_core(L, "AsyncResult:get", [&] { return r->pool->take(*r->job, *failed); });
    push_outcome_error(L, o);
    fail_result(L, result_idx, r);
    return;
  }
  advance(L, result_idx);
  if (r->resolved) return;
  get_private(L, result_idx, "partial");
  if (!r->is_map) {
    lua_pushinteger(L, r->count);
    lua_setfield(L, -2, "n");
  }
  set_private(L, result_idx, "value");
  lua_pushnil(L);
  set_private(L, result_idx, "partial");
  r->resolved = true;
  r->ok = true;
}

ResultHandle& check_result(lua_State* L) {
  return *static_cast<ResultHandle*>(luaL_checkudata(L, 1, kResultType));
}

// Waits (serving the owner's chores) until ready; false on timeout.
bool wait_result(lua_State* L, const char* op, const core::Deadline& deadline) {
  ResultHandle& r = check_result(L);
  PoolHandle& h = push_owner_pool(L, 1, op);
  int pool_idx = lua_gettop(L);
  bool done = false;
  if (!r.is_map) {
    done = wait_serving(L, pool_idx, h, op, [&] { return r.pool->wait_ready(*r.job, deadline, h.tag); });
  } else {
    // A map's chunks are decoded as they arrive, while the others still run.
    for (;;) {
      service(L, pool_idx, h);
      advance(L, 1);
      std::size_t seen = call_core(L, op, [&] { return r.pool->arrivals(*r.job); });
      if (r.resolved || call_core(L, op, [&] { return r.pool->ready(*r.job); })) {
        service(L, pool_idx, h);
        done = true;
        break;
      }
      if (call_core(L, op, [&] { return r.pool->has_outcome(*r.job, r.decoded); })) continue;
      WorkerPool::Wake wake = call_core(L, op, [&] { return r.pool->wait_progress(*r.job, seen, deadline, h.tag); });
      if (wake == WorkerPool::Wake::timeout) break;
    }
  }
  lua_settop(L, pool_idx - 1);
  return done;
}

int result_get(lua_State* L) {
  ResultHandle& r = check_result(L);
  auto deadline = check_deadline(L, 2);
  lua_settop(L, 1);
  if (!wait_result(L, "AsyncResult:get", deadline)) raise_error(L, kTimeoutError, "AsyncResult:get: timed out");
  resolve(L, 1);
  if (!r.ok) {
    get_private(L, 1, "error");
    return lua_error(L);
  }
  get_private(L, 1, "value");
  if (r.is_map) return 1;
  int values = lua_gettop(L);
  lua_getfield(L, values, "n");
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, static_cast<int>(n), "AsyncResult:get: too many results");
  for (lua_Integer i = 1; i <= n; ++i) lua_rawgeti(L, values, i);
  return static_cast<int>(n);
}

int result_wait(lua_State* L) {
  auto deadline = check_deadline(L, 2);
  lua_settop(L, 1);
  lua_pushboolean(L, wait_result(L, "AsyncResult:wait", deadline));
  return 1;
}

int result_ready(lua_State* L) {
  lua_settop(L, 1);
  lua_pushboolean(L, wait_result(L, "AsyncResult:ready", core::Deadline::after(0)));
  return 1;
}

int result_successful(lua_State* L) {
  ResultHandle& r = check_result(L);
  lua_settop(L, 1);
  if (!wait_result(L, "AsyncResult:successful", core::Deadline::after(0)))
    raise_error(L, kValueError, "AsyncResult:successful: the result is not ready");
  resolve(L, 1);
  lua_pushboolean(L, r.ok);
  return 1;
}

int result_gc(lua_State* L) {
  static_cast<ResultHandle*>(luaL_checkudata(L, 1, kResultType))->~ResultHandle();
  return 0;
}

int result_tostring(lua_State* L) {
  ResultHandle& r = check_result(L);
  lua_pushfstring(L, "<AsyncResult %s>", r.resolved ? (r.ok ? "successful" : "failed") : "pending");
  return 1;
}

// ---- submitting ----

struct Callbacks {
  bool any = false;
};

// Reads {callback=, error_callback=} at idx into the result's uservalue;
// arg is the argument's position as the caller wrote it, for errors.
Callbacks read_callbacks(lua_State* L, int idx, int result_idx, int arg) {
  Callbacks cb;
  if (lua_isnoneornil(L, idx)) return cb;
  luaL_checktype(L, idx, LUA_TTABLE);
  check_option_names(L, idx, arg, {"callback", "error_callback"});
  for (const char* key : {"callback", "error_callback"}) {
    int t = lua_getfield(L, idx, key);
    if (t != LUA_TNIL && t != LUA_TFUNCTION && !luaL_getmetafield(L, -1, "__call"))
      luaL_argerror(L, arg, (std::string(key) + " must be a function").c_str());
    if (t != LUA_TNIL && t != LUA_TFUNCTION) lua_pop(L, 1);
    if (t != LUA_TNIL) cb.any = true;
    set_private(L, result_idx, key);
  }
  return cb;
}

// Pushes a new AsyncResult for a job about to be submitted (fields filled by the caller).
int push_result(lua_State* L, int pool_idx, bool is_map, lua_Integer items = 0) {
  auto* r = static_cast<ResultHandle*>(lua_newuserdatauv(L, sizeof(ResultHandle), 1));
  new (r) ResultHandle{};
  r->is_map = is_map;
  r->items = items;
  luaL_setmetatable(L, kResultType);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, pool_idx);
  lua_setfield(L, -2, "pool");
  lua_setiuservalue(L, -2, 1);
  return lua_gettop(L);
}

// Runs a WorkerPool call that queues work, turning PoolNotRunning into ValueError.
template <class Queue>
auto queue_work(lua_State* L, const char* op, Queue queue) {
  bool not_running = false;
  auto job = call_core(L, op, [&] {
    try {
      return queue();
    } catch (const core::PoolNotRunning&) {
      not_running = true;
      return std::shared_ptr<PoolJob>();
    }
  });
  if (not_running) raise_error(L, kValueError, std::string(op) + ": Pool not running");
  return job;
}

// Gives the job to the result userdata at result_idx and registers it for callbacks.
void attach(lua_State* L, int pool_idx, PoolHandle& h, int result_idx, std::shared_ptr<PoolJob> job,
            bool callbacks) {
  auto* r = static_cast<ResultHandle*>(lua_touserdata(L, result_idx));
  r->pool = h.pool;
  r->job = std::move(job);
  if (callbacks) {
    get_private(L, pool_idx, "pending");
    lua_pushvalue(L, result_idx);
    lua_rawsetp(L, -2, r->job.get());
    lua_pop(L, 1);
  }
}

// Submits the job, registers it for callbacks; the result userdata at result_idx gets it.
void submit(lua_State* L, int pool_idx, PoolHandle& h, int result_idx, const char* op,
            std::shared_ptr<const PoolFunction> fn, TaskMode mode, std::vector<std::string> payloads,
            bool callbacks) {
  auto job = queue_work(L, op, [&] { return h.pool->submit(std::move(fn), mode, std::move(payloads), callbacks, h.tag); });
  attach(L, pool_idx, h, result_idx, std::move(job), callbacks);
}

// A streamed job still being fed: abandoned if a Lua error (a value that
// cannot travel, an interrupt) ends the feeding before its last chunk.
class JobFeed {
 public:
  JobFeed(std::shared_ptr<WorkerPool> pool, std::shared_ptr<PoolJob> job)
      : pool_(std::move(pool)), job_(std::move(job)) {}
  ~JobFeed() {
    if (!complete_) pool_->abandon(job_);
  }
  JobFeed(const JobFeed&) = delete;
  JobFeed& operator=(const JobFeed&) = delete;
  void add(std::string payload) { pool_->add_chunk(job_, std::move(payload)); }
  std::shared_ptr<PoolJob> complete() {
    complete_ = true;
    return job_;
  }

 private:
  std::shared_ptr<WorkerPool> pool_;
  std::shared_ptr<PoolJob> job_;
  bool complete_ = false;
};

// The list at idx, checked: a table (or a value with __len and __index).
lua_Integer check_list(lua_State* L, int idx) {
  if (!lua_istable(L, idx)) {
    if (!luaL_getmetafield(L, idx, "__len")) luaL_typeerror(L, idx, "table");
    lua_pop(L, 1);
  }
  return luaL_len(L, idx);
}

// Python's default: divmod(len, 4 * workers), rounded up.
lua_Integer check_chunksize(lua_State* L, int idx, lua_Integer n, std::size_t workers, lua_Integer fallback) {
  lua_Integer size;
  if (lua_isnoneornil(L, idx)) {
    if (fallback > 0) {
      size = fallback;
    } else {
      lua_Integer per = static_cast<lua_Integer>(workers) * 4;
      size = n / per + (n % per ? 1 : 0);
    }
  } else {
    size = luaL_checkinteger(L, idx);
    luaL_argcheck(L, size >= 1, idx, "chunksize must be a positive integer");
  }
  if (size < 1) size = 1;
  return size > kMaxChunk ? kMaxChunk : size;
}

// Encodes list[first..last] (after the function, when it travels inline).
std::string encode_items(lua_State* L, int list, lua_Integer first, lua_Integer last, int fn_idx, bool inline_fn) {
  int count = static_cast<int>(last - first + 1);
  luaL_checkstack(L, count + 2, "pool: chunk too large");
  int base = lua_gettop(L);
  if (inline_fn) lua_pushvalue(L, fn_idx);
  for (lua_Integer i = first; i <= last; ++i) lua_geti(L, list, i);
  // Paths name the item's position in the whole list (an inline function comes first).
  std::string message = encode(L, base + 1, lua_gettop(L) - base, "list", inline_fn ? first - 1 : first);
  lua_settop(L, base);
  return message;
}

// Carries a callable value to the workers: metatables do not travel, so the
// value goes inside a function that gives a table its metatable back (once,
// in each worker) and calls it.
constexpr const char kCallableWrapper[] =
    "local callable, metatable, getmetatable, setmetatable = ...\n"
    "return function(...)\n"
    "  if metatable ~= nil and getmetatable(callable) == nil then setmetatable(callable, metatable) end\n"
    "  return callable(...)\n"
    "end\n";

// The task function at idx: a function, or a value whose __call is one
// (misuse is an argument error here, not a failure in every worker). A
// callable value is replaced at idx by the function that carries it (one per
// value and pool handle, so it is cached like any function).
void check_task_function(lua_State* L, int pool_idx, int idx) {
  if (lua_isfunction(L, idx)) return;
  if (luaL_getmetafield(L, idx, "__call") != LUA_TFUNCTION) luaL_typeerror(L, idx, "function");
  lua_pop(L, 1);
  get_private(L, pool_idx, "callables");
  int cache = lua_gettop(L);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, cache) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, kCallableWrapper, sizeof kCallableWrapper - 1, "=(pool callable)", "t") != LUA_OK)
      lua_error(L);
    lua_pushvalue(L, idx);
    if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) lua_pushnil(L);
    lua_getglobal(L, "getmetatable");
    lua_getglobal(L, "setmetatable");
    lua_call(L, 4, 1);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, cache);
  }
  lua_replace(L, idx);
  lua_pop(L, 1);
}

// starmap's list: every element a table of arguments, checked before anything is sent.
void check_arg_lists(lua_State* L, int list, lua_Integer n) {
  for (lua_Integer i = 1; i <= n; ++i) {
    int t = lua_geti(L, list, i);
    lua_pop(L, 1);
    if (t != LUA_TTABLE)
      luaL_argerror(L, list, lua_pushfstring(L, "every element must be a table of arguments; [%I] is a %s", i,
                                             lua_typename(L, t)));
  }
}

// apply_async(f, args, [{callback=, error_callback=}]) -> AsyncResult
int do_apply_async(lua_State* L, const char* op) {
  PoolHandle& h = check_pool(L, 1, op);
  check_task_function(L, 1, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 4);
  service(L, 1, h);
  int result = push_result(L, 1, false);
  Callbacks cb = read_callbacks(L, 4, result, 4);
  // Worker processes: a value only this process can use is refused here, with its path.
  EncodingForAnotherProcess for_workers(!h.threads);
  auto fn = pool_function(L, 1, h, 2);
  bool inline_fn = fn->id == 0;
  int base = lua_gettop(L);
  if (inline_fn) lua_pushvalue(L, 2);
  if (lua_istable(L, 3)) {
    lua_Integer n = luaL_len(L, 3);
    luaL_checkstack(L, static_cast<int>(n) + 2, "pool: too many arguments");
    for (lua_Integer i = 1; i <= n; ++i) lua_geti(L, 3, i);
  }
  std::vector<std::string> payloads;
  payloads.push_back(encode(L, base + 1, lua_gettop(L) - base, "args", inline_fn ? 0 : 1));
  lua_settop(L, base);
  submit(L, 1, h, result, op, std::move(fn), TaskMode::apply, std::move(payloads), cb.any);
  return 1;
}

int pool_apply_async(lua_State* L) { return do_apply_async(L, "pool:apply_async"); }

int pool_apply(lua_State* L) {
  lua_settop(L, 3);
  do_apply_async(L, "pool:apply");
  lua_replace(L, 1);
  lua_settop(L, 1);
  return result_get(L);
}

// Chunks of list (arg 3) for map-like calls; pushes the AsyncResult.
int do_map_async(lua_State* L, const char* op, TaskMode mode) {
  PoolHandle& h = check_pool(L, 1, op);
  check_task_function(L, 1, 2);
  lua_Integer n = check_list(L, 3);
  if (mode == TaskMode::starmap) check_arg_lists(L, 3, n);
  int options_arg = 5;
  if (lua_type(L, 4) == LUA_TTABLE) {
    lua_settop(L, 4);
    lua_pushnil(L);
    lua_insert(L, 4);
    options_arg = 4;
  }
  lua_settop(L, 5);
  lua_Integer size = check_chunksize(L, 4, n, h.pool->size(), 0);
  service(L, 1, h);
  int result = push_result(L, 1, true, n);
  Callbacks cb = read_callbacks(L, 5, result, options_arg);
  EncodingForAnotherProcess for_workers(!h.threads);
  auto fn = pool_function(L, 1, h, 2);
  bool inline_fn = fn->id == 0;
  auto chunk_end = [&](lua_Integer first) { return first + size - 1 > n ? n : first + size - 1; };
  if (n <= size) {
    std::vector<std::string> payloads;
    if (n > 0) payloads.push_back(encode_items(L, 3, 1, n, 2, inline_fn));
    submit(L, 1, h, result, op, std::move(fn), mode, std::move(payloads), cb.any);
    return 1;
  }
  // Workers start on the first chunk while the rest are encoded. It is encoded
  // before anything is queued, so a value there that cannot travel starts nothing.
  std::string head = encode_items(L, 3, 1, size, 2, inline_fn);
  auto chunks = static_cast<std::size_t>(n / size + (n % size ? 1 : 0));
  auto job = queue_work(L, op, [&] { return h.pool->open_job(std::move(fn), mode, chunks, cb.any, h.tag); });
  JobFeed feed(h.pool, job);
  call_core(L, op, [&] { feed.add(std::move(head)); });
  for (lua_Integer first = 1 + size; first <= n; first += size) {
    std::string payload = encode_items(L, 3, first, chunk_end(first), 2, inline_fn);
    call_core(L, op, [&] { feed.add(std::move(payload)); });
  }
  attach(L, 1, h, result, feed.complete(), cb.any);
  return 1;
}

int pool_map_async(lua_State* L) { return do_map_async(L, "pool:map_async", TaskMode::map); }
int pool_starmap_async(lua_State* L) { return do_map_async(L, "pool:starmap_async", TaskMode::starmap); }

int finish_sync(lua_State* L) {
  lua_replace(L, 1);
  lua_settop(L, 1);
  return result_get(L);
}

int pool_map(lua_State* L) {
  lua_settop(L, 4);
  do_map_async(L, "pool:map", TaskMode::map);
  return finish_sync(L);
}

int pool_starmap(lua_State* L) {
  lua_settop(L, 4);
  do_map_async(L, "pool:starmap", TaskMode::starmap);
  return finish_sync(L);
}

// ---- imap iterators ----

int do_imap(lua_State* L, bool ordered) {
  const char* op = ordered ? "pool:imap" : "pool:imap_unordered";
  PoolHandle& h = check_pool(L, 1, op);
  check_task_function(L, 1, 2);
  lua_Integer n = check_list(L, 3);
  lua_settop(L, 4);
  lua_Integer size = check_chunksize(L, 4, n, h.pool->size(), 1);
  service(L, 1, h);
  auto* it = static_cast<IteratorHandle*>(lua_newuserdatauv(L, sizeof(IteratorHandle), 1));
  new (it) IteratorHandle{};
  luaL_setmetatable(L, kIteratorType);
  int iter = lua_gettop(L);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "pool");
  lua_newtable(L);
  lua_setfield(L, -2, "buffer");
  lua_setiuservalue(L, iter, 1);
  it->ordered = ordered;
  EncodingForAnotherProcess for_workers(!h.threads);
  auto fn = pool_function(L, 1, h, 2);
  std::vector<std::string> payloads;
  for (lua_Integer first = 1; first <= n; first += size) {
    lua_Integer last = first + size - 1 > n ? n : first + size - 1;
    payloads.push_back(encode_items(L, 3, first, last, 2, fn->id == 0));
    it->first_item.push_back(first);
  }
  it->job = queue_work(L, op, [&] { return h.pool->submit(std::move(fn), TaskMode::map, std::move(payloads), false, h.tag); });
  it->pool = h.pool;
  return 1;
}

int pool_imap(lua_State* L) { return do_imap(L, true); }
int pool_imap_unordered(lua_State* L) { return do_imap(L, false); }

// The next (value, position) of the iterator at 1, or nothing at the end.
int iterator_step(lua_State* L, const core::Deadline& deadline) {
  auto* it = static_cast<IteratorHandle*>(luaL_checkudata(L, 1, kIteratorType));
  lua_settop(L, 1);
  get_private(L, 1, "buffer");
  int buffer = 2;
  lua_getfield(L, buffer, "pos");
  lua_getfield(L, buffer, "count");
  lua_Integer pos = lua_tointeger(L, -2), count = lua_tointeger(L, -1);
  lua_pop(L, 2);
  if (pos < count) {
    lua_pushinteger(L, pos + 1);
    lua_setfield(L, buffer, "pos");
    lua_rawgeti(L, buffer, pos + 1);
    lua_getfield(L, buffer, "base");
    lua_Integer base = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushinteger(L, base + pos + 1);
    return 2;
  }
  if (it->next >= it->job->chunks()) return 0;
  const char* op = it->ordered ? "pool:imap" : "pool:imap_unordered";
  PoolHandle& h = push_owner_pool(L, 1, op);
  int pool_idx = lua_gettop(L);
  std::size_t chunk = 0;
  bool done = wait_serving(L, pool_idx, h, op, [&] {
    for (;;) {
      std::size_t seen = it->pool->arrivals(*it->job);
      if (it->ordered ? it->pool->has_outcome(*it->job, it->next) : seen > it->next)
        return WorkerPool::Wake::done;
      WorkerPool::Wake w = it->pool->wait_progress(*it->job, seen, deadline, h.tag);
      if (w != WorkerPool::Wake::done) return w;
    }
  });
  if (!done) raise_error(L, kTimeoutError, std::string(op) + ": timed out");
  chunk = it->ordered ? it->next : call_core(L, op, [&] { return it->pool->arrival(*it->job, it->next); });
  ++it->next;
  ChunkOutcome o = call_core(L, op, [&] { return it->pool->take(*it->job, chunk); });
  if (o.status != ChunkOutcome::Status::ok) {
    push_outcome_error(L, o);
    return lua_error(L);
  }
  lua_settop(L, buffer);
  int before = lua_gettop(L);
  int got = decode(L, o.payload);
  for (int k = got; k >= 1; --k) lua_rawseti(L, buffer, k);
  lua_settop(L, before);
  lua_pushinteger(L, got);
  lua_setfield(L, buffer, "count");
  lua_pushinteger(L, 0);
  lua_setfield(L, buffer, "pos");
  lua_pushinteger(L, it->first_item[chunk] - 1);
  lua_setfield(L, buffer, "base");
  return iterator_step(L, deadline);
}

int iterator_call(lua_State* L) { return iterator_step(L, core::Deadline::never()); }

int iterator_next(lua_State* L) {
  auto deadline = check_deadline(L, 2);
  return iterator_step(L, deadline);
}

int iterator_gc(lua_State* L) {
  static_cast<IteratorHandle*>(luaL_checkudata(L, 1, kIteratorType))->~IteratorHandle();
  return 0;
}

// ---- the pool ----

int pool_close(lua_State* L) {
  PoolHandle& h = check_pool(L, 1, "pool:close");
  h.pool->close();
  service(L, 1, h);
  return 0;
}

int pool_terminate(lua_State* L) {
  PoolHandle& h = check_pool(L, 1, "pool:terminate");
  h.pool->terminate();
  service(L, 1, h);
  return 0;
}

int pool_join(lua_State* L) {
  PoolHandle& h = check_pool(L, 1, "pool:join");
  if (h.pool->running()) raise_error(L, kValueError, "pool:join: Pool is still running");
  wait_serving(L, 1, h, "pool:join", [&] { return h.pool->wait_finished(core::Deadline::never(), h.tag); });
  call_core(L, "pool:join", [&] { h.pool->join(core::Deadline::never()); });
  service(L, 1, h);
  return 0;
}

// __close: as Python's __exit__, terminate (any handle); never raises. A copy
// of the pool in a fork child is left alone (its workers are the parent's).
int pool_gc(lua_State* L) {
  auto* h = static_cast<PoolHandle*>(luaL_checkudata(L, 1, kPoolType));
  if (h->pool && h->owner == ::getpid()) h->pool->terminate();
  return 0;
}

int pool_finalize(lua_State* L) {
  auto* h = static_cast<PoolHandle*>(luaL_checkudata(L, 1, kPoolType));
  // A fork child's copy may hold locks copied mid-use: it is leaked, never touched.
  if (h->owner != ::getpid()) return 0;
  if (h->pool) {
    // Another thread's handle going away leaves the pool to its maker; the
    // callbacks of what it submitted will never run.
    if (h->tag == 0) h->pool->terminate();
    else h->pool->take_callback_jobs(h->tag);
  }
  h->~PoolHandle();
  return 0;
}

int pool_tostring(lua_State* L) {
  auto* h = static_cast<PoolHandle*>(luaL_checkudata(L, 1, kPoolType));
  const char* state = "TERMINATE";
  if (h->owner == ::getpid() && h->pool) state = h->pool->running() ? "RUN" : (h->pool->finished() ? "TERMINATE" : "CLOSE");
  lua_pushfstring(L, "<%s state=%s pool_size=%d>", h->threads ? "ThreadPool" : "Pool", state,
                  h->pool ? static_cast<int>(h->pool->size()) : 0);
  return 1;
}

int pool_index(lua_State* L) {
  auto* h = static_cast<PoolHandle*>(luaL_checkudata(L, 1, kPoolType));
  const char* key = lua_tostring(L, 2);
  if (key && lua_type(L, 2) == LUA_TSTRING) {
    if (luaL_getmetafield(L, 1, "__methods")) {
      if (lua_getfield(L, -1, key) != LUA_TNIL) return 1;
      lua_pop(L, 2);
    }
    if (std::strcmp(key, "processes") == 0) {
      lua_pushinteger(L, h->pool ? static_cast<lua_Integer>(h->pool->size()) : 0);
      return 1;
    }
    if (std::strcmp(key, "pids") == 0 && h->owner == ::getpid() && h->pool) {
      auto pids = h->pool->worker_pids();
      lua_createtable(L, static_cast<int>(pids.size()), 0);
      for (std::size_t i = 0; i < pids.size(); ++i) {
        lua_pushinteger(L, pids[i]);
        lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
      }
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

// Pushes a new handle of `pool` (set later by the caller when null) with its
// private table: functions (weak keys, so a collected function releases its
// message), callables (their carrying functions, weak keys), pending results.
PoolHandle* push_pool_handle(lua_State* L, std::shared_ptr<WorkerPool> pool, bool threads, std::uint64_t tag) {
  auto* h = static_cast<PoolHandle*>(lua_newuserdatauv(L, sizeof(PoolHandle), 1));
  new (h) PoolHandle{};
  h->pool = std::move(pool);
  h->owner = ::getpid();
  h->threads = threads;
  h->tag = tag;
  luaL_setmetatable(L, kPoolType);
  lua_createtable(L, 0, 5);
  for (const char* weak : {"functions", "callables"}) {
    push_weak_table(L, "k");
    lua_setfield(L, -2, weak);
  }
  lua_newtable(L);
  lua_setfield(L, -2, "pending");
  lua_setiuservalue(L, -2, 1);
  return h;
}

// ---- pools travel by reference between threads of one process ----

void pool_write_ref(lua_State* L, int idx, std::string& out) {
  PoolHandle& h = check_pool(L, idx, "pool");
  if (!h.pool) luaL_error(L, "pool: the pool was collected");
  write_shared_ref(out, h.pool);
}

// A received pool: a handle of this state's own (a tag of its own, no start kits).
void pool_push_ref(lua_State* L, std::string_view ref) {
  auto pool = take_shared_ref<WorkerPool>(L, ref, kPoolType);
  bool threads = pool->kind() == WorkerPool::Kind::threads;
  push_pool_handle(L, std::move(pool), threads, g_next_tag.fetch_add(1) + 1);
}

// Pool([processes] | {processes=, initializer=, initargs=, maxtasksperchild=})
int make_pool(lua_State* L, bool threads) {
  const char* op = threads ? "pool.ThreadPool" : "pool.Pool";
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  lua_Integer workers = cpus > 0 ? cpus : 1;
  lua_Integer max_tasks = 0;
  lua_settop(L, 1);
  lua_pushnil(L);  // 2: initializer
  lua_pushnil(L);  // 3: initargs
  if (lua_istable(L, 1)) {
    check_option_names(L, 1, 1, {"processes", "initializer", "initargs", "maxtasksperchild"});
    if (lua_getfield(L, 1, "processes") != LUA_TNIL) {
      if (!lua_isinteger(L, -1)) luaL_argerror(L, 1, "processes must be an integer");
      workers = lua_tointeger(L, -1);
    }
    lua_getfield(L, 1, "initializer");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1) && !luaL_getmetafield(L, -1, "__call"))
      luaL_argerror(L, 1, "initializer must be a function");
    lua_settop(L, 5);
    lua_replace(L, 2);
    if (lua_getfield(L, 1, "initargs") != LUA_TNIL && !lua_istable(L, -1))
      luaL_argerror(L, 1, "initargs must be a table");
    lua_replace(L, 3);
    if (lua_getfield(L, 1, "maxtasksperchild") != LUA_TNIL) {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
        luaL_argerror(L, 1, "maxtasksperchild must be a positive integer or nil");
      max_tasks = lua_tointeger(L, -1);
    }
    lua_settop(L, 3);
  } else if (!lua_isnil(L, 1)) {
    workers = luaL_checkinteger(L, 1);
  }
  luaL_argcheck(L, workers >= 1, 1, "Number of processes must be at least 1");
  luaL_argcheck(L, workers <= 4096, 1, "Number of processes must be at most 4096");

  PoolHandle* h = push_pool_handle(L, nullptr, threads, 0);
  int pool_idx = lua_gettop(L);
  if (!lua_isnil(L, 2)) check_task_function(L, pool_idx, 2);
  lua_pushvalue(L, 2);
  set_private(L, pool_idx, "initializer");
  lua_pushvalue(L, 3);
  set_private(L, pool_idx, "initargs");
  bool reusable = false;
  std::vector<std::string> kits;
  {
    // Worker processes: a value only this process can use is refused here, with its path.
    EncodingForAnotherProcess for_workers(!threads);
    kits.push_back(make_kit(L, pool_idx, &reusable));
    if (!reusable)
      for (lua_Integer i = 1; i < workers; ++i) kits.push_back(make_kit(L, pool_idx, nullptr));
  }
  WorkerPool::Options options;
  options.kind = threads ? WorkerPool::Kind::threads : WorkerPool::Kind::processes;
  options.workers = static_cast<std::size_t>(workers);
  options.max_tasks = static_cast<std::uint64_t>(max_tasks);
  std::uint64_t limit = options.max_tasks;
  options.main = [limit, threads](int in_fd, int out_fd, std::string kit) {
    return pool_worker::run(in_fd, out_fd, std::move(kit), limit, !threads);
  };
  options.discard = &discard;
  options.interrupt_signal = threads ? pool_worker::interrupt_signal() : 0;
  if (!threads) options.before_fork = &prepare_pool_worker;
  h->pool = call_core(L, op, [&] {
    return std::make_shared<WorkerPool>(std::move(options), std::move(kits), reusable);
  });
  return 1;
}

int pool_new(lua_State* L) { return make_pool(L, false); }
int thread_pool_new(lua_State* L) { return make_pool(L, true); }

int function_gc(lua_State* L) {
  static_cast<FunctionRef*>(luaL_checkudata(L, 1, kFunctionType))->~FunctionRef();
  return 0;
}

constexpr luaL_Reg kPoolMethods[] = {
    {"apply", pool_apply},
    {"apply_async", pool_apply_async},
    {"map", pool_map},
    {"map_async", pool_map_async},
    {"imap", pool_imap},
    {"imap_unordered", pool_imap_unordered},
    {"starmap", pool_starmap},
    {"starmap_async", pool_starmap_async},
    {"close", pool_close},
    {"join", pool_join},
    {"terminate", pool_terminate},
    {nullptr, nullptr},
};

constexpr luaL_Reg kPoolMeta[] = {
    {"__index", pool_index},
    {"__gc", pool_finalize},
    {"__close", pool_gc},
    {"__tostring", pool_tostring},
    {nullptr, nullptr},
};

constexpr luaL_Reg kResultMethods[] = {
    {"get", result_get},
    {"wait", result_wait},
    {"ready", result_ready},
    {"successful", result_successful},
    {nullptr, nullptr},
};

constexpr luaL_Reg kIteratorMethods[] = {
    {"next", iterator_next},
    {nullptr, nullptr},
};

constexpr luaL_Reg kFunctions[] = {
    {"Pool", pool_new},
    {"ThreadPool", thread_pool_new},
    {nullptr, nullptr},
};

void new_class(lua_State* L, const char* name, const luaL_Reg* methods, lua_CFunction gc) {
  if (luaL_newmetatable(L, name)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
}

}  // namespace
}  // namespace plua::lua

int luaopen_plua_pool(lua_State* L) {
  using namespace plua::lua;
  if (luaL_newmetatable(L, kPoolType)) {
    luaL_setfuncs(L, kPoolMeta, 0);
    luaL_newlib(L, kPoolMethods);
    lua_setfield(L, -2, "__methods");
  }
  lua_pop(L, 1);
  new_class(L, kResultType, kResultMethods, result_gc);
  lua_pushcfunction(L, result_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  new_class(L, kIteratorType, kIteratorMethods, iterator_gc);
  lua_pushcfunction(L, iterator_call);
  lua_setfield(L, -2, "__call");
  lua_pop(L, 1);
  if (luaL_newmetatable(L, kFunctionType)) {
    lua_pushcfunction(L, function_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  register_sendable_class(SendableClass{"pool", kPoolType, pool_write_ref, pool_push_ref,
                                        drop_shared_ref<WorkerPool>, true});
  luaL_newlib(L, kFunctions);
  for (const char* kind : {kTimeoutError, kWorkerLostError, kRemoteError, kValueError}) {
    lua_pushstring(L, kind);
    lua_setfield(L, -2, kind);
  }
  return 1;
}
