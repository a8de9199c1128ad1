#include "plua/lua/codec.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <typeinfo>
#include <unordered_map>

#include <pthread.h>

#include "plua/core/codec_format.hpp"
#include "plua/core/shared_arena.hpp"
#include "plua/lua/modules.hpp"
#include "plua/lua/weak_table.hpp"

namespace plua::lua {

namespace fmt = plua::core::codec;
static_assert(kMaxDepth == fmt::kMaxDepth, "one depth limit on both sides");

// ---------------------------------------------------------------------------
// Class registry (process-global). Append-only and lock-free, so that a fork
// child never inherits it locked and readers never wait.

namespace {

constexpr int kMaxClasses = 256;
std::atomic<const SendableClass*> g_classes[kMaxClasses];
std::atomic<int> g_class_count{0};

}  // namespace

namespace {
thread_local bool t_for_another_process = false;
}  // namespace

EncodingForAnotherProcess::EncodingForAnotherProcess(bool active) noexcept : previous_(t_for_another_process) {
  if (active) t_for_another_process = true;
}
EncodingForAnotherProcess::~EncodingForAnotherProcess() { t_for_another_process = previous_; }

void register_sendable_class(const SendableClass& cls) {
  // Two first registrations racing may both append: harmless, lookups take the first.
  if (find_sendable_class(cls.tname)) return;
  int slot = g_class_count.fetch_add(1, std::memory_order_acq_rel);
  if (slot >= kMaxClasses) {
    std::fprintf(stderr, "plua: too many codec classes (registering %s)\n", cls.tname);
    std::abort();
  }
  // Never freed: classes stay registered until the process exits.
  g_classes[slot].store(new SendableClass(cls), std::memory_order_release);
}

const SendableClass* find_sendable_class(std::string_view tname) {
  int n = std::min(g_class_count.load(std::memory_order_acquire), kMaxClasses);
  for (int i = 0; i < n; ++i) {
    const SendableClass* c = g_classes[i].load(std::memory_order_acquire);
    if (c && tname == c->tname) return c;
  }
  return nullptr;
}

namespace detail {

namespace {

// The copies in flight (address -> type). Held across fork (a leaf lock), so
// a fork child's list is whole; the parent's entries stay in it, unused (their
// pid is not the child's), and keep those copies reachable.
struct InFlight {
  std::mutex mu;
  std::unordered_map<void*, const std::type_info*> copies;  // guarded by mu
};
InFlight& in_flight() {
  static InFlight* f = [] {
    auto* made = new InFlight;  // never destroyed: threads may send until exit
    ::pthread_atfork([] { in_flight().mu.lock(); }, [] { in_flight().mu.unlock(); },
                     [] { in_flight().mu.unlock(); });
    return made;
  }();
  return *f;
}

}  // namespace

void add_shared_ref(void* copy, const std::type_info& type) {
  InFlight& f = in_flight();
  std::lock_guard lock(f.mu);
  f.copies.emplace(copy, &type);
}

void* parse_shared_ref(std::string_view ref, bool* other_process, const std::type_info& type) noexcept {
  *other_process = false;
  if (ref.size() != kSharedRefSize) return nullptr;
  std::int32_t pid;
  void* p;
  std::memcpy(&pid, ref.data(), sizeof pid);
  std::memcpy(&p, ref.data() + sizeof pid, sizeof p);
  if (pid != static_cast<std::int32_t>(::getpid())) {
    *other_process = true;
    return nullptr;
  }
  InFlight& f = in_flight();
  std::lock_guard lock(f.mu);
  auto it = f.copies.find(p);
  if (it == f.copies.end() || *it->second != type) return nullptr;
  f.copies.erase(it);
  return p;
}

void* peek_shared_ref(std::string_view ref, const std::type_info& type) noexcept {
  if (ref.size() != kSharedRefSize) return nullptr;
  std::int32_t pid;
  void* p;
  std::memcpy(&pid, ref.data(), sizeof pid);
  std::memcpy(&p, ref.data() + sizeof pid, sizeof p);
  if (pid != static_cast<std::int32_t>(::getpid())) return nullptr;
  InFlight& f = in_flight();
  std::lock_guard lock(f.mu);
  auto it = f.copies.find(p);
  return it == f.copies.end() || *it->second != type ? nullptr : p;
}

void raise_bad_shared_ref(lua_State* L, const char* tname, bool other_process) {
  if (other_process) luaL_error(L, "a %s cannot cross to another process", tname);
  luaL_error(L, "codec: malformed message (bad %s reference)", tname);
  throw;  // unreachable
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Identity cache: object address -> this state's userdata for it (weak values).

namespace {
char kObjectsKey;

void push_objects(lua_State* L) {
  luaL_checkstack(L, 6, "codec");
  push_registry_weak_table(L, &kObjectsKey, "v");
}

// True if the value at idx is a live userdata of cls standing for id.
bool is_live(lua_State* L, int idx, const SendableClass* cls, const void* id) {
  return cls && cls->identity && luaL_testudata(L, idx, cls->tname) && cls->identity(L, idx) == id;
}

// The registered class of the userdata at idx, or nullptr.
const SendableClass* class_of(lua_State* L, int idx) {
  const SendableClass* cls = nullptr;
  if (lua_type(L, idx) == LUA_TUSERDATA && luaL_getmetafield(L, idx, "__name") != LUA_TNIL) {
    if (const char* name = lua_tostring(L, -1)) cls = find_sendable_class(name);
    lua_pop(L, 1);
  }
  return cls;
}
}  // namespace

bool push_known_object(lua_State* L, const char* tname, const void* id) {
  if (!id) return false;
  push_objects(L);
  lua_rawgetp(L, -1, id);
  if (is_live(L, -1, find_sendable_class(tname), id)) {
    lua_remove(L, -2);
    return true;
  }
  lua_pop(L, 2);
  return false;
}

void remember_object(lua_State* L, int idx, const void* id) {
  if (!id) return;
  idx = lua_absindex(L, idx);
  const SendableClass* cls = class_of(L, idx);
  if (!cls || !cls->identity) return;
  push_objects(L);
  lua_rawgetp(L, -1, id);
  bool known = is_live(L, -1, class_of(L, -1), id);
  lua_pop(L, 1);
  if (!known) {
    lua_pushvalue(L, idx);
    lua_rawsetp(L, -2, id);
  }
  lua_pop(L, 1);
}

const void* arena_ref_identity(std::string_view ref) noexcept {
  core::SharedRefData d;
  if (ref.size() < sizeof d) return nullptr;
  std::memcpy(&d, ref.data(), sizeof d);
  try {
    return core::shared_arena::resolve(d);
  } catch (const std::exception&) {
    return nullptr;  // not a block of this process's arenas
  }
}

void discard(std::string_view message) noexcept {
  try {
    fmt::visit_objects(
        message,
        [](void*, std::string_view, std::string_view tname, std::string_view ref) {
          const SendableClass* cls = find_sendable_class(tname);
          if (cls && cls->drop_ref) cls->drop_ref(ref);
        },
        nullptr);
  } catch (const std::exception&) {
    // Malformed: what could be released before the fault has been.
  }
}

// ---------------------------------------------------------------------------
// Names of module tables and module C functions, cached per state.

namespace {

// What a fresh plua state has in _G: C functions by name, module tables by
// global name (-> module name).
// Looked up by string_view, so checking a global allocates nothing.
struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
struct FreshGlobals {
  std::unordered_map<std::string, lua_CFunction, NameHash, std::equal_to<>> functions;
  std::unordered_map<std::string, std::string, NameHash, std::equal_to<>> modules;
};

const FreshGlobals& fresh_globals() {
  static const FreshGlobals* fresh = [] {
    auto* g = new FreshGlobals;  // never destroyed: read by any thread until exit
    lua_State* L = luaL_newstate();
    if (!L) return g;
    luaL_openlibs(L);
    preload_modules(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    lua_pushglobaltable(L);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        std::string name = lua_tostring(L, -2);
        if (lua_iscfunction(L, -1)) {
          g->functions[name] = lua_tocfunction(L, -1);
        } else if (lua_istable(L, -1)) {
          lua_pushnil(L);
          while (lua_next(L, loaded)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, -3)) g->modules[name] = lua_tostring(L, -2);
            lua_pop(L, 1);
          }
        }
      }
      lua_pop(L, 1);
    }
    lua_close(L);
    return g;
  }();
  return *fresh;
}


// Registry keys (their addresses are unique).
char kNamesKey;       // the cache: module table -> name, C function -> "module\0field"
char kLoadedMetaKey;  // our metatable on package.loaded, which drops the cache on a new module

// package.loaded's __newindex: a new module was stored, so the cache is stale.
int loaded_newindex(lua_State* L) {
  lua_settop(L, 3);
  lua_rawset(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kNamesKey);
  return 0;
}

// Records the C functions that are fields of module table at -1 under `name`.
void index_module_functions(lua_State* L, int cache, const char* name, bool is_globals) {
  int t = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1)) {
      // Prefer a real module over _G, whose fields the script may have added to.
      lua_pushvalue(L, -1);
      bool known = lua_rawget(L, cache) != LUA_TNIL;
      lua_pop(L, 1);
      if (!known || !is_globals) {
        lua_pushvalue(L, -1);
        lua_pushfstring(L, "%s%c%s", name, 0, lua_tostring(L, -3));
        lua_rawset(L, cache);
      }
    }
    lua_pop(L, 1);
  }
}

// Pushes a fresh names cache built from package.loaded.
void build_names(lua_State* L) {
  // Weak keys: a module dropped from package.loaded is not kept alive by the cache.
  push_weak_table(L, "k");
  int cache = lua_gettop(L);
  // The standard globals under their standard names, which every destination has.
  for (const auto& [name, fn] : fresh_globals().functions) {
    lua_pushcfunction(L, fn);
    lua_pushfstring(L, "_G%c%s", 0, name.c_str());
    lua_rawset(L, cache);
  }
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  int loaded = lua_gettop(L);
  // Modules other than _G first, so that print is found as _G's only if no module has it.
  for (int pass = 0; pass < 2; ++pass) {
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
      if (lua_type(L, -2) == LUA_TSTRING) {
        const char* name = lua_tostring(L, -2);
        bool is_globals = std::strcmp(name, "_G") == 0;
        if (is_globals == (pass == 1)) {
          if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, cache) == LUA_TNIL) {
              lua_pushvalue(L, -2);
              lua_pushstring(L, name);
              lua_rawset(L, cache);
            }
            lua_pop(L, 1);
            index_module_functions(L, cache, name, is_globals);
          } else if (lua_iscfunction(L, -1)) {
            lua_pushvalue(L, -1);
            lua_pushfstring(L, "%s%c", name, 0);
            lua_rawset(L, cache);
          }
        }
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

// Pushes the names cache of L, building (and keeping) it if needed.
void push_names(lua_State* L) {
  luaL_checkstack(L, 8, "codec");
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kNamesKey) == LUA_TTABLE) return;
  lua_pop(L, 1);
  build_names(L);
  // Keep it only if we will hear of new modules: our __newindex on package.loaded.
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  bool ours = false;
  if (!lua_getmetatable(L, -1)) {
    lua_newtable(L);
    lua_pushcfunction(L, loaded_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kLoadedMetaKey);
    lua_setmetatable(L, -2);
    ours = true;
  } else {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kLoadedMetaKey);
    ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  if (ours) {
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kNamesKey);
  }
}

// Pushes package.loaded[name], requiring it if it is not loaded yet.
void push_module(lua_State* L, std::string_view name) {
  luaL_checkstack(L, 4, "codec");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushlstring(L, name.data(), name.size());
  if (lua_rawget(L, -2) != LUA_TNIL) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 2);
  lua_getglobal(L, "require");
  if (!lua_isfunction(L, -1)) luaL_error(L, "codec: cannot load module '%s' (no require)", std::string(name).c_str());
  lua_pushlstring(L, name.data(), name.size());
  lua_call(L, 1, 1);
}

// ---------------------------------------------------------------------------
// Encoding.

bool is_identifier(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

// How a key shows in a path: .name for identifiers, [repr] otherwise.
std::string key_segment(lua_State* L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(L, idx, &len);
      std::string_view key(s, len);
      if (is_identifier(key)) return "." + std::string(key);
      std::string out = "[\"";
      size_t shown = 0;
      for (unsigned char c : key) {
        if (++shown > 40) {
          out += "...";
          break;
        }
        if (c == '"' || c == '\\') {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c < 32 || c >= 127) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\%u", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
      }
      return out + "\"]";
    }
    case LUA_TNUMBER: {
      char buf[64];
      if (lua_isinteger(L, idx))
        std::snprintf(buf, sizeof buf, "[%lld]", static_cast<long long>(lua_tointeger(L, idx)));
      else
        std::snprintf(buf, sizeof buf, "[%.14g]", static_cast<double>(lua_tonumber(L, idx)));
      return buf;
    }
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) ? "[true]" : "[false]";
    default:
      return std::string("[<") + luaL_typename(L, idx) + ">]";
  }
}

std::string index_segment(lua_Integer i) { return "[" + std::to_string(i) + "]"; }

int write_dump(lua_State*, const void* p, size_t size, void* ud) {
  static_cast<std::string*>(ud)->append(static_cast<const char*>(p), size);
  return 0;
}

bool is_scalar(int type) {
  return type == LUA_TNIL || type == LUA_TBOOLEAN || type == LUA_TNUMBER || type == LUA_TSTRING;
}

// Writes a nil, boolean, number or string.
inline void write_scalar(lua_State* L, fmt::Writer& w, int idx, int type) {
  switch (type) {
    case LUA_TNIL:
      w.u8(fmt::kNil);
      break;
    case LUA_TBOOLEAN:
      w.u8(lua_toboolean(L, idx) ? fmt::kTrue : fmt::kFalse);
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        w.u8(fmt::kInt);
        w.i64(lua_tointeger(L, idx));
      } else {
        w.u8(fmt::kFloat);
        w.f64(lua_tonumber(L, idx));
      }
      break;
    default: {
      size_t len = 0;
      const char* s = lua_tolstring(L, idx, &len);
      w.u8(fmt::kString);
      w.str(std::string_view(s, len));
    }
  }
}

// Maps object pointers to message ids: a linear search in an inline array
// while small (the usual message, with no allocation), a hash map once it grows.
class SeenObjects {
 public:
  // The id of p, or -1.
  long find(const void* p) const {
    if (!index_.empty()) {
      auto it = index_.find(p);
      return it == index_.end() ? -1 : static_cast<long>(it->second);
    }
    for (size_t i = 0; i < size_; ++i)
      if (at(i) == p) return static_cast<long>(i);
    return -1;
  }
  std::uint32_t add(const void* p) {
    auto id = static_cast<std::uint32_t>(size_);
    if (size_ < kInline)
      inline_[size_] = p;
    else
      more_.push_back(p);
    ++size_;
    if (!index_.empty()) {
      index_.emplace(p, id);
    } else if (size_ > kLinearLimit) {
      for (size_t i = 0; i < size_; ++i) index_.emplace(at(i), static_cast<std::uint32_t>(i));
    }
    return id;
  }
  size_t size() const { return size_; }
  // Forgets the objects numbered `mark` and above.
  void truncate(size_t mark) {
    while (size_ > mark) {
      if (!index_.empty()) index_.erase(at(size_ - 1));
      if (size_ > kInline) more_.pop_back();
      --size_;
    }
  }

 private:
  static constexpr size_t kInline = 8;
  static constexpr size_t kLinearLimit = 16;
  const void* at(size_t i) const { return i < kInline ? inline_[i] : more_[i - kInline]; }
  const void* inline_[kInline];
  std::vector<const void*> more_;
  size_t size_ = 0;
  std::unordered_map<const void*, std::uint32_t> index_;
};

struct UpvalueHome {
  std::uint32_t closure;
  std::uint8_t index;
};

class Encoder {
 public:
  Encoder(lua_State* L, std::string& out) : L_(L), w_(out) {}
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  // Removes what the encoder kept on the stack (left there if a Lua error ends it).
  void finish() {
    if (names_) lua_remove(L_, names_);
    names_ = 0;
  }

  void header(size_t count) {
    w_.u8(fmt::kMagic);
    w_.u8(0);
    w_.varint(count);
  }

  // Writes the value at idx (absolute); false when it cannot travel, with
  // the reason in refused() and the path below this value in path_below().
  bool write(int idx, int depth) {
    int type = lua_type(L_, idx);
    switch (type) {
      case LUA_TNIL:
      case LUA_TBOOLEAN:
      case LUA_TNUMBER:
      case LUA_TSTRING:
        write_scalar(L_, w_, idx, type);
        return true;
      case LUA_TTABLE:
        return write_table(idx, depth);
      case LUA_TFUNCTION:
        return lua_iscfunction(L_, idx) ? write_cfunction(idx) : write_function(idx, depth);
      case LUA_TUSERDATA:
        return write_userdata(idx);
      case LUA_TLIGHTUSERDATA:
        return refuse("light userdata");
      case LUA_TTHREAD:
        return refuse("thread (coroutine)");
      default:
        return refuse(luaL_typename(L_, idx));
    }
  }

  bool too_deep() const { return too_deep_; }

  bool cross_process() const noexcept { return cross_process_; }
  const std::string& refused() const { return refused_; }
  // The path from the failed value's root to it, e.g. ".co[2]".
  std::string path_below() const {
    std::string out;
    size_t n = segments_.size();
    for (size_t i = 0; i < n; ++i) {
      // Very deep paths show their two ends.
      if (n > 24 && i == 12) {
        out += "...";
        i = n - 12;
      }
      out += segments_[n - 1 - i];
    }
    return out;
  }

  // Undo marks, for leaving out one global of a snapshot.
  struct Mark {
    size_t bytes, objects;
  };
  Mark mark() const { return {w_.out().size(), seen_.size()}; }
  void rollback(const Mark& m) {
    fmt::Reader r(std::string_view(w_.out()).substr(m.bytes));
    try {
      fmt::visit_value_objects(r, release_object, nullptr);
    } catch (const fmt::FormatError&) {
      // A partial value ends early; its earlier objects have been released.
    }
    w_.out().resize(m.bytes);
    seen_.truncate(m.objects);
    for (auto it = upvalues_.begin(); it != upvalues_.end();)
      it = it->second.closure >= m.objects ? upvalues_.erase(it) : std::next(it);
    refused_.clear();
    segments_.clear();
    too_deep_ = false;
  }
  // Numbers a value the caller writes itself (the snapshot's table), as the decoder will.
  void add_anonymous_object() { seen_.add(&seen_); }
  void set_refs_flag() { w_.out()[1] = static_cast<char>(w_.out()[1] | fmt::kFlagRefs); }

  // The names cache's stack index (pushed on first use).
  int names() {
    if (!names_) {
      push_names(L_);
      names_ = lua_gettop(L_);
    }
    return names_;
  }
  const void* globals() {
    if (!globals_) {
      lua_rawgeti(L_, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
      globals_ = lua_topointer(L_, -1);
      lua_pop(L_, 1);
    }
    return globals_;
  }
  // If the value at idx is listed in the names cache, pushes its entry.
  bool push_name(int idx) {
    int cache = names();
    lua_pushvalue(L_, idx);
    if (lua_rawget(L_, cache) == LUA_TSTRING) return true;
    lua_pop(L_, 1);
    return false;
  }

 private:
  static void release_object(void*, std::string_view, std::string_view tname, std::string_view ref) {
    const SendableClass* cls = find_sendable_class(tname);
    if (cls && cls->drop_ref) cls->drop_ref(ref);
  }

  // Failure paths live out of line, so the recursive frames stay small (deep values).
  [[gnu::noinline]] bool refuse(const char* what) {
    refused_ = what;
    return false;
  }
  [[gnu::noinline]] bool refuse_userdata(int idx) {
    if (luaL_getmetafield(L_, idx, "__name") != LUA_TNIL) {
      const char* name = lua_tostring(L_, -1);
      refused_ = std::string("userdata (") + (name ? name : "?") + ")";
      lua_pop(L_, 1);
    } else {
      refused_ = "userdata";
    }
    return false;
  }
  [[gnu::noinline]] void add_index_segment(lua_Integer i) { segments_.push_back(index_segment(i)); }
  [[gnu::noinline]] void add_key_segment(int key, bool as_key) {
    std::string seg = key_segment(L_, key);
    segments_.push_back(as_key ? "<key " + seg + ">" : seg);
  }
  [[gnu::noinline]] void add_upvalue_segment(const char* name) {
    segments_.push_back(std::string("<upvalue ") + (name && *name ? name : "?") + ">");
  }

  [[gnu::noinline]] bool write_ref_if_seen(const void* p) {
    long id = seen_.find(p);
    if (id < 0) return false;
    w_.u8(fmt::kRef);
    w_.varint(static_cast<std::uint64_t>(id));
    set_refs_flag();
    return true;
  }

  bool enter(int depth) {
    if (depth <= fmt::kMaxDepth) return true;
    too_deep_ = true;
    return false;
  }

  // Writes a module table as its name; false if the table is not a module's.
  [[gnu::noinline]] bool write_module(int idx) {
    if (!push_name(idx)) return false;
    // Check that it still is a module (the cache may be stale).
    size_t len = 0;
    const char* name = lua_tolstring(L_, -1, &len);
    luaL_getsubtable(L_, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L_, -2);
    lua_rawget(L_, -2);
    bool still = lua_rawequal(L_, -1, idx);
    lua_pop(L_, 2);
    if (still) {
      w_.u8(fmt::kModule);
      w_.str(std::string_view(name, len));
    }
    lua_pop(L_, 1);
    return still;
  }

  [[gnu::noinline]] bool write_table(int idx, int depth) {
    const void* p = lua_topointer(L_, idx);
    if (write_ref_if_seen(p)) return true;
    if (p == globals()) {
      w_.u8(fmt::kGlobals);
      return true;
    }
    if (write_module(idx)) return true;
    if (!enter(depth)) return false;
    luaL_checkstack(L_, 6, "codec: value nested too deeply");
    seen_.add(p);
    if (w_.out().capacity() < 128) w_.out().reserve(128);
    w_.u8(fmt::kTable);
    lua_Unsigned n = lua_rawlen(L_, idx);
    if (n > UINT32_MAX) return refuse("table (too long)");
    w_.u32(static_cast<std::uint32_t>(n));
    size_t at = w_.reserve_u32();
    for (lua_Unsigned i = 1; i <= n; ++i) {
      lua_rawgeti(L_, idx, static_cast<lua_Integer>(i));
      if (!write(lua_gettop(L_), depth + 1)) {
        lua_pop(L_, 1);
        add_index_segment(static_cast<lua_Integer>(i));
        return false;
      }
      lua_pop(L_, 1);
    }
    std::uint32_t count = 0;
    lua_pushnil(L_);
    while (lua_next(L_, idx)) {
      int top = lua_gettop(L_);
      if (lua_isinteger(L_, top - 1)) {
        lua_Integer k = lua_tointeger(L_, top - 1);
        if (k >= 1 && static_cast<lua_Unsigned>(k) <= n) {
          lua_pop(L_, 1);
          continue;
        }
      }
      if (!write(top - 1, depth + 1)) {
        add_key_segment(top - 1, true);
        lua_pop(L_, 2);
        return false;
      }
      if (!write(top, depth + 1)) {
        add_key_segment(top - 1, false);
        lua_pop(L_, 2);
        return false;
      }
      lua_pop(L_, 1);
      ++count;
    }
    w_.patch_u32(at, count);
    return true;
  }

  [[gnu::noinline]] bool write_cfunction(int idx) {
    if (!push_name(idx) && !rebuild_and_push_name(idx)) {
      bool has_upvalues = lua_getupvalue(L_, idx, 1) != nullptr;
      if (has_upvalues) lua_pop(L_, 1);
      return refuse(has_upvalues ? "C function (with upvalues, not a field of a loaded module)"
                                 : "C function (not a field of a loaded module)");
    }
    size_t len = 0;
    const char* entry = lua_tolstring(L_, -1, &len);
    size_t module_len = std::strlen(entry);
    w_.u8(fmt::kCFunction);
    w_.str(std::string_view(entry, module_len));
    w_.str(std::string_view(entry + module_len + 1, len - module_len - 1));
    lua_pop(L_, 1);
    return true;
  }

  // A module loaded in a way our hook did not see: look again once.
  bool rebuild_and_push_name(int idx) {
    if (rebuilt_) return false;
    rebuilt_ = true;
    lua_pushnil(L_);
    lua_rawsetp(L_, LUA_REGISTRYINDEX, &kNamesKey);
    push_names(L_);
    lua_replace(L_, names());
    return push_name(idx);
  }

  [[gnu::noinline]] bool write_function(int idx, int depth) {
    const void* p = lua_topointer(L_, idx);
    if (write_ref_if_seen(p)) return true;
    if (!enter(depth)) return false;
    luaL_checkstack(L_, 6, "codec: value nested too deeply");
    std::uint32_t id = seen_.add(p);
    w_.u8(fmt::kFunction);
    size_t at = w_.reserve_u32();
    size_t start = w_.out().size();
    lua_pushvalue(L_, idx);
    int status = lua_dump(L_, write_dump, &w_.out(), 0);
    lua_pop(L_, 1);
    if (status != 0) return refuse("function (cannot be dumped)");
    size_t dumped = w_.out().size() - start;
    if (dumped > UINT32_MAX) return refuse("function (too large)");
    w_.patch_u32(at, static_cast<std::uint32_t>(dumped));
    int nups = 0;
    while (lua_getupvalue(L_, idx, nups + 1)) {
      lua_pop(L_, 1);
      ++nups;
    }
    w_.u8(static_cast<std::uint8_t>(nups));
    for (int i = 1; i <= nups; ++i) {
      void* upid = lua_upvalueid(L_, idx, i);
      auto [it, fresh] = upvalues_.try_emplace(upid, UpvalueHome{id, static_cast<std::uint8_t>(i)});
      if (!fresh) {
        w_.u8(fmt::kUpvalueJoin);
        w_.varint(it->second.closure);
        w_.u8(it->second.index);
        set_refs_flag();
        continue;
      }
      w_.u8(fmt::kUpvalueValue);
      const char* name = lua_getupvalue(L_, idx, i);
      if (!write(lua_gettop(L_), depth + 1)) {
        add_upvalue_segment(name);
        lua_pop(L_, 1);
        return false;
      }
      lua_pop(L_, 1);
    }
    return true;
  }

  [[gnu::noinline]] bool write_userdata(int idx) {
    const SendableClass* cls = nullptr;
    if (luaL_getmetafield(L_, idx, "__name") != LUA_TNIL) {
      size_t len = 0;
      if (const char* s = lua_tolstring(L_, -1, &len)) cls = find_sendable_class(std::string_view(s, len));
      lua_pop(L_, 1);
    }
    if (!cls) return refuse_userdata(idx);
    if (t_for_another_process && (cls->process_local || (cls->can_cross && !cls->can_cross(L_, idx)))) {
      refused_ = cls->tname;
      cross_process_ = true;
      return false;
    }
    const void* p = lua_topointer(L_, idx);
    if (write_ref_if_seen(p)) return true;
    seen_.add(p);
    std::string ref;
    cls->write_ref(L_, idx, ref);
    if (cls->identity) remember_object(L_, idx, cls->identity(L_, idx));
    w_.u8(fmt::kObject);
    w_.str(cls->module);
    w_.str(cls->tname);
    w_.str(ref);
    return true;
  }

  lua_State* L_;
  fmt::Writer w_;
  SeenObjects seen_;
  std::unordered_map<void*, UpvalueHome> upvalues_;
  int names_ = 0;
  const void* globals_ = nullptr;
  bool rebuilt_ = false;
  bool too_deep_ = false;
  bool cross_process_ = false;  // refused_ names a process_local class
  std::string refused_;
  std::vector<std::string> segments_;
};

[[noreturn]] void raise_refusal(lua_State* L, Encoder& enc, std::string& out, const std::string& path) {
  std::string message = enc.too_deep()
                            ? "codec: value nested too deeply (limit " + std::to_string(fmt::kMaxDepth) + ") at " + path
                        : enc.cross_process() ? "cannot send a " + enc.refused() + " to another process at " + path
                                              : "cannot send a " + enc.refused() + " value at " + path;
  discard(out);
  out.clear();
  luaL_error(L, "%s", message.c_str());
  throw;  // unreachable
}

// ---------------------------------------------------------------------------
// Decoding.

struct LoadState {
  std::string_view code;
  bool done = false;
};

const char* read_code(lua_State*, void* ud, size_t* size) {
  auto* s = static_cast<LoadState*>(ud);
  if (s->done) {
    *size = 0;
    return nullptr;
  }
  s->done = true;
  *size = s->code.size();
  return s->code.data();
}

// Lua's bytecode loader sizes its arrays by counts read from the bytes, before
// reading the elements: while a Function loads, the state may grow by no more
// than a chunk of that size can need (a few times its size; 16x covers the
// densest case, 1-byte constants that become 16-byte values) plus what the
// state holds already (its string table may double), so a forged count costs
// a "not enough memory" load error instead of gigabytes.
class LoadBudget {
 public:
  LoadBudget(lua_State* L, std::size_t code_size) : L_(L) {
    inner_ = lua_getallocf(L, &inner_ud_);
    std::size_t held = static_cast<std::size_t>(lua_gc(L, LUA_GCCOUNT, 0)) * 1024;
    left_ = 16 * code_size + held + (std::size_t{1} << 20);
    lua_setallocf(L, allocate, this);
  }
  ~LoadBudget() { lua_setallocf(L_, inner_, inner_ud_); }
  LoadBudget(const LoadBudget&) = delete;
  LoadBudget& operator=(const LoadBudget&) = delete;

 private:
  static void* allocate(void* ud, void* block, std::size_t osize, std::size_t nsize) noexcept {
    auto* self = static_cast<LoadBudget*>(ud);
    std::size_t old = block ? osize : 0;  // for a new block osize is a type tag
    if (nsize > old && nsize - old > self->left_) return nullptr;  // Lua collects, then raises
    void* p = self->inner_(self->inner_ud_, block, osize, nsize);
    if (nsize > old) {
      if (p) self->left_ -= nsize - old;
    } else if (nsize == 0 || p) {
      self->left_ += old - nsize;
    }
    return p;
  }

  lua_State* L_;
  lua_Alloc inner_;
  void* inner_ud_ = nullptr;
  std::size_t left_;
};

class Decoder {
 public:
  Decoder(lua_State* L, fmt::Reader& r, int refs) : L_(L), r_(r), refs_(refs) {}

  // Pushes one value.
  void read(int depth) {
    std::uint8_t tag = r_.u8();
    switch (tag) {
      case fmt::kNil:
        lua_pushnil(L_);
        return;
      case fmt::kFalse:
        lua_pushboolean(L_, 0);
        return;
      case fmt::kTrue:
        lua_pushboolean(L_, 1);
        return;
      case fmt::kInt:
        lua_pushinteger(L_, r_.i64());
        return;
      case fmt::kFloat:
        lua_pushnumber(L_, r_.f64());
        return;
      case fmt::kString: {
        std::string_view s = r_.str();
        lua_pushlstring(L_, s.data(), s.size());
        return;
      }
      case fmt::kTable:
        read_table(depth);
        return;
      case fmt::kRef: {
        std::uint64_t id = r_.varint();
        if (!refs_ || id >= next_id_) throw fmt::FormatError("reference to an unknown value");
        lua_rawgeti(L_, refs_, static_cast<lua_Integer>(id) + 1);
        return;
      }
      case fmt::kGlobals:
        lua_rawgeti(L_, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        return;
      case fmt::kModule:
        push_module(L_, r_.str());
        return;
      case fmt::kCFunction:
        read_cfunction();
        return;
      case fmt::kFunction:
        read_function(depth);
        return;
      case fmt::kObject:
        read_object();
        return;
      default:
        throw fmt::FormatError("unknown tag " + std::to_string(tag));
    }
  }

 private:
  void keep(int idx) {
    std::uint32_t id = next_id_++;
    if (refs_) {
      lua_pushvalue(L_, idx);
      lua_rawseti(L_, refs_, static_cast<lua_Integer>(id) + 1);
    }
  }

  void read_table(int depth) {
    if (depth > fmt::kMaxDepth) throw fmt::FormatError("value nested too deeply");
    luaL_checkstack(L_, 4, "codec: value nested too deeply");
    std::size_t narr = r_.count(r_.u32(), 1);
    std::size_t nhash = r_.count(r_.u32(), 2);
    if (narr + 2 * nhash > r_.remaining()) throw fmt::FormatError("count larger than the message");
    lua_createtable(L_, static_cast<int>(narr), static_cast<int>(nhash));
    int t = lua_gettop(L_);
    keep(t);
    for (std::size_t i = 1; i <= narr; ++i) {
      read(depth + 1);
      lua_rawseti(L_, t, static_cast<lua_Integer>(i));
    }
    for (std::size_t i = 0; i < nhash; ++i) {
      read(depth + 1);
      int key_type = lua_type(L_, -1);
      if (key_type == LUA_TNIL || (key_type == LUA_TNUMBER && std::isnan(lua_tonumber(L_, -1))))
        throw fmt::FormatError("table key is nil or NaN");
      read(depth + 1);
      lua_rawset(L_, t);
    }
  }

  [[gnu::noinline]] void read_cfunction() {
    std::string_view module = r_.str();
    std::string_view field = r_.str();
    push_module(L_, module);
    if (!field.empty()) {
      if (!lua_istable(L_, -1)) lua_pushnil(L_);
      else {
        lua_pushlstring(L_, field.data(), field.size());
        lua_rawget(L_, -2);
      }
      lua_remove(L_, -2);
    }
    if (!lua_iscfunction(L_, -1)) {
      std::string name(module);
      if (!field.empty()) name += "." + std::string(field);
      luaL_error(L_, "codec: no C function %s at the destination", name.c_str());
    }
  }

  // Pushes the function of a Function value and its upvalue count above it.
  [[gnu::noinline]] int load_function() {
    std::string_view code = r_.bytes(r_.count(r_.u32(), 1));
    LoadState ls{code};
    int status;
    {
      LoadBudget budget(L_, code.size());
      status = lua_load(L_, read_code, &ls, "=(codec)", "b");
    }
    if (status != LUA_OK) {
      std::string why = lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "?";
      lua_pop(L_, 1);
      throw fmt::FormatError("bad bytecode: " + why);
    }
    int f = lua_gettop(L_);
    keep(f);
    int nups = r_.u8();
    lua_Debug ar;
    lua_pushvalue(L_, f);
    lua_getinfo(L_, ">u", &ar);
    if (ar.nups != nups) throw fmt::FormatError("wrong upvalue count");
    lua_pushinteger(L_, nups);
    return f;
  }

  void read_function(int depth) {
    if (depth > fmt::kMaxDepth) throw fmt::FormatError("value nested too deeply");
    luaL_checkstack(L_, 6, "codec: value nested too deeply");
    int f = load_function();
    int nups = lua_tointeger(L_, -1);
    lua_pop(L_, 1);
    for (int i = 1; i <= nups; ++i) {
      std::uint8_t kind = r_.u8();
      if (kind == fmt::kUpvalueValue) {
        read(depth + 1);
        lua_setupvalue(L_, f, i);
      } else if (kind == fmt::kUpvalueJoin) {
        std::uint64_t id = r_.varint();
        int n = r_.u8();
        if (!refs_ || id >= next_id_) throw fmt::FormatError("upvalue of an unknown function");
        lua_rawgeti(L_, refs_, static_cast<lua_Integer>(id) + 1);
        if (lua_type(L_, -1) != LUA_TFUNCTION || lua_iscfunction(L_, -1) || n < 1 ||
            !lua_getupvalue(L_, -1, n))
          throw fmt::FormatError("bad shared upvalue");
        lua_pop(L_, 1);
        lua_upvaluejoin(L_, f, i, -1, n);
        lua_pop(L_, 1);
      } else {
        throw fmt::FormatError("unknown upvalue kind");
      }
    }
  }

  [[gnu::noinline]] void read_object() {
    std::string module(r_.str());
    std::string tname(r_.str());
    std::string_view ref = r_.str();
    push_module(L_, module);
    lua_pop(L_, 1);
    const SendableClass* cls = find_sendable_class(tname);
    if (!cls) luaL_error(L_, "codec: module '%s' did not register class %s", module.c_str(), tname.c_str());
    const void* id = cls->ref_identity && cls->identity ? cls->ref_identity(ref) : nullptr;
    if (id && push_known_object(L_, cls->tname, id)) {
      if (cls->drop_ref) cls->drop_ref(ref);  // the state's userdata holds its own reference
    } else {
      cls->push_ref(L_, ref);
      if (id) remember_object(L_, -1, id);
    }
    keep(lua_gettop(L_));
  }

  lua_State* L_;
  fmt::Reader& r_;
  int refs_;
  std::uint32_t next_id_ = 0;
};

// ---------------------------------------------------------------------------
// Globals.

// True if the global (key at -2, value at -1) is what a fresh state has anyway.
bool is_standard_global(lua_State* L, const FreshGlobals& fresh) {
  if (lua_type(L, -2) != LUA_TSTRING) return false;
  size_t len = 0;
  const char* chars = lua_tolstring(L, -2, &len);
  std::string_view name(chars, len);
  if (name == "_G") {
    lua_pushglobaltable(L);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    return same;
  }
  if (name == "_VERSION") return lua_type(L, -1) == LUA_TSTRING && std::strcmp(lua_tostring(L, -1), LUA_VERSION) == 0;
  if (lua_iscfunction(L, -1)) {
    auto it = fresh.functions.find(name);
    return it != fresh.functions.end() && it->second == lua_tocfunction(L, -1);
  }
  if (lua_istable(L, -1)) {
    auto it = fresh.modules.find(name);
    if (it == fresh.modules.end()) return false;
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, it->second.c_str());
    bool same = lua_rawequal(L, -1, -3);
    lua_pop(L, 2);
    return same;
  }
  return false;
}

}  // namespace

namespace {

// Encodes count values from first; a value that cannot travel is reported at
// root_of(i) (its place among them) followed by the path inside it.
template <class RootOf>
std::string encode_values_at(lua_State* L, int first, int count, RootOf root_of) {
  first = lua_absindex(L, first);
  std::string out;
  // Messages of scalars only (most queue items) need none of the encoder's bookkeeping.
  bool scalars = true;
  for (int i = 0; i < count && scalars; ++i) scalars = is_scalar(lua_type(L, first + i));
  if (scalars) {
    fmt::Writer w(out);
    w.u8(fmt::kMagic);
    w.u8(0);
    w.varint(static_cast<std::uint64_t>(count));
    for (int i = 0; i < count; ++i) write_scalar(L, w, first + i, lua_type(L, first + i));
    return out;
  }
  {
    Encoder enc(L, out);
    enc.header(static_cast<size_t>(count));
    enc.names();  // pushed first: a write that pops its own temporaries must not pop it
    for (int i = 0; i < count; ++i)
      if (!enc.write(first + i, 1)) raise_refusal(L, enc, out, root_of(i) + enc.path_below());
    enc.finish();
  }
  return out;
}

}  // namespace

std::string encode(lua_State* L, int first, int count, const char* root, lua_Integer index_base) {
  return encode_values_at(L, first, count, [&](int i) { return std::string(root) + index_segment(i + index_base); });
}

std::string encode_at(lua_State* L, int idx, const std::string& path) {
  return encode_values_at(L, idx, 1, [&](int) { return path; });
}

std::string key_path_segment(lua_State* L, int idx) { return key_segment(L, lua_absindex(L, idx)); }

std::size_t encode_scalar(lua_State* L, int idx, char* buf) {
  // Header: magic, no flags, one value (a one-byte varint).
  buf[0] = static_cast<char>(fmt::kMagic);
  buf[1] = 0;
  buf[2] = 1;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      buf[3] = fmt::kNil;
      return 4;
    case LUA_TBOOLEAN:
      buf[3] = static_cast<char>(lua_toboolean(L, idx) ? fmt::kTrue : fmt::kFalse);
      return 4;
    case LUA_TNUMBER: {
      // lua_isinteger, not lua_tointegerx: a float with an integral value (even -0.0) stays a float.
      if (lua_isinteger(L, idx)) {
        std::int64_t v = lua_tointeger(L, idx);
        buf[3] = fmt::kInt;
        std::memcpy(buf + 4, &v, sizeof v);
      } else {
        double d = lua_tonumber(L, idx);
        buf[3] = fmt::kFloat;
        std::memcpy(buf + 4, &d, sizeof d);
      }
      return 12;
    }
    case LUA_TSTRING: {
      size_t len = 0;
      const char* s = lua_tolstring(L, idx, &len);
      if (len > kScalarMessageMax - 5) return 0;  // also keeps the length a one-byte varint
      buf[3] = fmt::kString;
      buf[4] = static_cast<char>(len);
      std::memcpy(buf + 5, s, len);
      return 5 + len;
    }
    default:
      return 0;
  }
}

bool decode_scalar(lua_State* L, std::string_view m) {
  if (m.size() < 4 || static_cast<std::uint8_t>(m[0]) != fmt::kMagic || m[1] != 0 || m[2] != 1) return false;
  switch (static_cast<std::uint8_t>(m[3])) {
    case fmt::kNil:
      if (m.size() != 4) return false;
      lua_pushnil(L);
      return true;
    case fmt::kFalse:
    case fmt::kTrue:
      if (m.size() != 4) return false;
      lua_pushboolean(L, m[3] == fmt::kTrue);
      return true;
    case fmt::kInt: {
      if (m.size() != 12) return false;
      std::int64_t v;
      std::memcpy(&v, m.data() + 4, sizeof v);
      lua_pushinteger(L, static_cast<lua_Integer>(v));
      return true;
    }
    case fmt::kFloat: {
      if (m.size() != 12) return false;
      double d;
      std::memcpy(&d, m.data() + 4, sizeof d);
      lua_pushnumber(L, d);
      return true;
    }
    case fmt::kString: {
      // Only a one-byte length (< 0x80); longer strings go through decode.
      if (m.size() < 5) return false;
      auto len = static_cast<std::uint8_t>(m[4]);
      if (len >= 0x80 || m.size() != 5u + len) return false;
      lua_pushlstring(L, m.data() + 5, len);
      return true;
    }
    default:
      return false;
  }
}

int decode(lua_State* L, std::string_view message) {
  int base = lua_gettop(L);
  std::string failure;
  int count = 0;
  try {
    fmt::Reader r(message);
    std::uint8_t flags = 0;
    std::size_t n = fmt::read_header(r, &flags);
    if (n > 1000000) throw fmt::FormatError("too many values");
    count = static_cast<int>(n);
    luaL_checkstack(L, count + 8, "codec: too many values");
    int refs = 0;
    if (flags & fmt::kFlagRefs) {
      lua_newtable(L);
      refs = lua_gettop(L);
    }
    Decoder dec(L, r, refs);
    for (int i = 0; i < count; ++i) dec.read(1);
    if (!r.at_end()) throw fmt::FormatError("trailing bytes");
    if (refs) lua_remove(L, refs);
  } catch (const fmt::FormatError& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    lua_settop(L, base);
    luaL_error(L, "%s", failure.c_str());
  }
  return count;
}

std::string encode_globals(lua_State* L) {
  const FreshGlobals& fresh = fresh_globals();
  luaL_checkstack(L, 8, "codec");
  std::string out;
  {
    Encoder enc(L, out);
    enc.header(1);
    enc.names();  // pushed now, below the iteration's key and value
    fmt::Writer w(out);
    enc.add_anonymous_object();
    w.u8(fmt::kTable);
    w.u32(0);
    size_t at = w.reserve_u32();
    std::uint32_t count = 0;
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, g)) {
      int top = lua_gettop(L);
      if (!is_standard_global(L, fresh)) {
        auto m = enc.mark();
        // A global that cannot travel is left out, not an error: the script's other globals still go.
        if (enc.write(top - 1, 2) && enc.write(top, 2))
          ++count;
        else
          enc.rollback(m);
      }
      lua_settop(L, top - 1);
    }
    lua_pop(L, 1);
    w.patch_u32(at, count);
    enc.finish();
  }
  return out;
}

void apply_globals(lua_State* L, std::string_view snapshot) {
  int base = lua_gettop(L);
  int n = decode(L, snapshot);
  if (n != 1 || !lua_istable(L, -1)) {
    lua_settop(L, base);
    luaL_error(L, "codec: malformed message (not a globals snapshot)");
  }
  luaL_checkstack(L, 4, "codec");
  lua_pushglobaltable(L);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  lua_settop(L, base);
}

std::vector<std::pair<std::string, std::string>> encode_globals_each(lua_State* L) {
  const FreshGlobals& fresh = fresh_globals();
  luaL_checkstack(L, 8, "codec");
  std::vector<std::pair<std::string, std::string>> result;
  lua_pushglobaltable(L);
  int g = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, g)) {
    int top = lua_gettop(L);
    if (lua_type(L, top - 1) == LUA_TSTRING && !is_standard_global(L, fresh)) {
      std::string out;
      Encoder enc(L, out);
      enc.header(1);
      enc.names();  // pushed first: a write that pops its own temporaries must not pop it
      auto m = enc.mark();
      bool ok = enc.write(top, 1);
      if (!ok) enc.rollback(m);
      enc.finish();
      if (ok) result.emplace_back(lua_tostring(L, top - 1), std::move(out));
    }
    lua_settop(L, top - 1);
  }
  lua_pop(L, 1);
  return result;
}

}  // namespace plua::lua
