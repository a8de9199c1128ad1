#include "plua/lua/script_control.hpp"

#include <map>
#include <utility>

#include "plua/lua/errors.hpp"
#include "plua/lua/metered_alloc.hpp"

namespace plua::lua {
namespace {

std::mutex g_registry_mu;
std::int64_t g_next_id = 1;                                       // guarded by g_registry_mu
std::map<std::int64_t, std::shared_ptr<ScriptControl>> g_registry;  // guarded by g_registry_mu

// The count hook: runs on the state's own thread, so it may raise.
void stop_hook(lua_State* L, lua_Debug*) {
  if (core::this_thread_stop_flag().requested()) raise_interrupted(L);
}

}  // namespace

void ScriptControl::interrupt() noexcept {
  std::lock_guard lock(mu_);
  if (running_) {
    running_->request();
    delivered_ = true;
  } else if (keep_early_) {
    pending_ = true;
  }
}

std::int64_t ScriptControl::add(std::shared_ptr<ScriptControl> control) {
  std::lock_guard lock(g_registry_mu);
  std::int64_t id = g_next_id++;
  g_registry.emplace(id, std::move(control));
  return id;
}

std::shared_ptr<ScriptControl> ScriptControl::take(std::int64_t id) {
  std::lock_guard lock(g_registry_mu);
  auto it = g_registry.find(id);
  if (it == g_registry.end()) return nullptr;
  std::shared_ptr<ScriptControl> control = std::move(it->second);
  g_registry.erase(it);
  return control;
}

void ScriptControl::forget(std::int64_t id) noexcept {
  std::shared_ptr<ScriptControl> gone;
  std::lock_guard lock(g_registry_mu);
  if (auto it = g_registry.find(id); it != g_registry.end()) {
    gone = std::move(it->second);
    g_registry.erase(it);
  }
}

struct ScriptRun::Meter {
  MeteredAllocator allocator;
  explicit Meter(std::shared_ptr<core::MemoryBudget> budget) : allocator(std::move(budget)) {}
};

ScriptRun::ScriptRun(lua_State* L, ScriptControl& control, bool hook, bool meter) : L_(L), control_(control) {
  if (meter && control.budget()) {
    meter_ = std::make_unique<Meter>(control.budget());
    meter_->allocator.attach(L);
  }
  if (hook && lua_gethook(L) == nullptr) {
    lua_sethook(L, stop_hook, LUA_MASKCOUNT, kHookInstructions);
    hooked_ = true;
  }
  core::StopFlag& flag = core::this_thread_stop_flag();
  std::lock_guard lock(control.mu_);
  outer_ = control.running_;
  control.running_ = &flag;
  if (!outer_) control.delivered_ = false;
  if (control.pending_) {
    control.pending_ = false;
    control.delivered_ = true;
    flag.request();
  }
}

ScriptRun::~ScriptRun() {
  bool delivered = false;
  {
    std::lock_guard lock(control_.mu_);
    control_.running_ = outer_;
    if (!outer_) delivered = std::exchange(control_.delivered_, false);
  }
  // An interrupt that came as the code ended must not hit what this thread runs next.
  if (delivered) core::this_thread_stop_flag().clear();
  if (hooked_ && lua_gethook(L_) == stop_hook) lua_sethook(L_, nullptr, 0, 0);
  if (meter_) meter_->allocator.detach();
}

}  // namespace plua::lua
