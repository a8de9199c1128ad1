// Lua binding of the `shared` module: shared.table (threads of one process),
// shared.Value and shared.Array (fixed-type memory in the shared arena, for
// threads and processes), and shared.update.
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "plua/core/fork_tracked.hpp"
#include "plua/core/lock.hpp"
#include "plua/core/shared_array.hpp"
#include "plua/core/shared_table.hpp"
#include "plua/lua/codec.hpp"
#include "plua/lua/errors.hpp"
#include "plua/lua/lock.hpp"

namespace {

namespace core = plua::core;
using plua::lua::call_core;

constexpr const char* kTable = "plua.shared.table";
constexpr const char* kValue = "plua.shared.Value";
constexpr const char* kArray = "plua.shared.Array";

// ---- shared.table ----

struct TableBox {
  std::shared_ptr<core::SharedTable> t;
};

core::SharedTable& check_table(lua_State* L, int idx, const char* op) {
  auto* box = static_cast<TableBox*>(luaL_checkudata(L, idx, kTable));
  if (!box->t) luaL_error(L, "%s: the shared table is closed", op);
  return *box->t;
}

void push_table(lua_State* L, std::shared_ptr<core::SharedTable> t) {
  auto* box = static_cast<TableBox*>(lua_newuserdatauv(L, sizeof(TableBox), 0));
  new (box) TableBox{std::move(t)};
  luaL_setmetatable(L, kTable);
}

// A key as bytes: integers (and integral floats, as Lua) tagged 'i', other
// numbers 'f', strings 's', booleans 'b'; other types are refused as a bad
// argument `arg` (the key's own position unless given).
std::string encode_key(lua_State* L, int idx, int arg = 0) {
  if (arg == 0) arg = idx;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: {
      lua_Integer i = 0;
      if (lua_isinteger(L, idx)) return core::SharedTable::encode_int_key(lua_tointeger(L, idx));
      lua_Number f = lua_tonumber(L, idx);
      // lua_numbertointeger truncates: only integral floats are integer keys.
      if (std::floor(f) == f && lua_numbertointeger(f, &i)) return core::SharedTable::encode_int_key(i);
      lua_Number n = lua_tonumber(L, idx);
      if (n != n) luaL_argerror(L, arg, "shared.table index is NaN");
      std::string k(1 + sizeof n, 'f');
      std::memcpy(k.data() + 1, &n, sizeof n);
      return k;
    }
    case LUA_TSTRING: {
      size_t len;
      const char* s = lua_tolstring(L, idx, &len);
      return std::string("s") + std::string(s, len);
    }
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) ? "b1" : "b0";
    default:
      luaL_argerror(L, arg, lua_pushfstring(L, "shared.table keys are numbers, strings or booleans, not %s",
                                           luaL_typename(L, idx)));
      return {};
  }
}

void push_key(lua_State* L, const std::string& k) {
  switch (k[0]) {
    case 'i': {
      std::uint64_t u = 0;
      for (std::size_t b = 1; b < 9; ++b) u = (u << 8) | static_cast<unsigned char>(k[b]);
      lua_pushinteger(L, static_cast<lua_Integer>(u ^ (std::uint64_t{1} << 63)));
      break;
    }
    case 'f': {
      lua_Number n;
      std::memcpy(&n, k.data() + 1, sizeof n);
      lua_pushnumber(L, n);
      break;
    }
    case 's':
      lua_pushlstring(L, k.data() + 1, k.size() - 1);
      break;
    default:
      lua_pushboolean(L, k == "b1");
  }
}

// Encodes the value at idx (nil: nullopt), stored under the key at key_idx of
// the table named `where` (errors say "... value at t.job.co"). Tables,
// functions and userdata may carry references, which are consumed by decoding
// and so re-encoded on read.
std::optional<core::SharedTable::Entry> encode_value(lua_State* L, int idx, const char* where, int key_idx) {
  int type = lua_type(L, idx);
  if (type == LUA_TNIL || type == LUA_TNONE) return std::nullopt;
  core::SharedTable::Entry e;
  e.bytes = plua::lua::encode_at(L, idx, where + plua::lua::key_path_segment(L, key_idx));
  e.refs = type == LUA_TTABLE || type == LUA_TFUNCTION || type == LUA_TUSERDATA;
  return e;
}

// Pushes an entry's value; the table's lock is held. A value with references
// is decoded and encoded again, so the stored copy stays usable.
void push_entry(lua_State* L, core::SharedTable::Entry* e) {
  if (!e) {
    lua_pushnil(L);
    return;
  }
  plua::lua::decode(L, e->bytes);
  if (e->refs) e->bytes = plua::lua::encode(L, lua_gettop(L), 1, "value");
}

void table_get(lua_State* L, core::SharedTable& t, int key_idx) {
  std::string key = encode_key(L, key_idx);
  std::string plain;
  bool have_plain = t.with_entry(key, [&](core::SharedTable::Entry* e) {
    if (e && !e->refs) {
      plain = e->bytes;  // decoded below, outside the lock
      return true;
    }
    push_entry(L, e);
    return false;
  });
  if (have_plain) plua::lua::decode(L, plain);
}

int table_index(lua_State* L) {
  core::SharedTable& t = check_table(L, 1, "shared.table");
  table_get(L, t, 2);
  return 1;
}

int table_newindex(lua_State* L) {
  core::SharedTable& t = check_table(L, 1, "shared.table");
  std::string key = encode_key(L, 2);
  auto value = encode_value(L, 3, "t", 2);
  t.set(key, std::move(value));
  return 0;
}

int table_len(lua_State* L) {
  lua_pushinteger(L, check_table(L, 1, "shared.table").length());
  return 1;
}

// pairs: the keys present when the loop starts; each value is read when reached
// (a key removed meanwhile is skipped).
int table_next(lua_State* L) {
  core::SharedTable& t = check_table(L, lua_upvalueindex(1), "shared.table");
  for (;;) {
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(3)) + 1;
    lua_pushinteger(L, i);
    lua_replace(L, lua_upvalueindex(3));
    if (lua_rawgeti(L, lua_upvalueindex(2), i) == LUA_TNIL) return 1;
    table_get(L, t, lua_gettop(L));
    if (!lua_isnil(L, -1)) return 2;
    lua_pop(L, 2);
  }
}

int table_pairs(lua_State* L) {
  core::SharedTable& t = check_table(L, 1, "shared.table");
  std::vector<std::string> keys = t.keys();
  lua_pushvalue(L, 1);
  lua_createtable(L, static_cast<int>(keys.size()), 0);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    push_key(L, keys[i]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, table_next, 3);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

int table_close(lua_State* L) {
  static_cast<TableBox*>(luaL_checkudata(L, 1, kTable))->t.reset();
  return 0;
}

int table_gc(lua_State* L) {
  static_cast<TableBox*>(lua_touserdata(L, 1))->~TableBox();
  return 0;
}

int table_tostring(lua_State* L) {
  lua_pushfstring(L, "shared.table: %p", lua_touserdata(L, 1));
  return 1;
}

void drop_message(std::string_view bytes) noexcept { plua::lua::discard(bytes); }

// shared.table([init]): a new table, filled from init's pairs.
int shared_table(lua_State* L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  push_table(L, std::make_shared<core::SharedTable>(drop_message));
  core::SharedTable& t = check_table(L, 2, "shared.table");
  if (lua_istable(L, 1)) {
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      std::string key = encode_key(L, -2, 1);
      t.set(key, encode_value(L, -1, "init", -2));
      lua_pop(L, 1);
    }
  }
  return 1;
}

// shared.update(t, key, fn): new = fn(old) under the table's lock; returns new.
int shared_update(lua_State* L) {
  core::SharedTable& t = check_table(L, 1, "shared.update");
  std::string key = encode_key(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_settop(L, 3);
  t.with_lock([&] {
    lua_pushvalue(L, 3);
    push_entry(L, t.find_locked(key));
    lua_call(L, 1, 1);
    t.set_locked(key, encode_value(L, 4, "t", 2));
    return 0;
  });
  return 1;
}

void table_write_ref(lua_State* L, int idx, std::string& out) {
  auto* box = static_cast<TableBox*>(luaL_checkudata(L, idx, kTable));
  if (!box->t) luaL_error(L, "shared.table: the shared table is closed");
  plua::lua::write_shared_ref(out, box->t);
}

void table_push_ref(lua_State* L, std::string_view ref) {
  push_table(L, plua::lua::take_shared_ref<core::SharedTable>(L, ref, "shared.table"));
}

const void* table_identity(lua_State* L, int idx) noexcept {
  return static_cast<TableBox*>(lua_touserdata(L, idx))->t.get();
}

// ---- shared.Value and shared.Array ----

// The memory and its lock, or nothing once closed.
struct ArrayRefs {
  std::optional<core::SharedArray> arr;
  std::optional<core::RLock> lock;
};
// Tracked so that fork children count the copies they inherit (fork_tracked.hpp).
using ArrayBox = core::ForkTracked<ArrayRefs>;

core::ScalarKind check_kind(lua_State* L, int idx) {
  static const char* const kKinds[] = {"int", "float", "bool", nullptr};
  return static_cast<core::ScalarKind>(luaL_checkoption(L, idx, nullptr, kKinds));
}

ArrayRefs& check_array(lua_State* L, int idx, const char* tname, const char* op) {
  auto* box = static_cast<ArrayBox*>(luaL_checkudata(L, idx, tname));
  if (!box->body().arr) luaL_error(L, "%s: the object is closed", op);
  return box->body();
}

void push_array(lua_State* L, core::SharedArray arr, core::RLock lock, const char* tname) {
  auto* box = static_cast<ArrayBox*>(lua_newuserdatauv(L, sizeof(ArrayBox), 0));
  new (box) ArrayBox(ArrayRefs{std::move(arr), std::move(lock)});
  luaL_setmetatable(L, tname);
}

void push_slot(lua_State* L, const core::SharedArray& a, std::uint64_t i) {
  switch (a.kind()) {
    case core::ScalarKind::integer: lua_pushinteger(L, a.get_int(i)); break;
    case core::ScalarKind::floating: lua_pushnumber(L, a.get_float(i)); break;
    case core::ScalarKind::boolean: lua_pushboolean(L, a.get_bool(i)); break;
  }
}

// A value that does not fit the kind: an argument error on `arg` (for an
// Array's initial list, naming the item).
[[noreturn]] void slot_error(lua_State* L, int arg, lua_Integer item, const char* expected, const char* got) {
  if (item > 0)
    luaL_argerror(L, arg, lua_pushfstring(L, "item %I: %s expected, got %s", item, expected, got));
  else
    luaL_argerror(L, arg, lua_pushfstring(L, "%s expected, got %s", expected, got));
  throw;  // unreachable: luaL_argerror does not return
}

// Stores the value at idx in slot i, checking it fits the kind; a misfit is
// reported against argument `arg` (item `item` of it when it is a list).
void set_slot(lua_State* L, core::SharedArray& a, std::uint64_t i, int idx, int arg, lua_Integer item = 0) {
  switch (a.kind()) {
    case core::ScalarKind::integer: {
      int ok = 0;
      lua_Integer v = lua_tointegerx(L, idx, &ok);
      if (!ok || lua_type(L, idx) != LUA_TNUMBER)
        slot_error(L, arg, item, "integer",
                   lua_type(L, idx) == LUA_TNUMBER ? "non-integral number" : luaL_typename(L, idx));
      a.set_int(i, v);
      break;
    }
    case core::ScalarKind::floating: {
      int ok = 0;
      lua_Number v = lua_tonumberx(L, idx, &ok);  // numeric strings too, as luaL_checknumber
      if (!ok) slot_error(L, arg, item, "number", luaL_typename(L, idx));
      a.set_float(i, v);
      break;
    }
    case core::ScalarKind::boolean:
      if (!lua_isboolean(L, idx)) slot_error(L, arg, item, "boolean", luaL_typename(L, idx));
      a.set_bool(i, lua_toboolean(L, idx));
      break;
  }
}

int value_get_lock(lua_State* L) {
  ArrayRefs& b = lua_touserdata(L, 1) && luaL_testudata(L, 1, kValue) ? check_array(L, 1, kValue, "Value:get_lock")
                                                                      : check_array(L, 1, kArray, "Array:get_lock");
  plua::lua::push_rlock(L, *b.lock);
  return 1;
}

int value_index(lua_State* L) {
  ArrayRefs& b = check_array(L, 1, kValue, "Value");
  const char* key = lua_tostring(L, 2);
  if (key && std::strcmp(key, "value") == 0) push_slot(L, *b.arr, 0);
  else if (key && std::strcmp(key, "get_lock") == 0) lua_pushcfunction(L, value_get_lock);
  else lua_pushnil(L);
  return 1;
}

int value_newindex(lua_State* L) {
  ArrayRefs& b = check_array(L, 1, kValue, "Value");
  const char* key = lua_tostring(L, 2);
  if (!key || std::strcmp(key, "value") != 0) luaL_argerror(L, 2, "a Value has only the field 'value'");
  set_slot(L, *b.arr, 0, 3, 3);
  return 0;
}

// shared.Value(kind, [init]): init defaults to 0, 0.0 or false.
int shared_value(lua_State* L) {
  core::ScalarKind kind = check_kind(L, 1);
  lua_settop(L, 2);
  auto made = call_core(L, "shared.Value", [&] { return std::make_pair(core::SharedArray(kind, 1), core::RLock()); });
  push_array(L, std::move(made.first), std::move(made.second), kValue);
  if (!lua_isnoneornil(L, 2)) set_slot(L, *check_array(L, -1, kValue, "shared.Value").arr, 0, 2, 2);
  return 1;
}

std::uint64_t check_index(lua_State* L, const core::SharedArray& a, int idx) {
  int ok = 0;
  lua_Integer i = lua_tointegerx(L, idx, &ok);
  if (!ok) luaL_argerror(L, idx, "integer index expected");
  if (i < 1 || static_cast<std::uint64_t>(i) > a.size())
    plua::lua::raise_error(L, "IndexError",
                           "shared.Array: index " + std::to_string(i) + " out of range 1.." + std::to_string(a.size()));
  return static_cast<std::uint64_t>(i - 1);
}

int array_index(lua_State* L) {
  ArrayRefs& b = check_array(L, 1, kArray, "Array");
  if (lua_type(L, 2) == LUA_TSTRING) {
    if (std::strcmp(lua_tostring(L, 2), "get_lock") == 0) lua_pushcfunction(L, value_get_lock);
    else lua_pushnil(L);
    return 1;
  }
  // ipairs stops at the first nil: past the end reads nil, as a Lua sequence.
  int ok = 0;
  lua_Integer i = lua_tointegerx(L, 2, &ok);
  if (ok && static_cast<std::uint64_t>(i) == b.arr->size() + 1) {
    lua_pushnil(L);
    return 1;
  }
  push_slot(L, *b.arr, check_index(L, *b.arr, 2));
  return 1;
}

int array_newindex(lua_State* L) {
  ArrayRefs& b = check_array(L, 1, kArray, "Array");
  set_slot(L, *b.arr, check_index(L, *b.arr, 2), 3, 3);
  return 0;
}

int array_len(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_array(L, 1, kArray, "Array").arr->size()));
  return 1;
}

// shared.Array(kind, size_or_list)
int shared_array(lua_State* L) {
  core::ScalarKind kind = check_kind(L, 1);
  lua_settop(L, 2);
  std::uint64_t n = 0;
  if (lua_istable(L, 2)) {
    n = lua_rawlen(L, 2);
  } else {
    lua_Integer size = luaL_checkinteger(L, 2);
    luaL_argcheck(L, size >= 0, 2, "size must be non-negative");
    n = static_cast<std::uint64_t>(size);
  }
  auto made = call_core(L, "shared.Array", [&] { return std::make_pair(core::SharedArray(kind, n), core::RLock()); });
  push_array(L, std::move(made.first), std::move(made.second), kArray);
  if (lua_istable(L, 2)) {
    core::SharedArray& a = *check_array(L, 3, kArray, "shared.Array").arr;
    for (std::uint64_t i = 0; i < n; ++i) {
      lua_rawgeti(L, 2, static_cast<lua_Integer>(i + 1));
      set_slot(L, a, i, lua_gettop(L), 2, static_cast<lua_Integer>(i + 1));
      lua_pop(L, 1);
    }
  }
  return 1;
}

int array_close(lua_State* L) {
  static_cast<ArrayBox*>(lua_touserdata(L, 1))->reset();
  return 0;
}

int array_gc(lua_State* L) {
  static_cast<ArrayBox*>(lua_touserdata(L, 1))->~ArrayBox();
  return 0;
}

// Value and Array travel as two arena references: the memory and its RLock.
void array_write_ref(lua_State* L, int idx, std::string& out) {
  const char* tname = luaL_testudata(L, idx, kValue) ? kValue : kArray;
  ArrayRefs& b = check_array(L, idx, tname, "shared: send");
  core::SharedRefData a = b.arr->state().ref_retained();
  core::SharedRefData l = b.lock->state().ref_retained();
  out.append(reinterpret_cast<const char*>(&a), sizeof a);
  out.append(reinterpret_cast<const char*>(&l), sizeof l);
}

void array_push(lua_State* L, std::string_view ref, const char* tname) {
  core::SharedRefData a, l;
  if (ref.size() != 2 * sizeof a) luaL_error(L, "shared: malformed reference");
  std::memcpy(&a, ref.data(), sizeof a);
  std::memcpy(&l, ref.data() + sizeof a, sizeof l);
  auto made = call_core(L, "shared", [&] {
    return std::make_pair(core::SharedArray(core::SharedRef<core::SharedArrayHeader>::adopt_ref(a)),
                          core::RLock(core::SharedRef<core::LockState>::adopt_ref(l)));
  });
  push_array(L, std::move(made.first), std::move(made.second), tname);
}
// Identity: the memory's block (its reference comes first).
const void* array_identity(lua_State* L, int idx) noexcept {
  const ArrayRefs& b = static_cast<ArrayBox*>(lua_touserdata(L, idx))->body();
  return b.arr ? b.arr->state().get() : nullptr;
}

void value_push_ref(lua_State* L, std::string_view ref) { array_push(L, ref, kValue); }
void array_push_ref(lua_State* L, std::string_view ref) { array_push(L, ref, kArray); }

void array_drop_ref(std::string_view ref) noexcept {
  core::SharedRefData a, l;
  if (ref.size() != 2 * sizeof a) return;
  std::memcpy(&a, ref.data(), sizeof a);
  std::memcpy(&l, ref.data() + sizeof a, sizeof l);
  try {
    core::SharedRef<core::SharedArrayHeader>::adopt_ref(a);
    core::SharedRef<core::LockState>::adopt_ref(l);
  } catch (const std::exception&) {
  }
}

int array_tostring(lua_State* L) {
  bool is_value = luaL_testudata(L, 1, kValue) != nullptr;
  lua_pushfstring(L, "shared.%s: %p", is_value ? "Value" : "Array", lua_touserdata(L, 1));
  return 1;
}

constexpr luaL_Reg kTableMeta[] = {
    {"__index", table_index}, {"__newindex", table_newindex}, {"__len", table_len},
    {"__pairs", table_pairs}, {"__close", table_close},       {"__gc", table_gc},
    {"__tostring", table_tostring}, {nullptr, nullptr}};
constexpr luaL_Reg kValueMeta[] = {
    {"__index", value_index}, {"__newindex", value_newindex}, {"__close", array_close},
    {"__gc", array_gc},       {"__tostring", array_tostring}, {nullptr, nullptr}};
constexpr luaL_Reg kArrayMeta[] = {
    {"__index", array_index}, {"__newindex", array_newindex}, {"__len", array_len},
    {"__close", array_close}, {"__gc", array_gc},             {"__tostring", array_tostring},
    {nullptr, nullptr}};

constexpr luaL_Reg kFunctions[] = {
    {"table", shared_table}, {"update", shared_update}, {"Value", shared_value},
    {"Array", shared_array}, {nullptr, nullptr}};

void new_meta(lua_State* L, const char* tname, const luaL_Reg* fns) {
  if (luaL_newmetatable(L, tname)) luaL_setfuncs(L, fns, 0);
  lua_pop(L, 1);
}

}  // namespace

int luaopen_plua_shared(lua_State* L) {
  new_meta(L, kTable, kTableMeta);
  new_meta(L, kValue, kValueMeta);
  new_meta(L, kArray, kArrayMeta);
  using plua::lua::SendableClass;
  SendableClass table{"shared", kTable, table_write_ref, table_push_ref, plua::lua::drop_shared_ref<core::SharedTable>, true};
  table.ref_identity = plua::lua::shared_ref_identity<core::SharedTable>;
  table.identity = table_identity;
  plua::lua::register_sendable_class(table);
  SendableClass value{"shared", kValue, array_write_ref, value_push_ref, array_drop_ref};
  value.ref_identity = plua::lua::arena_ref_identity;
  value.identity = array_identity;
  plua::lua::register_sendable_class(value);
  SendableClass array = value;
  array.tname = kArray;
  array.push_ref = array_push_ref;
  plua::lua::register_sendable_class(array);
  luaL_newlib(L, kFunctions);
  lua_pushliteral(L, "IndexError");
  lua_setfield(L, -2, "IndexError");
  return 1;
}
