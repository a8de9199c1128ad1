#include "plua/runtime.hpp"

#include <mutex>
#include <string>
#include <vector>

#include "embed_detail.hpp"
#include "plua/core/codec_format.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/interrupt.hpp"
#include "plua/lua/lua.hpp"
#include "plua/lua/metered_alloc.hpp"
#include "plua/lua/modules.hpp"
#include "plua/lua/script_control.hpp"
#include "worker_body.hpp"

namespace plua {

namespace detail {

// What a Runtime keeps besides its state.
struct RuntimeParts {
  std::shared_ptr<core::MemoryBudget> budget;        // null: no limit
  std::unique_ptr<lua::MeteredAllocator> allocator;  // the state's, while it is open
  std::shared_ptr<lua::ScriptControl> control;       // the state's own runs
  bool interruptible = false;
  std::mutex mu;
  std::vector<std::shared_ptr<WorkerBody>> workers;  // guarded by mu: those that may still run
};

}  // namespace detail

void open_modules(lua_State* L) { lua::preload_modules(L); }

void shutdown_modules(lua_State* L) { lua::run_shutdown_hooks(L); }

int traceback_handler(lua_State* L) {
  luaL_traceback(L, L, lua::push_error_text(L, 1), 1);
  return 1;
}

Outcome make_failure(std::string_view handled) {
  Outcome out;
  out.ok = false;
  constexpr std::string_view kMarker = "\nstack traceback:";
  auto at = handled.find(kMarker);
  if (at == std::string_view::npos) {
    out.message = std::string(handled);
  } else {
    out.message = std::string(handled.substr(0, at));
    out.traceback = std::string(handled.substr(at + 1));
  }
  return out;
}

Runtime::Runtime() : Runtime(Options{}) {}

Runtime::Runtime(const Options& options) {
  L_ = luaL_newstate();
  if (L_ == nullptr) throw std::runtime_error("plua: cannot create a Lua state (out of memory)");
  if (options.ignore_environment) {
    // The package library reads this registry flag, as lua.c's -E sets it.
    lua_pushboolean(L_, 1);
    lua_setfield(L_, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L_);
  open_modules(L_);
  lua::attach_this_thread(L_);
  parts_ = std::make_unique<detail::RuntimeParts>();
  parts_->interruptible = options.interruptible;
  if (options.memory_limit > 0) {
    // Counted from here: what the libraries took so far is counted, not refused.
    parts_->budget = std::make_shared<core::MemoryBudget>(options.memory_limit);
    parts_->allocator = std::make_unique<lua::MeteredAllocator>(parts_->budget);
    parts_->allocator->attach(L_);
  }
  parts_->control = std::make_shared<lua::ScriptControl>(parts_->budget, false);
}

Runtime::~Runtime() { close(); }

void Runtime::close() noexcept {
  if (L_ == nullptr) return;
  std::vector<std::shared_ptr<detail::WorkerBody>> workers;
  {
    std::lock_guard lock(parts_->mu);
    workers.swap(parts_->workers);
  }
  for (auto& w : workers) w->control->interrupt();
  for (auto& w : workers) {
    try {
      w->thread->join(core::Deadline::never());
    } catch (const core::Interrupted&) {
      break;  // the closing thread is asked to stop: leave the rest running
    }
  }
  lua::run_shutdown_hooks(L_);
  if (lua::attached_state() == L_) lua::detach_this_thread();
  lua_close(L_);
  L_ = nullptr;
}

Outcome Runtime::call(int nargs, int nresults) noexcept {
  lua::ScriptRun run(L_, *parts_->control, parts_->interruptible, false);
  int base = lua_gettop(L_) - nargs;
  lua_pushcfunction(L_, traceback_handler);
  lua_insert(L_, base);
  int status = lua_pcall(L_, nargs, nresults, base);
  lua_remove(L_, base);
  if (status == LUA_OK) return Outcome{};
  size_t len = 0;
  const char* text = lua_tolstring(L_, -1, &len);
  Outcome out = make_failure(text ? std::string_view(text, len) : std::string_view("?"));
  lua_pop(L_, 1);
  return out;
}

namespace {
Outcome load_failure(lua_State* L) {
  Outcome out;
  out.ok = false;
  const char* msg = lua_tostring(L, -1);
  out.message = msg ? msg : "(error object is not a string)";
  lua_pop(L, 1);
  return out;
}

void throw_if_failed(const Outcome& out) {
  if (!out.ok) throw Error(out.message, out.traceback);
}
}  // namespace

Outcome Runtime::try_run_file(const std::string& path) noexcept {
  if (luaL_loadfile(L_, path.c_str()) != LUA_OK) return load_failure(L_);
  return call(0, 0);
}

Outcome Runtime::try_run_string(std::string_view code, const std::string& chunkname) noexcept {
  if (luaL_loadbuffer(L_, code.data(), code.size(), chunkname.c_str()) != LUA_OK)
    return load_failure(L_);
  return call(0, 0);
}

void Runtime::run_file(const std::string& path) { throw_if_failed(try_run_file(path)); }

void Runtime::run_string(std::string_view code, const std::string& chunkname) {
  throw_if_failed(try_run_string(code, chunkname));
}

}  // namespace plua

namespace plua {

void Runtime::interrupt() noexcept { parts_->control->interrupt(); }

std::size_t Runtime::memory_used() const noexcept { return parts_->budget ? parts_->budget->used() : 0; }

namespace {

// Runs f(L) in the state under call(): f may raise Lua errors, and turns
// C++ failures into them itself (a C++ exception must not cross Lua).
template <class F>
Outcome protected_call(Runtime& rt, F& f) {
  lua_State* L = rt.state();
  lua_pushcfunction(L, [](lua_State* S) -> int {
    F& fn = *static_cast<F*>(lua_touserdata(S, 1));
    lua_settop(S, 0);
    fn(S);
    return 0;
  });
  lua_pushlightuserdata(L, &f);
  return rt.call(1, 0);
}

// Throws the failure of a protected call (an interrupt with its kind).
void throw_failure(const Outcome& out) {
  if (out.ok) return;
  bool interrupted = out.message.rfind(std::string(lua::kKeyboardInterrupt) + ": ", 0) == 0;
  throw Error(out.message, out.traceback, interrupted ? lua::kKeyboardInterrupt : "");
}

}  // namespace

void Runtime::set_global(const std::string& name, const Value& value) {
  std::string message = detail::encode_message({value}, name.c_str());
  bool consumed = false;
  auto body = [&](lua_State* L) {
    consumed = true;  // decoding takes the references over, even when it fails midway
    lua::decode(L, message);
    lua_setglobal(L, name.c_str());
  };
  Outcome out = protected_call(*this, body);
  if (!consumed) detail::release_message(message);
  throw_failure(out);
}

Value Runtime::get_global(const std::string& name) {
  std::string message;
  auto body = [&](lua_State* L) {
    lua_getglobal(L, name.c_str());
    message = lua::encode(L, 1, 1, name.c_str());
  };
  throw_failure(protected_call(*this, body));
  return detail::decode_item(std::move(message), "runtime.get_global", name.c_str());
}

namespace {
enum How { kFunction, kChunk, kFile };
}

Worker Runtime::start_function(const std::string& global_name, const std::vector<Value>& args,
                               const WorkerOptions& options) {
  return start_worker(kFunction, global_name, {}, args, options);
}

Worker Runtime::start_chunk(std::string_view code, const std::vector<Value>& args, const std::string& chunkname,
                            const WorkerOptions& options) {
  return start_worker(kChunk, code, chunkname, args, options);
}

Worker Runtime::start_file(const std::string& path, const std::vector<Value>& args, const WorkerOptions& options) {
  return start_worker(kFile, path, {}, args, options);
}

Worker Runtime::start_worker(int how, std::string_view what, const std::string& chunkname,
                             const std::vector<Value>& args, const WorkerOptions& options) {
  std::string args_message = detail::encode_message(args, "args");
  auto control = std::make_shared<lua::ScriptControl>(parts_->budget, true, options.interruptible);
  std::int64_t id = lua::ScriptControl::add(control);
  bool consumed = false;
  std::shared_ptr<core::Thread> thread;
  const std::string target(what);
  auto body = [&](lua_State* L) {
    // thread.Thread{target = embed.run, args = {id, fn, args...}, name = ..., daemon = true}
    lua_getglobal(L, "require");
    lua_pushliteral(L, "thread");
    lua_call(L, 1, 1);  // 1: thread
    lua_getglobal(L, "require");
    lua_pushliteral(L, "plua.embed");
    lua_call(L, 1, 1);  // 2: embed
    lua_createtable(L, 0, 4);  // 3: options
    lua_getfield(L, 2, "run");
    lua_setfield(L, 3, "target");
    lua_pushboolean(L, 1);
    lua_setfield(L, 3, "daemon");
    if (!options.name.empty()) {
      lua_pushlstring(L, options.name.data(), options.name.size());
      lua_setfield(L, 3, "name");
    }
    lua_createtable(L, static_cast<int>(args.size()) + 2, 1);  // 4: args
    lua_pushinteger(L, id);
    lua_rawseti(L, 4, 1);
    if (how == kFunction) {
      if (lua_getglobal(L, target.c_str()) != LUA_TFUNCTION)
        luaL_error(L, "runtime.start_function: global '%s' is not a function (a %s)", target.c_str(),
                   luaL_typename(L, -1));
    } else {
      int status = how == kChunk ? luaL_loadbuffer(L, target.data(), target.size(), chunkname.c_str())
                                 : luaL_loadfile(L, target.c_str());
      if (status != LUA_OK) lua_error(L);
    }
    lua_rawseti(L, 4, 2);
    consumed = true;  // decoding takes the references over, even when it fails midway
    int base = lua_gettop(L);
    int n = lua::decode(L, args_message);
    for (int i = n; i >= 1; --i) lua_rawseti(L, 4, 2 + i);
    lua_settop(L, base);
    lua_pushinteger(L, 2 + n);
    lua_setfield(L, 4, "n");
    lua_pushvalue(L, 4);
    lua_setfield(L, 3, "args");
    lua_getfield(L, 1, "Thread");
    lua_pushvalue(L, 3);
    lua_call(L, 1, 1);  // 5: the Thread
    lua_getfield(L, 5, "start");
    lua_pushvalue(L, 5);
    lua_call(L, 1, 0);
    // Its core thread, through the codec's by-reference form of a Thread.
    std::string ref = lua::encode(L, 5, 1, "thread");
    std::string_view tname, object;
    bool parsed = lua::call_core(L, "runtime.start", [&] {
      core::codec::Reader r(ref);
      core::codec::read_header(r);
      if (r.u8() != core::codec::kObject) return false;
      r.str();
      tname = r.str();
      object = r.str();
      return true;
    });
    if (!parsed) luaL_error(L, "runtime.start: not a thread object");
    thread = lua::take_shared_ref<core::Thread>(L, object, std::string(tname).c_str());
  };
  Outcome out = protected_call(*this, body);
  if (!consumed) detail::release_message(args_message);
  if (!out.ok) {
    lua::ScriptControl::forget(id);
    throw_failure(out);
  }
  auto worker = std::make_shared<detail::WorkerBody>(std::move(thread), std::move(control));
  {
    std::lock_guard lock(parts_->mu);
    // Forget finished workers as new ones come, so the list stays short.
    std::erase_if(parts_->workers, [](const std::shared_ptr<detail::WorkerBody>& w) { return w->thread->finished(); });
    parts_->workers.push_back(worker);
  }
  return detail::WorkerBody::wrap(std::move(worker));
}

}  // namespace plua
