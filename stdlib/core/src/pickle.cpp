#include "plua/core/pickle.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <unordered_map>

namespace plua::core::pickle {
namespace {

// ---- the whitelist -------------------------------------------------------

struct AllowedClass {
  const char* module;
  const char* name;
};

// Exception classes that may appear in a pickle, under every module name
// Python 3.11-3.13 writes them with (protocol 2 maps builtins to Python 2 names).
constexpr const char* kBuiltinExceptions[] = {
    "Exception",        "KeyError",          "ValueError",     "TypeError",
    "AttributeError",   "EOFError",          "IndexError",     "RuntimeError",
    "AssertionError",   "NotImplementedError", "ZeroDivisionError", "TimeoutError",
    "LookupError",      "ArithmeticError",   "OverflowError",  "StopIteration",
    "OSError",          "ConnectionError",   "BrokenPipeError", "PermissionError",
    "FileNotFoundError", "MemoryError",      "NameError",      "IOError",
    "EnvironmentError", "StandardError",
};
constexpr const char* kBuiltinModules[] = {"builtins", "__builtin__", "exceptions"};
constexpr AllowedClass kOtherExceptions[] = {
    {"_queue", "Empty"},
    {"queue", "Empty"},
    {"Queue", "Empty"},
    {"queue", "Full"},
    {"Queue", "Full"},
    {"multiprocessing.managers", "RemoteError"},
    {"multiprocessing.context", "AuthenticationError"},
    {"multiprocessing", "AuthenticationError"},
    {"multiprocessing.context", "ProcessError"},
    {"multiprocessing.context", "TimeoutError"},
    {"multiprocessing.context", "BufferTooShort"},
};

bool is_builtin_module(std::string_view module) {
  for (const char* m : kBuiltinModules)
    if (module == m) return true;
  return false;
}

// ---- decoding ------------------------------------------------------------

// A value under construction; the memo may share nodes, so they live in an arena.
struct Node {
  enum Kind { kNone, kBool, kInt, kFloat, kStr, kBytes, kTuple, kList, kDict, kException, kGlobal };
  Kind kind = kNone;
  bool boolean = false;
  std::int64_t integer = 0;
  double number = 0;
  std::string text;  // str/bytes contents; a global's or exception's module
  std::string name;  // a global's or exception's class name
  std::vector<Node*> items;  // tuple/list items, dict keys and values interleaved, exception args
};

const char* kind_name(Node::Kind k) {
  switch (k) {
    case Node::kNone: return "None";
    case Node::kBool: return "bool";
    case Node::kInt: return "int";
    case Node::kFloat: return "float";
    case Node::kStr: return "str";
    case Node::kBytes: return "bytes";
    case Node::kTuple: return "tuple";
    case Node::kList: return "list";
    case Node::kDict: return "dict";
    case Node::kException: return "exception";
    case Node::kGlobal: return "class";
  }
  return "?";
}

[[noreturn]] void fail(const std::string& what) { throw PickleError("pickle: " + what); }

class Decoder {
 public:
  Decoder(std::string_view data, const Limits& limits) : data_(data), limits_(limits) {}

  Object run() {
    for (;;) {
      unsigned char op = byte();
      if (op == '.') break;
      step(op);
    }
    if (stack_.size() != 1 || !marks_.empty()) fail("malformed (stack not balanced at STOP)");
    if (pos_ != data_.size()) fail("trailing bytes after STOP");
    std::size_t budget = limits_.max_objects;
    return convert(stack_.back(), 0, budget);
  }

 private:
  // Reading primitives; every read is bounds-checked.
  const char* take(std::uint64_t n) {
    if (n > data_.size() - pos_) fail("truncated data");
    const char* p = data_.data() + pos_;
    pos_ += static_cast<std::size_t>(n);
    return p;
  }
  unsigned char byte() { return static_cast<unsigned char>(*take(1)); }
  std::uint64_t le(int n) {
    const char* p = take(static_cast<std::uint64_t>(n));
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
  }
  std::string_view line() {
    std::size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > 256) fail("truncated or overlong GLOBAL name");
    std::string_view s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  Node* make(Node::Kind kind) {
    if (arena_.size() >= limits_.max_objects) fail("too many objects");
    Node& n = arena_.emplace_back();
    n.kind = kind;
    return &n;
  }
  void push(Node* n) { stack_.push_back(n); }
  Node* pop() {
    if (stack_.size() <= floor()) fail("malformed (stack underflow)");
    Node* n = stack_.back();
    stack_.pop_back();
    return n;
  }
  Node* top() {
    if (stack_.size() <= floor()) fail("malformed (stack underflow)");
    return stack_.back();
  }
  // Items above the topmost MARK are the only ones an opcode may pop.
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Node*> pop_mark() {
    if (marks_.empty()) fail("malformed (no MARK)");
    std::size_t at = marks_.back();
    marks_.pop_back();
    std::vector<Node*> items(stack_.begin() + static_cast<std::ptrdiff_t>(at), stack_.end());
    stack_.resize(at);
    return items;
  }
  Node* container(Node::Kind kind, const char* op) {
    Node* n = top();
    if (n->kind != kind) fail(std::string(op) + " on a " + kind_name(n->kind));
    return n;
  }

  Node* string_node(Node::Kind kind, std::uint64_t n) {
    Node* s = make(kind);
    s->text.assign(take(n), static_cast<std::size_t>(n));
    return s;
  }
  Node* int_node(std::int64_t v) {
    Node* n = make(Node::kInt);
    n->integer = v;
    return n;
  }
  // LONG1/LONG4: little-endian two's complement of n bytes; must fit int64.
  Node* long_node(std::uint64_t n) {
    const char* p = take(n);
    if (n == 0) return int_node(0);
    bool negative = static_cast<unsigned char>(p[n - 1]) & 0x80;
    unsigned char fill = negative ? 0xff : 0x00;
    for (std::uint64_t i = 8; i < n; ++i)
      if (static_cast<unsigned char>(p[i]) != fill) fail("integer does not fit in 64 bits");
    std::uint64_t v = negative ? ~std::uint64_t{0} : 0;
    std::uint64_t used = n < 8 ? n : 8;
    for (std::uint64_t i = 0; i < used; ++i) {
      v &= ~(std::uint64_t{0xff} << (8 * i));
      v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    }
    if (n > 8 && ((v >> 63) != 0) != negative) fail("integer does not fit in 64 bits");
    return int_node(static_cast<std::int64_t>(v));
  }

  Node* global(std::string module, std::string name) {
    bool allowed = is_allowed_exception(module, name) ||
                   (module == "_codecs" && name == "encode") ||
                   (is_builtin_module(module) && name == "bytes");
    if (!allowed) fail("refusing to load global " + module + "." + name);
    Node* g = make(Node::kGlobal);
    g->text = std::move(module);
    g->name = std::move(name);
    return g;
  }

  // REDUCE: only whitelisted exception classes and the two bytes constructors.
  Node* reduce(Node* callable, Node* args) {
    if (callable->kind != Node::kGlobal) fail("REDUCE of a non-class");
    if (args->kind != Node::kTuple) fail("REDUCE arguments are not a tuple");
    if (callable->name == "encode") {
      // Protocol 2 writes bytes as _codecs.encode(latin1 text, 'latin1').
      if (args->items.size() != 2 || args->items[0]->kind != Node::kStr ||
          args->items[1]->kind != Node::kStr || args->items[1]->text != "latin1")
        fail("unsupported _codecs.encode call");
      Node* b = make(Node::kBytes);
      const std::string& t = args->items[0]->text;
      for (std::size_t i = 0; i < t.size(); ++i) {
        auto c = static_cast<unsigned char>(t[i]);
        if (c < 0x80) {
          b->text.push_back(static_cast<char>(c));
        } else if ((c == 0xc2 || c == 0xc3) && i + 1 < t.size()) {
          b->text.push_back(static_cast<char>(((c & 0x03) << 6) | (t[++i] & 0x3f)));
        } else {
          fail("_codecs.encode text is not latin1");
        }
      }
      return b;
    }
    if (callable->name == "bytes") {
      if (!args->items.empty()) fail("unsupported bytes() call");
      return make(Node::kBytes);
    }
    Node* e = make(Node::kException);
    e->text = callable->text;
    e->name = callable->name;
    e->items = args->items;
    return e;
  }

  void step(unsigned char op) {
    switch (op) {
      case 0x80: {  // PROTO
        unsigned v = byte();
        if (v > 5) fail("unsupported protocol " + std::to_string(v));
        break;
      }
      case 0x95: {  // FRAME: a hint for buffering; the data follows inline
        std::uint64_t n = le(8);
        if (n > data_.size() - pos_) fail("truncated frame");
        break;
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '0': pop(); break;
      case '1': pop_mark(); break;
      case '2': push(top()); break;
      case 'N': push(make(Node::kNone)); break;
      case 0x88:
      case 0x89: {
        Node* b = make(Node::kBool);
        b->boolean = op == 0x88;
        push(b);
        break;
      }
      case 'J': push(int_node(static_cast<std::int32_t>(static_cast<std::uint32_t>(le(4))))); break;
      case 'K': push(int_node(byte())); break;
      case 'M': push(int_node(static_cast<std::int64_t>(le(2)))); break;
      case 0x8a: push(long_node(byte())); break;
      case 0x8b: {
        auto n = static_cast<std::int32_t>(static_cast<std::uint32_t>(le(4)));
        if (n < 0) fail("negative LONG4 length");
        push(long_node(static_cast<std::uint64_t>(n)));
        break;
      }
      case 'G': {
        const char* p = take(8);
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<unsigned char>(p[i]);
        Node* f = make(Node::kFloat);
        f->number = std::bit_cast<double>(bits);
        push(f);
        break;
      }
      case 0x8c: push(string_node(Node::kStr, byte())); break;
      case 'X': push(string_node(Node::kStr, le(4))); break;
      case 0x8d: push(string_node(Node::kStr, le(8))); break;
      case 'C': push(string_node(Node::kBytes, byte())); break;
      case 'B': push(string_node(Node::kBytes, le(4))); break;
      case 0x8e: push(string_node(Node::kBytes, le(8))); break;
      case ')': push(make(Node::kTuple)); break;
      case 't': {
        Node* t = make(Node::kTuple);
        t->items = pop_mark();
        push(t);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {
        std::size_t n = op - 0x84u;
        if (stack_.size() < floor() + n) fail("malformed (stack underflow)");
        Node* t = make(Node::kTuple);
        t->items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push(t);
        break;
      }
      case ']': push(make(Node::kList)); break;
      case 'l': {
        Node* l = make(Node::kList);
        l->items = pop_mark();
        push(l);
        break;
      }
      case 'a': {
        Node* v = pop();
        container(Node::kList, "APPEND")->items.push_back(v);
        break;
      }
      case 'e': {
        std::vector<Node*> items = pop_mark();
        Node* l = container(Node::kList, "APPENDS");
        l->items.insert(l->items.end(), items.begin(), items.end());
        break;
      }
      case '}': push(make(Node::kDict)); break;
      case 'd': {
        std::vector<Node*> items = pop_mark();
        if (items.size() % 2) fail("DICT with an odd number of items");
        Node* d = make(Node::kDict);
        d->items = std::move(items);
        push(d);
        break;
      }
      case 's': {
        Node* v = pop();
        Node* k = pop();
        Node* d = container(Node::kDict, "SETITEM");
        d->items.push_back(k);
        d->items.push_back(v);
        break;
      }
      case 'u': {
        std::vector<Node*> items = pop_mark();
        if (items.size() % 2) fail("SETITEMS with an odd number of items");
        Node* d = container(Node::kDict, "SETITEMS");
        d->items.insert(d->items.end(), items.begin(), items.end());
        break;
      }
      case 0x94: memo_[memo_.size()] = top(); break;
      case 'q': memo_[byte()] = top(); break;
      case 'r': memo_[le(4)] = top(); break;
      case 'h': push(memo_get(byte())); break;
      case 'j': push(memo_get(le(4))); break;
      case 'c': {
        std::string module(line());
        std::string name(line());
        push(global(std::move(module), std::move(name)));
        break;
      }
      case 0x93: {
        Node* name = pop();
        Node* module = pop();
        if (name->kind != Node::kStr || module->kind != Node::kStr)
          fail("STACK_GLOBAL of non-strings");
        push(global(module->text, name->text));
        break;
      }
      case 'R': {
        Node* args = pop();
        Node* callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': {
        // Exceptions with attributes pickle their __dict__ as BUILD state; kept out.
        Node* state = pop();
        (void)state;
        if (top()->kind != Node::kException) fail("BUILD of a " + std::string(kind_name(top()->kind)));
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("opcode ") + hex + " is not accepted");
      }
    }
  }

  Node* memo_get(std::uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key " + std::to_string(key) + " is not defined");
    return it->second;
  }

  Object convert(const Node* n, std::size_t depth, std::size_t& budget) {
    if (budget == 0) fail("too many objects (shared references expand too far)");
    --budget;
    if (depth > limits_.max_depth) fail("nested deeper than " + std::to_string(limits_.max_depth));
    auto convert_all = [&](const std::vector<Node*>& items) {
      std::vector<Object> out;
      out.reserve(items.size());
      for (const Node* item : items) out.push_back(convert(item, depth + 1, budget));
      return out;
    };
    switch (n->kind) {
      case Node::kNone: return Object();
      case Node::kBool: return Object(n->boolean);
      case Node::kInt: return Object(n->integer);
      case Node::kFloat: return Object(n->number);
      case Node::kStr: return str(n->text);
      case Node::kBytes: return bytes(n->text);
      case Node::kTuple: return Object(Tuple{convert_all(n->items)});
      case Node::kList: return Object(List{convert_all(n->items)});
      case Node::kDict: {
        Dict d;
        std::unordered_map<std::string, std::size_t> index;
        for (std::size_t i = 0; i + 1 < n->items.size(); i += 2) {
          Object k = convert(n->items[i], depth + 1, budget);
          Object v = convert(n->items[i + 1], depth + 1, budget);
          std::string key = dumps(k);
          auto [it, fresh] = index.emplace(std::move(key), d.items.size());
          if (fresh)
            d.items.emplace_back(std::move(k), std::move(v));
          else
            d.items[it->second].second = std::move(v);
        }
        return Object(std::move(d));
      }
      case Node::kException:
        return Object(Exception{n->text, n->name, convert_all(n->items)});
      case Node::kGlobal: fail("a bare class is not a value");
    }
    fail("corrupt node");
  }

  std::string_view data_;
  Limits limits_;
  std::size_t pos_ = 0;
  // A deque keeps nodes in place as it grows and allocates them in blocks.
  std::deque<Node> arena_;
  std::vector<Node*> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, Node*> memo_;
};

// ---- encoding ------------------------------------------------------------

class Encoder {
 public:
  std::string run(const Object& obj) {
    out_ += "\x80\x04";
    put(obj, 0);
    out_ += '.';
    return std::move(out_);
  }

 private:
  void raw_le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void op(unsigned char c) { out_.push_back(static_cast<char>(c)); }
  void text(unsigned char short_op, unsigned char long_op, unsigned char huge_op,
            const std::string& s) {
    if (s.size() < 256) {
      op(short_op);
      raw_le(s.size(), 1);
    } else if (s.size() <= 0xffffffffu) {
      op(long_op);
      raw_le(s.size(), 4);
    } else {
      op(huge_op);
      raw_le(s.size(), 8);
    }
    out_ += s;
  }
  void integer(std::int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      raw_le(static_cast<std::uint64_t>(v), 1);
    } else if (v >= 0 && v < 65536) {
      op('M');
      raw_le(static_cast<std::uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      raw_le(static_cast<std::uint32_t>(static_cast<std::int32_t>(v)), 4);
    } else {
      // LONG1 with the fewest bytes that keep the sign, as Python writes it.
      auto u = static_cast<std::uint64_t>(v);
      int n = 8;
      while (n > 1) {
        std::uint64_t top_byte = (u >> (8 * (n - 1))) & 0xff;
        std::uint64_t next_sign = (u >> (8 * (n - 1) - 1)) & 1;
        if ((v >= 0 && top_byte == 0 && !next_sign) || (v < 0 && top_byte == 0xff && next_sign))
          --n;
        else
          break;
      }
      op(0x8a);
      raw_le(static_cast<std::uint64_t>(n), 1);
      raw_le(u, n);
    }
  }
  void items(const std::vector<Object>& v, std::size_t depth) {
    for (const Object& o : v) put(o, depth + 1);
  }

  void put(const Object& obj, std::size_t depth) {
    if (depth > Limits{}.max_depth) fail("value nested deeper than " + std::to_string(Limits{}.max_depth));
    const auto& s = obj.storage();
    if (std::holds_alternative<std::monostate>(s)) {
      op('N');
    } else if (auto* b = std::get_if<bool>(&s)) {
      op(*b ? 0x88 : 0x89);
    } else if (auto* i = std::get_if<std::int64_t>(&s)) {
      integer(*i);
    } else if (auto* d = std::get_if<double>(&s)) {
      op('G');
      auto bits = std::bit_cast<std::uint64_t>(*d);
      for (int k = 7; k >= 0; --k) out_.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
    } else if (auto* st = std::get_if<Str>(&s)) {
      text(0x8c, 'X', 0x8d, st->text);
    } else if (auto* by = std::get_if<Bytes>(&s)) {
      text('C', 'B', 0x8e, by->data);
    } else if (auto* t = std::get_if<Tuple>(&s)) {
      tuple_of(t->items, depth);
    } else if (auto* l = std::get_if<List>(&s)) {
      op(']');
      // Batches of 1000, as Python writes them, keep the unpickler's stack small.
      for (std::size_t at = 0; at < l->items.size(); at += 1000) {
        op('(');
        for (std::size_t k = at; k < l->items.size() && k < at + 1000; ++k) put(l->items[k], depth + 1);
        op('e');
      }
    } else if (auto* dict = std::get_if<Dict>(&s)) {
      op('}');
      for (std::size_t at = 0; at < dict->items.size(); at += 1000) {
        op('(');
        for (std::size_t k = at; k < dict->items.size() && k < at + 1000; ++k) {
          put(dict->items[k].first, depth + 1);
          put(dict->items[k].second, depth + 1);
        }
        op('u');
      }
    } else if (auto* e = std::get_if<Exception>(&s)) {
      if (!is_allowed_exception(e->module, e->name))
        fail("exception class " + e->module + "." + e->name + " is not in the whitelist");
      text(0x8c, 'X', 0x8d, e->module);
      text(0x8c, 'X', 0x8d, e->name);
      op(0x93);
      tuple_of(e->args, depth);
      op('R');
    }
  }
  void tuple_of(const std::vector<Object>& v, std::size_t depth) {
    switch (v.size()) {
      case 0: op(')'); break;
      case 1: case 2: case 3:
        items(v, depth);
        op(static_cast<unsigned char>(0x84 + v.size()));
        break;
      default:
        op('(');
        items(v, depth);
        op('t');
    }
  }

  std::string out_;
};

void append_repr(std::string& out, const Object& obj);

void append_quoted(std::string& out, const std::string& s, bool is_bytes) {
  if (is_bytes) out += 'b';
  out += '\'';
  for (unsigned char c : s) {
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f || (is_bytes && c >= 0x80)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\'';
}

void append_seq(std::string& out, const std::vector<Object>& v, const char* open, const char* close,
                bool one_comma) {
  out += open;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    append_repr(out, v[i]);
  }
  if (one_comma && v.size() == 1) out += ',';
  out += close;
}

void append_repr(std::string& out, const Object& obj) {
  const auto& s = obj.storage();
  if (std::holds_alternative<std::monostate>(s)) {
    out += "None";
  } else if (auto* b = std::get_if<bool>(&s)) {
    out += *b ? "True" : "False";
  } else if (auto* i = std::get_if<std::int64_t>(&s)) {
    out += std::to_string(*i);
  } else if (auto* d = std::get_if<double>(&s)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", *d);
    out += buf;
  } else if (auto* st = std::get_if<Str>(&s)) {
    append_quoted(out, st->text, false);
  } else if (auto* by = std::get_if<Bytes>(&s)) {
    append_quoted(out, by->data, true);
  } else if (auto* t = std::get_if<Tuple>(&s)) {
    append_seq(out, t->items, "(", ")", true);
  } else if (auto* l = std::get_if<List>(&s)) {
    append_seq(out, l->items, "[", "]", false);
  } else if (auto* dict = std::get_if<Dict>(&s)) {
    out += '{';
    for (std::size_t k = 0; k < dict->items.size(); ++k) {
      if (k) out += ", ";
      append_repr(out, dict->items[k].first);
      out += ": ";
      append_repr(out, dict->items[k].second);
    }
    out += '}';
  } else if (auto* e = std::get_if<Exception>(&s)) {
    out += e->name;
    append_seq(out, e->args, "(", ")", false);
  }
}

std::string value_key(const Value& v) {
  // Canonical bytes of a map key, for spotting duplicates.
  const auto& s = v.storage();
  if (auto* b = std::get_if<bool>(&s)) return *b ? "bT" : "bF";
  if (auto* i = std::get_if<std::int64_t>(&s)) return "i" + std::to_string(*i);
  if (auto* d = std::get_if<double>(&s)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "f%a", *d);
    return buf;
  }
  if (auto* str = std::get_if<std::string>(&s)) return "s" + *str;
  return {};
}

Value to_value_at(const Object& obj, std::size_t depth) {
  if (depth > Limits{}.max_depth) fail("value nested too deep");
  const auto& s = obj.storage();
  if (std::holds_alternative<std::monostate>(s)) return Value();
  if (auto* b = std::get_if<bool>(&s)) return Value(*b);
  if (auto* i = std::get_if<std::int64_t>(&s)) return Value(*i);
  if (auto* d = std::get_if<double>(&s)) return Value(*d);
  if (auto* st = std::get_if<Str>(&s)) return Value(st->text);
  if (auto* by = std::get_if<Bytes>(&s)) return Value(by->data);
  auto array = [&](const std::vector<Object>& items) {
    Value::Array a;
    a.reserve(items.size());
    for (const Object& o : items) a.push_back(to_value_at(o, depth + 1));
    return Value(std::move(a));
  };
  if (auto* t = std::get_if<Tuple>(&s)) return array(t->items);
  if (auto* l = std::get_if<List>(&s)) return array(l->items);
  if (auto* dict = std::get_if<Dict>(&s)) {
    Value::Map m;
    std::unordered_map<std::string, std::size_t> index;
    for (const auto& [k, v] : dict->items) {
      Value key = to_value_at(k, depth + 1);
      std::string canon = value_key(key);
      if (canon.empty()) fail("a dict key of type " + repr(k).substr(0, 40) + " cannot be a plua key");
      Value val = to_value_at(v, depth + 1);
      auto [it, fresh] = index.emplace(std::move(canon), m.size());
      if (fresh)
        m.emplace_back(std::move(key), std::move(val));
      else
        m[it->second].second = std::move(val);
    }
    return Value(std::move(m));
  }
  auto& e = std::get<Exception>(s);
  fail("an exception (" + e.name + ") cannot be carried as a plua value");
}

Object from_value_at(const Value& v, std::size_t depth) {
  if (depth > Limits{}.max_depth) fail("value nested too deep");
  const auto& s = v.storage();
  if (std::holds_alternative<std::monostate>(s)) return Object();
  if (auto* b = std::get_if<bool>(&s)) return Object(*b);
  if (auto* i = std::get_if<std::int64_t>(&s)) return Object(*i);
  if (auto* d = std::get_if<double>(&s)) return Object(*d);
  if (auto* st = std::get_if<std::string>(&s)) return is_valid_utf8(*st) ? str(*st) : bytes(*st);
  if (auto* a = std::get_if<Value::Array>(&s)) {
    List l;
    l.items.reserve(a->size());
    for (const Value& item : *a) l.items.push_back(from_value_at(item, depth + 1));
    return Object(std::move(l));
  }
  Dict d;
  for (const auto& [k, val] : std::get<Value::Map>(s))
    d.items.emplace_back(from_value_at(k, depth + 1), from_value_at(val, depth + 1));
  return Object(std::move(d));
}

}  // namespace

Object tuple(std::vector<Object> items) { return Object(Tuple{std::move(items)}); }

Object loads(std::string_view data, const Limits& limits) { return Decoder(data, limits).run(); }

std::string dumps(const Object& obj) { return Encoder().run(obj); }

bool is_allowed_exception(std::string_view module, std::string_view name) {
  if (is_builtin_module(module)) {
    for (const char* n : kBuiltinExceptions)
      if (name == n) return true;
    return false;
  }
  for (const AllowedClass& c : kOtherExceptions)
    if (module == c.module && name == c.name) return true;
  return false;
}

std::pair<std::string, std::string> exception_class_for_kind(std::string_view kind) {
  if (kind == "Empty") return {"_queue", "Empty"};
  if (kind == "Full") return {"queue", "Full"};
  if (kind == "RemoteError") return {"multiprocessing.managers", "RemoteError"};
  if (kind == "AuthenticationError") return {"multiprocessing.context", "AuthenticationError"};
  for (const char* n : kBuiltinExceptions)
    if (kind == n) return {"builtins", std::string(kind)};
  return {"builtins", "Exception"};
}

std::string exception_message(const Exception& e) {
  if (e.args.empty()) return {};
  if (e.args.size() == 1) {
    if (const std::string* s = e.args[0].str()) {
      // Python's KeyError quotes its key; everything else prints it bare.
      if (e.name == "KeyError") return repr(e.args[0]);
      return *s;
    }
    return repr(e.args[0]);
  }
  return repr(Object(Tuple{e.args}));
}

bool is_valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    std::uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < static_cast<std::size_t>(len)) return false;
    for (int k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += static_cast<std::size_t>(len);
  }
  return true;
}

Object from_value(const Value& v) { return from_value_at(v, 0); }
Value to_value(const Object& obj) { return to_value_at(obj, 0); }

std::string repr(const Object& obj) {
  std::string out;
  append_repr(out, obj);
  return out;
}

}  // namespace plua::core::pickle
