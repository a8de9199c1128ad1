#include "completion.hpp"

#include <algorithm>
#include <cstring>

namespace plua::host {
namespace {

constexpr const char* kKeywords[] = {
    "and",   "break", "do",    "else", "elseif", "end",   "false", "for",  "function", "goto", "if",
    "in",    "local", "nil",   "not",  "or",     "repeat", "return", "then", "true",   "until", "while"};

// Metatable __index chains longer than this are not followed (they may loop).
constexpr int kMaxIndexChain = 8;

struct Request {
  std::string_view word;
  std::vector<std::string>* out;
};

bool is_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Pushes t's metatable's __index if that is a table; returns false (pushing nothing) otherwise.
bool push_index_table(lua_State* L, int idx) {
  if (!lua_getmetatable(L, idx)) return false;
  lua_pushliteral(L, "__index");
  lua_rawget(L, -2);
  lua_remove(L, -2);
  if (lua_istable(L, -1)) return true;
  lua_pop(L, 1);
  return false;
}

// Adds the string keys of the table at idx that start with `prefix`.
void add_keys(lua_State* L, int idx, std::string_view head, std::string_view prefix, bool methods_only,
              std::vector<std::string>& out) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t len = 0;
      const char* k = lua_tolstring(L, -2, &len);
      std::string_view key(k, len);
      if (is_name(key) && key.substr(0, prefix.size()) == prefix &&
          (!methods_only || lua_type(L, -1) == LUA_TFUNCTION))
        out.push_back(std::string(head) + std::string(key));
    }
    lua_pop(L, 1);
  }
}

// Adds the keys of the value on top and of its __index tables; pops the value.
void add_fields(lua_State* L, std::string_view head, std::string_view prefix, bool methods_only,
                std::vector<std::string>& out) {
  for (int depth = 0; depth < kMaxIndexChain; ++depth) {
    if (lua_istable(L, -1)) add_keys(L, -1, head, prefix, methods_only, out);
    bool more = push_index_table(L, -1);
    lua_remove(L, more ? -2 : -1);
    if (!more) return;
  }
  lua_pop(L, 1);
}

// Looks up one field of the value on top the way completion may: raw access,
// then __index tables. Replaces the value with the field (or nil).
void get_field(lua_State* L, std::string_view name) {
  for (int depth = 0; depth < kMaxIndexChain; ++depth) {
    if (lua_istable(L, -1)) {
      lua_pushlstring(L, name.data(), name.size());
      if (lua_rawget(L, -2) != LUA_TNIL) {
        lua_remove(L, -2);
        return;
      }
      lua_pop(L, 1);
    }
    bool more = push_index_table(L, -1);
    lua_remove(L, more ? -2 : -1);
    if (!more) {
      lua_pushnil(L);
      return;
    }
  }
  lua_pop(L, 1);
  lua_pushnil(L);
}

int collect(lua_State* L) {
  auto* request = static_cast<Request*>(lua_touserdata(L, 1));
  std::string_view word = request->word;
  auto& out = *request->out;
  auto last = word.find_last_of(".:");
  if (last == std::string_view::npos) {
    lua_pushglobaltable(L);
    add_fields(L, "", word, false, out);
    for (const char* k : kKeywords)
      if (std::string_view(k).substr(0, word.size()) == word) out.emplace_back(k);
    return 0;
  }
  // Walk the dotted path before the last separator from the globals.
  std::string_view path = word.substr(0, last);
  lua_pushglobaltable(L);
  std::size_t start = 0;
  for (;;) {
    auto dot = path.find('.', start);
    std::string_view name = path.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!is_name(name)) return 0;  // e.g. "a:b.c" or "x..y": nothing sensible to offer
    get_field(L, name);
    if (lua_isnil(L, -1)) return 0;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  add_fields(L, word.substr(0, last + 1), word.substr(last + 1), word[last] == ':', out);
  return 0;
}

}  // namespace

std::vector<std::string> completions(lua_State* L, std::string_view word) {
  std::vector<std::string> out;
  Request request{word, &out};
  int top = lua_gettop(L);
  // Protected: completion runs inside readline, where no Lua error may unwind.
  if (lua_checkstack(L, 8)) {
    lua_pushcfunction(L, collect);
    lua_pushlightuserdata(L, &request);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) out.clear();
  }
  lua_settop(L, top);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace plua::host
