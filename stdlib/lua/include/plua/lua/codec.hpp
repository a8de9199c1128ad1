// The codec: the one place where Lua values become bytes and back (design.md,
// "How values travel"). Thread start, queues, pipes, pools and processes send
// Lua values through it; the byte format itself lives in plua/core/codec_format.hpp
// (C++ code that has no lua_State uses plua::core::encode_values / decode_values).
//
// What travels, and how:
//   nil, booleans, integers, floats (math.type survives), strings (binary-safe): by value.
//   tables: deep copies; shared references and cycles are kept within one message;
//     metatables are not carried.
//   Lua functions: unstripped bytecode (lua_dump, so tracebacks keep line numbers)
//     plus their upvalues, encoded by the same rules. An upvalue holding the
//     sender's globals (normally _ENV) is rebound to the receiver's globals;
//     closures that share an upvalue still share it after decoding (lua_upvaluejoin).
//   the globals table (_G): travels as "the receiver's globals".
//   module tables (any value of package.loaded): travel as their name and are
//     `require`d at the destination.
//   C functions that are fields of a loaded module (print, string.format,
//     time.sleep, ...): travel as module + field and are looked up at the destination.
//   userdata whose metatable __name is a registered SendableClass (queues,
//     locks, thread handles, shared tables ...): travel by reference.
//   anything else is refused with a Lua error naming the value's path:
//     "cannot send a thread (coroutine) value at args[2].co".
//
// Trust: bytecode in a message is loaded with lua_load(mode "b"), and Lua's
// bytecode loader trusts its input. Messages are therefore trusted to come from
// plua peers (threads and processes of the same program). Malformed framing is
// always detected (no crash, no out-of-bounds read); malicious bytecode is not.
// The manager's network wire never uses this codec (it speaks a pickle subset).
//
// Thread-safety: encode/decode touch only the given lua_State; the class
// registry is process-global and safe to use from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <typeinfo>
#include <utility>
#include <vector>

#include <unistd.h>

#include "plua/lua/lua.hpp"

namespace plua::lua {

// Values nested deeper than this (tables in tables, functions' upvalues ...)
// are refused, so neither encoding nor decoding can overflow the C stack:
// "codec: value nested too deeply (limit 1000) at args[1].next.next...".
inline constexpr int kMaxDepth = 1000;

// Encodes `count` values from stack index `first` into one message. Value i
// (1-based) has the path root[i + index_base - 1] (index_base: the position of
// the first value in the caller's list, e.g. of a map chunk's first item); a
// value that cannot travel raises a Lua error
// "cannot send a <type> value at <path>" (path like args[2].co, args[1][3]:
// identifier keys as .name, other keys as [repr], upvalues as <upvalue name>,
// a key that cannot travel as <key [repr]>).
// References already written for the message are released before raising.
std::string encode(lua_State* L, int first, int count, const char* root = "args", lua_Integer index_base = 1);

// Encodes the one value at idx, whose path is `path` in errors ("cannot send
// a thread (coroutine) value at t.job.co" for path "t.job"): for a value
// stored under a name rather than passed in a list.
std::string encode_at(lua_State* L, int idx, const std::string& path);

// How the key at idx shows in a path: ".name" for an identifier, "[repr]"
// otherwise (["a b"], [3], [true]).
std::string key_path_segment(lua_State* L, int idx);

// Pushes the message's values and returns how many. Malformed bytes raise a
// Lua error "codec: malformed message (...)": never a crash or an
// out-of-bounds read (see "Trust" above for bytecode). A Lua error part-way
// (malformed tail, a module that cannot be required, a push_ref that raises)
// leaves the message's later references unreleased.
int decode(lua_State* L, std::string_view message);

// The fast path of queues for the commonest item, one nil, boolean, number or
// string of up to kScalarMessageMax - 5 bytes: writes the same bytes as
// encode(L, idx, 1) into buf (kScalarMessageMax bytes) and returns their
// count, or 0 for any other value (then use encode).
inline constexpr std::size_t kScalarMessageMax = 64;
std::size_t encode_scalar(lua_State* L, int idx, char* buf);

// Pushes the value of a one-value message of a nil, boolean, number or
// string (true); false, with nothing pushed, for any other message (then use
// decode, which also reports malformed bytes).
bool decode_scalar(lua_State* L, std::string_view message);

// Releases the by-reference objects of a message that will never be decoded
// (a queue dropped with items in it, a failed send): calls each class's
// drop_ref. Malformed bytes are ignored (nothing more is released).
void discard(std::string_view message) noexcept;

// A kind of plua object that travels by reference. The strings must live as
// long as the process (string literals).
struct SendableClass {
  // Module to require at the destination before push_ref (its luaopen registers the class).
  const char* module;
  // The userdata's metatable __name (luaL_newmetatable's tname).
  const char* tname;
  // Appends a reference to the object at stack index idx to `out`.
  void (*write_ref)(lua_State* L, int idx, std::string& out);
  // Pushes the object a reference names, or raises a Lua error.
  void (*push_ref)(lua_State* L, std::string_view ref);
  // Optional: releases a reference that will never be pushed (see discard()).
  void (*drop_ref)(std::string_view ref) noexcept = nullptr;
  // True when references are only valid in this process (write_shared_ref):
  // encoding one for another process is refused up front (see below).
  bool process_local = false;
  // Optional, for a class that is not process_local: whether the object at
  // idx can go to another process in the message being encoded; when not, it
  // is refused there as a process_local one is (with its path).
  bool (*can_cross)(lua_State* L, int idx) = nullptr;
  // Optional, both or neither: identity. ref_identity names the object a
  // reference stands for without taking it (nullptr: unknown); identity names
  // the object of a live userdata of the class at idx (nullptr once closed).
  // With them, a state holds one userdata per object: decoding a reference to
  // an object the state already has pushes that userdata (and drops the
  // reference), so objects read back compare == and work as table keys.
  const void* (*ref_identity)(std::string_view ref) noexcept = nullptr;
  const void* (*identity)(lua_State* L, int idx) noexcept = nullptr;
};

// The per-state identity cache (weak values: a collected userdata leaves it
// before its finalizer runs, so it is never handed out again). Pushes the
// live userdata of class tname this state holds for object id and returns
// true, or pushes nothing and returns false.
bool push_known_object(lua_State* L, const char* tname, const void* id);
// Records the userdata at idx as this state's object for id, unless a live one is recorded.
void remember_object(lua_State* L, int idx, const void* id);

// While one is alive, the calling thread's encode and encode_globals make
// messages for another process (a spawn child): an object of a process_local
// class is refused there with "cannot send a <tname> to another process at
// <path>" (encode) or left out (encode_globals), instead of failing in the child
// and leaking the sender's reference. Constructed with `active` false it
// changes nothing (for a destination that may be this process: a ThreadPool).
class EncodingForAnotherProcess {
 public:
  explicit EncodingForAnotherProcess(bool active = true) noexcept;
  ~EncodingForAnotherProcess();
  EncodingForAnotherProcess(const EncodingForAnotherProcess&) = delete;
  EncodingForAnotherProcess& operator=(const EncodingForAnotherProcess&) = delete;

 private:
  bool previous_;
};

// Registers a class for by-reference travel. Process-global, thread-safe,
// lock-free (safe in a fork child) and idempotent (the same tname again
// changes nothing); call it from luaopen. At most 256 classes.
void register_sendable_class(const SendableClass& cls);

// The registered class of that __name, or nullptr.
const SendableClass* find_sendable_class(std::string_view tname);

// ---- In-process references (threads of one process share the object) ----
//
// write_shared_ref appends getpid() and the address of a heap copy of the
// shared_ptr (12 bytes); take_shared_ref takes that copy over (consume-once)
// and raises "a <tname> cannot cross to another process" in any other process
// (a fork child included). Every copy in flight is listed, with its type, so
// an address in the bytes is only followed if this process wrote it for that
// type and nobody took it yet: forged, replayed or retyped bytes are a
// malformed-message error, never a wild pointer. A reference inside a message that is never decoded
// leaks one reference to the object unless the message is discard()ed; a
// message holding such references must be decoded (or discarded) exactly once.

namespace detail {
inline constexpr std::size_t kSharedRefSize = sizeof(std::int32_t) + sizeof(void*);
// Lists a copy written by write_shared_ref as in flight.
void add_shared_ref(void* copy, const std::type_info& type);
// Parses a reference and takes its copy off the list; nullptr when it is not
// one (or not of that type, or already taken), or belongs to another process.
void* parse_shared_ref(std::string_view ref, bool* other_process, const std::type_info& type) noexcept;
// As parse_shared_ref, but leaves the copy listed (the caller only looks).
void* peek_shared_ref(std::string_view ref, const std::type_info& type) noexcept;
[[noreturn]] void raise_bad_shared_ref(lua_State* L, const char* tname, bool other_process);
}  // namespace detail

template <class T>
void write_shared_ref(std::string& out, const std::shared_ptr<T>& object) {
  auto owned = std::make_unique<std::shared_ptr<T>>(object);
  detail::add_shared_ref(owned.get(), typeid(std::shared_ptr<T>));
  auto* copy = owned.release();
  std::int32_t pid = static_cast<std::int32_t>(::getpid());
  out.append(reinterpret_cast<const char*>(&pid), sizeof pid);
  out.append(reinterpret_cast<const char*>(&copy), sizeof copy);
}

template <class T>
std::shared_ptr<T> take_shared_ref(lua_State* L, std::string_view ref, const char* tname) {
  bool other = false;
  void* p = detail::parse_shared_ref(ref, &other, typeid(std::shared_ptr<T>));
  if (!p) detail::raise_bad_shared_ref(L, tname, other);
  std::unique_ptr<std::shared_ptr<T>> copy(static_cast<std::shared_ptr<T>*>(p));
  return std::move(*copy);
}

// For SendableClass::ref_identity: the object a write_shared_ref reference names.
template <class T>
const void* shared_ref_identity(std::string_view ref) noexcept {
  void* p = detail::peek_shared_ref(ref, typeid(std::shared_ptr<T>));
  return p ? static_cast<std::shared_ptr<T>*>(p)->get() : nullptr;
}

// For SendableClass::ref_identity of objects in the shared arena: the block a
// reference that starts with its core::SharedRefData names (nullptr if none).
const void* arena_ref_identity(std::string_view ref) noexcept;

// For SendableClass::drop_ref: releases a reference written by write_shared_ref.
template <class T>
void drop_shared_ref(std::string_view ref) noexcept {
  bool other = false;
  if (void* p = detail::parse_shared_ref(ref, &other, typeid(std::shared_ptr<T>))) delete static_cast<std::shared_ptr<T>*>(p);
}

// ---- Globals snapshot (thread start, spawn) ----
//
// The script's own globals: the entries of _G whose values differ from what a
// fresh plua state has (the standard library's and plua's functions and
// module tables under their usual names, _G itself and _VERSION are left
// out). One message, so globals that share a table or an upvalue still share
// it at the destination. A global whose value cannot travel (a coroutine, a
// foreign userdata ...) is left out: the destination sees nil for it.
std::string encode_globals(lua_State* L);

// Sets the snapshot's globals in L's globals table (raw sets).
void apply_globals(lua_State* L, std::string_view snapshot);

// Per-name form, for a receiver that wants to install globals lazily: each
// global of the snapshot as its own standalone message (decode() pushes one
// value). Values are encoded one name at a time, so sharing between different
// globals (two globals naming one table, two functions sharing an upvalue) is
// NOT kept in this form; use encode_globals when it matters.
std::vector<std::pair<std::string, std::string>> encode_globals_each(lua_State* L);

}  // namespace plua::lua
