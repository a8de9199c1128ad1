#include "pretty_printer.hpp"

#include <algorithm>
#include <cstdio>
#include <string_view>
#include <vector>

namespace plua::host {
namespace {

constexpr const char* kReserved[] = {
    "and",  "break", "do",  "else", "elseif", "end",    "false", "for",  "function", "goto", "if",
    "in",   "local", "nil", "not",  "or",     "repeat", "return", "then", "true",    "until", "while"};

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(s[0])) return false;
  for (char c : s)
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  return std::none_of(std::begin(kReserved), std::end(kReserved),
                      [&](const char* r) { return s == r; });
}

// A hash-part entry, rendered, with what it sorts by (numbers, then strings, then the rest).
struct Entry {
  int rank;
  lua_Number number;
  std::string key_text;
  std::string text;
};

class Printer {
 public:
  Printer(lua_State* L, const PrettyOptions& options) : L_(L), options_(options) {}

  std::string value(int idx, int depth, std::size_t indent) {
    idx = lua_absindex(L_, idx);
    switch (lua_type(L_, idx)) {
      case LUA_TSTRING: {
        size_t len = 0;
        const char* s = lua_tolstring(L_, idx, &len);
        std::string_view view(s, len);
        if (depth == 0 || len <= options_.max_string) return quote(view);
        return quote(view.substr(0, options_.max_string)) + "... (" + std::to_string(len) + " bytes)";
      }
      case LUA_TTABLE:
        if (luaL_getmetafield(L_, idx, "__tostring") == LUA_TNIL) return table(idx, depth, indent);
        lua_pop(L_, 1);
        return tostring(idx);
      default:
        return tostring(idx);
    }
  }

 private:
  std::string tostring(int idx) {
    size_t len = 0;
    const char* s = luaL_tolstring(L_, idx, &len);
    std::string text(s, len);
    lua_pop(L_, 1);
    return text;
  }

  std::string key(int idx) {
    if (lua_type(L_, idx) == LUA_TSTRING) {
      size_t len = 0;
      const char* s = lua_tolstring(L_, idx, &len);
      if (is_identifier({s, len})) return std::string(s, len);
      return "[" + quote({s, len}) + "]";
    }
    return "[" + tostring(idx) + "]";
  }

  std::string table(int idx, int depth, std::size_t indent) {
    const void* self = lua_topointer(L_, idx);
    if (std::find(path_.begin(), path_.end(), self) != path_.end()) return "<cycle>";
    if (depth >= options_.max_depth || shown_ >= options_.max_total) return "{...}";
    path_.push_back(self);
    luaL_checkstack(L_, 4, "pretty printer");

    std::vector<std::string> items;
    std::size_t hidden = 0;
    auto room = [&] { return items.size() < static_cast<std::size_t>(options_.max_items) &&
                             shown_ < options_.max_total; };
    // The sequence part 1..n first, in order.
    lua_Integer n = 0;
    while (lua_rawgeti(L_, idx, n + 1) != LUA_TNIL) {
      ++n;
      if (room()) {
        ++shown_;
        items.push_back(value(-1, depth + 1, indent + 2));
      } else {
        ++hidden;
      }
      lua_pop(L_, 1);
    }
    lua_pop(L_, 1);
    // Then the other keys, sorted so that the output does not depend on hashing.
    std::vector<Entry> entries;
    lua_pushnil(L_);
    while (lua_next(L_, idx) != 0) {
      bool in_sequence = lua_isinteger(L_, -2) && lua_tointeger(L_, -2) >= 1 && lua_tointeger(L_, -2) <= n;
      if (!in_sequence) {
        if (room() && items.size() + entries.size() < static_cast<std::size_t>(options_.max_items)) {
          ++shown_;
          Entry e;
          int kt = lua_type(L_, -2);
          e.rank = kt == LUA_TNUMBER ? 0 : kt == LUA_TSTRING ? 1 : 2;
          e.number = kt == LUA_TNUMBER ? lua_tonumber(L_, -2) : 0;
          e.key_text = e.rank == 1 ? std::string(lua_tostring(L_, -2)) : key(-2);
          e.text = key(-2) + " = " + value(-1, depth + 1, indent + 2);
          entries.push_back(std::move(e));
        } else {
          ++hidden;
        }
      }
      lua_pop(L_, 1);
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      if (a.rank != b.rank) return a.rank < b.rank;
      if (a.rank == 0 && a.number != b.number) return a.number < b.number;
      return a.key_text < b.key_text;
    });
    for (auto& e : entries) items.push_back(std::move(e.text));
    if (hidden > 0) items.push_back("... (" + std::to_string(hidden) + " more)");
    path_.pop_back();

    if (items.empty()) return "{}";
    std::string line = "{";
    bool multiline = false;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i > 0) line += ", ";
      line += items[i];
      multiline = multiline || items[i].find('\n') != std::string::npos;
    }
    line += "}";
    if (!multiline && indent + line.size() <= options_.width) return line;
    // Too wide for one line: one entry a line, indented under the brace.
    std::string pad(indent + 2, ' ');
    std::string block = "{\n";
    for (const auto& item : items) block += pad + item + ",\n";
    block += std::string(indent, ' ') + "}";
    return block;
  }

  lua_State* L_;
  const PrettyOptions& options_;
  std::vector<const void*> path_;  // tables being printed, outermost first
  int shown_ = 0;
};

}  // namespace

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string pretty(lua_State* L, int idx, const PrettyOptions& options) {
  return Printer(L, options).value(idx, 0, 0);
}

}  // namespace plua::host
