// The spawn start method: a fresh plua process (/proc/self/exe) that gets its
// target, args and the globals snapshot as codec messages in a memfd, and the
// descriptors of the Pipe connections among them, nothing else.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "plua/core/owned_fd.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/process.hpp"
#include "process_spawn.hpp"

extern char** environ;

namespace plua::lua {
namespace {

constexpr std::string_view kMagic = "plua-spawn-1";
// The start message is descriptor 3 in the child; passed descriptors follow.
constexpr int kMessageFd = 3;
constexpr int kFirstPassedFd = 4;

// Descriptors being collected for the spawn message encoded on this thread.
thread_local std::vector<int>* t_collecting = nullptr;

// In a spawned child: (parent pid, parent fd) -> local fd, not yet taken.
std::mutex g_inherited_mu;
std::map<std::pair<int, int>, int> g_inherited;  // guarded by g_inherited_mu

void append_section(std::string& out, std::string_view section) {
  std::uint64_t n = section.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out.append(section);
}

bool read_section(std::string_view& in, std::string_view& section) {
  std::uint64_t n = 0;
  if (in.size() < sizeof n) return false;
  std::memcpy(&n, in.data(), sizeof n);
  in.remove_prefix(sizeof n);
  if (n > in.size()) return false;
  section = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "write");
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string read_all(int fd) {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "read");
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
  }
}

// RAII for posix_spawn's two option objects.
struct SpawnOptions {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnOptions() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnOptions() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

bool spawn_pass_fd(int fd) {
  if (t_collecting == nullptr) return false;
  if (std::find(t_collecting->begin(), t_collecting->end(), fd) == t_collecting->end())
    t_collecting->push_back(fd);
  return true;
}

bool spawn_collecting_fds() { return t_collecting != nullptr; }

int spawn_take_inherited_fd(int pid, int fd) {
  std::lock_guard lock(g_inherited_mu);
  auto it = g_inherited.find({pid, fd});
  if (it == g_inherited.end()) return -1;
  int local = it->second;
  g_inherited.erase(it);
  return local;
}

std::shared_ptr<core::ChildProcess> spawn_process(lua_State* L, int handle_idx,
                                                  const std::string& name,
                                                  const std::vector<int>& identity, bool daemon) {
  // Body first: encoding it collects the descriptors the child must inherit.
  std::vector<int> passed;
  std::string body;
  {
    lua_getiuservalue(L, handle_idx, 1);
    lua_getfield(L, -1, "target");
    lua_getfield(L, -2, "args");
    int first = lua_gettop(L) - 1;
    struct Collect {
      explicit Collect(std::vector<int>* v) { t_collecting = v; }
      ~Collect() { t_collecting = nullptr; }
    } collect(&passed);
    EncodingForAnotherProcess for_child;
    body = encode(L, first, 2, "process");
    lua_pop(L, 3);
  }
  std::string globals = [&] {
    EncodingForAnotherProcess for_child;
    return encode_globals(L);
  }();

  // Header: plain data about the child and its parent.
  int top = lua_gettop(L);
  lua_pushlstring(L, name.data(), name.size());
  lua_createtable(L, static_cast<int>(identity.size()), 0);
  for (size_t i = 0; i < identity.size(); ++i) {
    lua_pushinteger(L, identity[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_pushboolean(L, daemon);
  lua_pushinteger(L, ::getpid());
  std::string parent_name = current_process_name();
  lua_pushlstring(L, parent_name.data(), parent_name.size());
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "cpath");
    lua_remove(L, -3);
  } else {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_pushnil(L);
  }
  lua_createtable(L, static_cast<int>(passed.size() * 2), 0);
  for (size_t i = 0; i < passed.size(); ++i) {
    lua_pushinteger(L, ::getpid());
    lua_rawseti(L, -2, static_cast<lua_Integer>(2 * i + 1));
    lua_pushinteger(L, passed[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(2 * i + 2));
  }
  std::string header = encode(L, top + 1, lua_gettop(L) - top, "spawn");
  lua_settop(L, top);

  std::string message(kMagic);
  append_section(message, header);
  append_section(message, globals);
  append_section(message, body);

  return call_core(L, "process:start", [&] {
    core::OwnedFd memfd(::memfd_create("plua-spawn", MFD_CLOEXEC));
    if (!memfd) throw std::system_error(errno, std::generic_category(), "memfd_create");
    write_all(memfd.get(), message);
    // Sources above every target number, so no dup2 overwrites a later source.
    int lowest = kFirstPassedFd + static_cast<int>(passed.size());
    std::vector<core::OwnedFd> sources;
    sources.push_back(core::duplicate_fd(memfd.get(), lowest));
    for (int fd : passed) sources.push_back(core::duplicate_fd(fd, lowest));
    SpawnOptions opts;
    for (size_t i = 0; i < sources.size(); ++i)
      posix_spawn_file_actions_adddup2(&opts.actions, sources[i].get(), kMessageFd + static_cast<int>(i));
    // As Python's spawn: the child gets these and stdio, nothing else it may have inherited.
    posix_spawn_file_actions_addclosefrom_np(&opts.actions, kMessageFd + static_cast<int>(sources.size()));
    // A forking thread may block signals; the child starts with none blocked.
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&opts.attr, &none);
    posix_spawnattr_setflags(&opts.attr, POSIX_SPAWN_SETSIGMASK);
    std::string fd_text = std::to_string(kMessageFd);
    char arg0[] = "plua";
    std::string option = kSpawnChildOption;
    char* argv[] = {arg0, option.data(), fd_text.data(), nullptr};
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, "/proc/self/exe", &opts.actions, &opts.attr, argv, environ);
    if (rc != 0) throw std::system_error(rc, std::generic_category(), "posix_spawn");
    return core::ChildProcess::adopt(pid);
  });
}

namespace {

// The parts of a start message, for setup_child.
struct StartMessage {
  std::string_view header, globals, body;
};

// In protected mode: applies the start message; leaves name, target, args.
int setup_child(lua_State* L) {
  auto* s = static_cast<StartMessage*>(lua_touserdata(L, 1));
  lua_settop(L, 0);
  int n = decode(L, s->header);
  if (n != 8) luaL_error(L, "malformed start message header");
  std::string name = luaL_checkstring(L, 1);
  std::vector<int> identity;
  for (lua_Integer i = 1, len = luaL_len(L, 2); i <= len; ++i) {
    lua_geti(L, 2, i);
    identity.push_back(static_cast<int>(lua_tointeger(L, -1)));
    lua_pop(L, 1);
  }
  bool daemon = lua_toboolean(L, 3);
  auto parent_pid = static_cast<pid_t>(luaL_checkinteger(L, 4));
  std::string parent_name = luaL_checkstring(L, 5);
  lua_getglobal(L, "package");
  if (lua_isstring(L, 6)) {
    lua_pushvalue(L, 6);
    lua_setfield(L, -2, "path");
  }
  if (lua_isstring(L, 7)) {
    lua_pushvalue(L, 7);
    lua_setfield(L, -2, "cpath");
  }
  lua_pop(L, 1);
  {
    std::lock_guard lock(g_inherited_mu);
    for (lua_Integer i = 1, len = luaL_len(L, 8); i + 1 <= len; i += 2) {
      lua_geti(L, 8, i);
      lua_geti(L, 8, i + 1);
      int local = kFirstPassedFd + static_cast<int>((i - 1) / 2);
      // Passed descriptors are this child's alone: not inherited further.
      ::fcntl(local, F_SETFD, FD_CLOEXEC);
      g_inherited[{static_cast<int>(lua_tointeger(L, -2)), static_cast<int>(lua_tointeger(L, -1))}] = local;
      lua_pop(L, 2);
    }
  }
  become_spawned(name, identity, daemon, parent_pid, parent_name);
  apply_globals(L, s->globals);
  lua_settop(L, 0);
  lua_pushstring(L, name.c_str());
  if (decode(L, s->body) != 2) luaL_error(L, "malformed start message body");
  return 3;
}

}  // namespace

int run_spawned_child(lua_State* L, const char* fd_text) {
  int fd = std::atoi(fd_text);
  std::string message;
  try {
    ::lseek(fd, 0, SEEK_SET);
    message = read_all(fd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "plua: spawned child: cannot read its start message: %s\n", e.what());
    return 1;
  }
  ::close(fd);
  std::string_view in(message);
  std::string_view header, globals, body;
  if (in.substr(0, kMagic.size()) != kMagic || (in.remove_prefix(kMagic.size()), false) ||
      !read_section(in, header) || !read_section(in, globals) || !read_section(in, body)) {
    std::fprintf(stderr, "plua: spawned child: malformed start message\n");
    return 1;
  }
  // Everything below runs in protected mode: a failure is the child's error.
  StartMessage setup{header, globals, body};
  lua_pushcfunction(L, setup_child);
  lua_pushlightuserdata(L, &setup);
  if (lua_pcall(L, 1, 3, 0) != LUA_OK) {
    std::fprintf(stderr, "plua: spawned child: %s\n", luaL_tolstring(L, -1, nullptr));
    return 1;
  }
  std::string name = lua_tostring(L, -3);
  lua_remove(L, -3);
  return run_target_on_stack(L, name);
}

}  // namespace plua::lua
