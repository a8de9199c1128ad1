// Control of Lua code an embedding application runs: interrupting it from
// any thread, and drawing its memory from the runtime's budget.
//
// A ScriptControl belongs to one runtime's own state or to one worker. While
// code runs under it, a ScriptRun on the running thread has registered that
// thread's stop flag (core::this_thread_stop_flag()), so interrupt() from any
// thread ends a blocking call with core::Interrupted; with the count hook on,
// running Lua code raises KeyboardInterrupt within kHookInstructions
// instructions too.
//
// Thread-safety: interrupt(), budget() and the registry functions may be
// called from any thread; a ScriptRun lives on the thread running the state.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "plua/core/cancel.hpp"
#include "plua/core/memory_budget.hpp"
#include "plua/lua/lua.hpp"

namespace plua::lua {

// Lua instructions between two looks at the stop flag by the count hook.
inline constexpr int kHookInstructions = 1000;

class ScriptControl {
 public:
  // keep_early: an interrupt that comes before anything runs is kept for
  // the first run (a worker asked to stop before its thread got going);
  // otherwise it is dropped (a runtime that is idle has nothing to stop).
  // hook_code: runs under it should stop running Lua code too (the count
  // hook), not only blocking calls; read by whoever starts the run.
  ScriptControl(std::shared_ptr<core::MemoryBudget> budget, bool keep_early, bool hook_code = true) noexcept
      : budget_(std::move(budget)), keep_early_(keep_early), hook_code_(hook_code) {}
  ScriptControl(const ScriptControl&) = delete;
  ScriptControl& operator=(const ScriptControl&) = delete;

  // Asks the code running under this control to stop (see above).
  void interrupt() noexcept;
  // The budget its states draw from, or null for no limit.
  const std::shared_ptr<core::MemoryBudget>& budget() const noexcept { return budget_; }
  bool hook_code() const noexcept { return hook_code_; }

  // Registry for passing a control to a worker's new state by number: add()
  // keeps it until take() hands it over (once).
  static std::int64_t add(std::shared_ptr<ScriptControl> control);
  static std::shared_ptr<ScriptControl> take(std::int64_t id);
  // Drops a control that will never be taken (a worker that failed to start).
  static void forget(std::int64_t id) noexcept;

 private:
  friend class ScriptRun;
  std::shared_ptr<core::MemoryBudget> budget_;
  const bool keep_early_;
  const bool hook_code_;
  std::mutex mu_;
  core::StopFlag* running_ = nullptr;  // guarded by mu_: the running thread's flag
  bool pending_ = false;               // guarded by mu_: an early interrupt (keep_early_)
  bool delivered_ = false;             // guarded by mu_: this run's flag was requested by us
};

// Code runs under a control while one of these lives on its thread.
class ScriptRun {
 public:
  // hook: also stop running Lua code (a count hook on L); meter: draw L's
  // allocations from the control's budget (if it has one) until the end.
  ScriptRun(lua_State* L, ScriptControl& control, bool hook, bool meter);
  ~ScriptRun();
  ScriptRun(const ScriptRun&) = delete;
  ScriptRun& operator=(const ScriptRun&) = delete;

 private:
  struct Meter;
  lua_State* L_;
  ScriptControl& control_;
  core::StopFlag* outer_ = nullptr;  // the run this one is nested in (a call from a binding)
  bool hooked_ = false;
  std::unique_ptr<Meter> meter_;
};

}  // namespace plua::lua
