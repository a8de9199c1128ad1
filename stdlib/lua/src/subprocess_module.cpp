// Lua binding of the `subprocess` module (Python's subprocess): run, call,
// check_call, check_output and Popen over the core spawner and communicator.
// Popen's stdin/stdout/stderr are genuine Lua files (io's FILE* userdata).
#include <fcntl.h>
#include <signal.h>
#include <string.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "plua/core/communicator.hpp"
#include "plua/core/pipe_writer.hpp"
#include "plua/core/sigpipe_guard.hpp"
#include "plua/core/subprocess.hpp"
#include "plua/core/subprocess_run.hpp"
#include "plua/lua/errors.hpp"

namespace {

using plua::core::Communicator;
using plua::core::Deadline;
using plua::core::SpawnOptions;
using plua::core::StdioSpec;
using plua::core::Subprocess;

constexpr const char* kPopenMeta = "plua.subprocess.Popen";
constexpr const char* kCompletedMeta = "plua.subprocess.CompletedProcess";

// Python's values for the special stdio arguments.
constexpr lua_Integer kPipe = -1;
constexpr lua_Integer kStdoutRedirect = -2;
constexpr lua_Integer kDevNull = -3;

// The error kinds this module raises.
constexpr const char* kTimeoutExpired = "TimeoutExpired";
constexpr const char* kCalledProcessError = "CalledProcessError";

// Options each entry point accepts (Python's keyword arguments).
enum Option : unsigned {
  kOptStdin = 1u << 0,
  kOptStdout = 1u << 1,
  kOptStderr = 1u << 2,
  kOptCwd = 1u << 3,
  kOptEnv = 1u << 4,
  kOptShell = 1u << 5,
  kOptText = 1u << 6,
  kOptInput = 1u << 7,
  kOptCapture = 1u << 8,
  kOptTimeout = 1u << 9,
  kOptCheck = 1u << 10,
};
constexpr unsigned kPopenOptions = kOptStdin | kOptStdout | kOptStderr | kOptCwd | kOptEnv | kOptShell | kOptText;
constexpr unsigned kCallOptions = kPopenOptions | kOptTimeout;
constexpr unsigned kRunOptions = kCallOptions | kOptInput | kOptCapture | kOptCheck;
constexpr unsigned kCheckOutputOptions = kRunOptions & ~(kOptStdout | kOptCapture | kOptCheck);

struct OptionName {
  const char* name;
  Option option;
};
constexpr OptionName kOptionNames[] = {
    {"stdin", kOptStdin},   {"stdout", kOptStdout},   {"stderr", kOptStderr},
    {"cwd", kOptCwd},       {"env", kOptEnv},         {"shell", kOptShell},
    {"text", kOptText},     {"universal_newlines", kOptText},
    {"input", kOptInput},   {"capture_output", kOptCapture},
    {"timeout", kOptTimeout}, {"check", kOptCheck},
};

// One call's arguments, read from Lua before any work starts.
struct Request {
  SpawnOptions spawn;
  std::optional<std::string> input;
  std::optional<double> timeout;
  bool check = false;
  // The command as Python's `cmd`/`args`: the string for a plain string or
  // a one-string shell command, else the list.
  std::vector<std::string> cmd_list;
  std::optional<std::string> cmd_string;
};

std::string checked_string(lua_State* L, int idx, int arg, const char* what) {
  if (lua_type(L, idx) != LUA_TSTRING && lua_type(L, idx) != LUA_TNUMBER) {
    lua_pushfstring(L, "%s must be a string, got %s", what, luaL_typename(L, idx));
    luaL_argerror(L, arg, lua_tostring(L, -1));
  }
  size_t len = 0;
  const char* s = lua_tolstring(L, idx, &len);
  if (std::strlen(s) != len) {
    lua_pushfstring(L, "embedded null byte in %s", what);
    luaL_argerror(L, arg, lua_tostring(L, -1));
  }
  return std::string(s, len);
}

// The descriptor under an open Lua file (defined with the Popen pipes below).
int stream_fd(luaL_Stream* s);

// A stdio option: nil, PIPE, STDOUT, DEVNULL, a descriptor number or an open Lua file.
StdioSpec check_stdio(lua_State* L, int idx, int arg, const char* name) {
  if (lua_isnil(L, idx)) return StdioSpec::inherit();
  if (lua_isinteger(L, idx)) {
    lua_Integer v = lua_tointeger(L, idx);
    if (v == kPipe) return StdioSpec::pipe();
    if (v == kDevNull) return StdioSpec::devnull();
    if (v == kStdoutRedirect) {
      if (std::strcmp(name, "stderr") != 0) luaL_argerror(L, arg, lua_pushfstring(L, "STDOUT is only valid for stderr, not %s", name));
      return StdioSpec::stdout_();
    }
    // A descriptor that is not open is misuse, caught here rather than by the spawn's dup.
    if (v >= 0 && v <= INT32_MAX && ::fcntl(static_cast<int>(v), F_GETFD) != -1)
      return StdioSpec::descriptor(static_cast<int>(v));
    luaL_argerror(L, arg, lua_pushfstring(L, "%s: bad file descriptor %I", name, v));
  }
  if (auto* stream = static_cast<luaL_Stream*>(luaL_testudata(L, idx, LUA_FILEHANDLE))) {
    if (stream->closef == nullptr) luaL_argerror(L, arg, lua_pushfstring(L, "%s is a closed file", name));
    // What the script wrote before must come before what the child writes.
    std::fflush(stream->f);
    return StdioSpec::descriptor(stream_fd(stream));
  }
  luaL_argerror(L, arg, lua_pushfstring(L, "%s must be PIPE, STDOUT, DEVNULL, a file or a descriptor, got %s", name,
                                        luaL_typename(L, idx)));
  return {};
}

bool check_flag(lua_State* L, int idx, int arg, const char* name) {
  if (lua_isnil(L, idx)) return false;
  if (!lua_isboolean(L, idx)) luaL_argerror(L, arg, lua_pushfstring(L, "%s must be a boolean, got %s", name, luaL_typename(L, idx)));
  return lua_toboolean(L, idx);
}

// Reads args (a string, or a list with options in its hash part) at `arg`.
Request check_request(lua_State* L, int arg, unsigned allowed) {
  Request req;
  if (lua_type(L, arg) == LUA_TSTRING) {
    // A plain string is the program's name, as in Python without shell=True.
    req.cmd_string = checked_string(L, arg, arg, "args");
    req.spawn.argv = {*req.cmd_string};
    return req;
  }
  luaL_checktype(L, arg, LUA_TTABLE);
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, arg));
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_rawgeti(L, arg, i);
    // Python names no element; naming the one at fault is kinder.
    std::string what = "args[" + std::to_string(i) + "]";
    req.cmd_list.push_back(checked_string(L, -1, arg, what.c_str()));
    lua_pop(L, 1);
  }
  if (n == 0) luaL_argerror(L, arg, "args must list at least the program");

  bool shell = false, capture = false;
  bool given_stdin = false, given_stdout = false, given_stderr = false;
  lua_pushnil(L);
  while (lua_next(L, arg) != 0) {
    if (lua_isinteger(L, -2)) {
      lua_Integer k = lua_tointeger(L, -2);
      if (k < 1 || k > n) luaL_argerror(L, arg, "args must be a list (no holes) plus named options");
      lua_pop(L, 1);
      continue;
    }
    if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, arg, "options must have string names");
    const char* key = lua_tostring(L, -2);
    const OptionName* found = nullptr;
    for (const OptionName& o : kOptionNames)
      if (std::strcmp(o.name, key) == 0) found = &o;
    if (!found || !(allowed & found->option)) luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", key));
    int v = lua_gettop(L);
    switch (found->option) {
      case kOptStdin:
        req.spawn.stdin_ = check_stdio(L, v, arg, "stdin");
        given_stdin = !lua_isnil(L, v);
        break;
      case kOptStdout:
        req.spawn.stdout_ = check_stdio(L, v, arg, "stdout");
        given_stdout = !lua_isnil(L, v);
        break;
      case kOptStderr:
        req.spawn.stderr_ = check_stdio(L, v, arg, "stderr");
        given_stderr = !lua_isnil(L, v);
        break;
      case kOptCwd:
        if (!lua_isnil(L, v)) req.spawn.cwd = checked_string(L, v, arg, "cwd");
        break;
      case kOptEnv:
        if (lua_isnil(L, v)) break;
        if (!lua_istable(L, v)) luaL_argerror(L, arg, lua_pushfstring(L, "env must be a table, got %s", luaL_typename(L, v)));
        req.spawn.env.emplace();
        lua_pushnil(L);
        while (lua_next(L, v) != 0) {
          if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, arg, "env names must be strings");
          std::string name = checked_string(L, -2, arg, "env names");
          if (name.empty() || name.find('=') != std::string::npos)
            luaL_argerror(L, arg, lua_pushfstring(L, "illegal environment variable name '%s'", name.c_str()));
          req.spawn.env->push_back(name + "=" + checked_string(L, -1, arg, "env values"));
          lua_pop(L, 1);
        }
        break;
      case kOptShell:
        shell = check_flag(L, v, arg, "shell");
        break;
      case kOptText:
        // Lua strings are bytes: text mode changes nothing (documented).
        check_flag(L, v, arg, key);
        break;
      case kOptInput:
        if (!lua_isnil(L, v)) {
          if (lua_type(L, v) != LUA_TSTRING) luaL_argerror(L, arg, lua_pushfstring(L, "input must be a string, got %s", luaL_typename(L, v)));
          size_t len = 0;
          const char* s = lua_tolstring(L, v, &len);
          req.input = std::string(s, len);
        }
        break;
      case kOptCapture:
        capture = check_flag(L, v, arg, "capture_output");
        break;
      case kOptTimeout:
        if (!lua_isnil(L, v)) {
          if (!lua_isnumber(L, v)) luaL_argerror(L, arg, lua_pushfstring(L, "timeout must be a number, got %s", luaL_typename(L, v)));
          lua_Number t = lua_tonumber(L, v);
          if (t != t || t < 0) luaL_argerror(L, arg, "timeout must be a non-negative number");
          if (std::isinf(t)) luaL_argerror(L, arg, "timeout must be finite; nil waits forever");
          req.timeout = t;
        }
        break;
      case kOptCheck:
        req.check = check_flag(L, v, arg, "check");
        break;
    }
    lua_settop(L, v - 1);
  }
  if (req.input) {
    if (given_stdin) luaL_argerror(L, arg, "stdin and input may not both be used");
    req.spawn.stdin_ = StdioSpec::pipe();
  }
  if (capture) {
    if (given_stdout || given_stderr) luaL_argerror(L, arg, "stdout and stderr may not be used with capture_output");
    req.spawn.stdout_ = req.spawn.stderr_ = StdioSpec::pipe();
  }
  // What the script printed must come before what a child writes to the same terminal or pipe.
  if (req.spawn.stdout_.kind == StdioSpec::Kind::Inherit || req.spawn.stderr_.kind == StdioSpec::Kind::Inherit) {
    std::fflush(stdout);
    std::fflush(stderr);
  }
  if (shell) {
    req.spawn.argv = {"/bin/sh", "-c"};
    req.spawn.argv.insert(req.spawn.argv.end(), req.cmd_list.begin(), req.cmd_list.end());
    if (req.cmd_list.size() == 1) req.cmd_string = req.cmd_list.front();
  } else {
    req.spawn.argv = req.cmd_list;
  }
  return req;
}

void push_cmd(lua_State* L, const Request& req) {
  if (req.cmd_string) {
    lua_pushlstring(L, req.cmd_string->data(), req.cmd_string->size());
    return;
  }
  lua_createtable(L, static_cast<int>(req.cmd_list.size()), 0);
  for (std::size_t i = 0; i < req.cmd_list.size(); ++i) {
    lua_pushlstring(L, req.cmd_list[i].data(), req.cmd_list[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
}

// The command as Python prints it in messages: the string, or the list's repr.
std::string cmd_text(const Request& req) {
  if (req.cmd_string) return *req.cmd_string;
  std::string out = "[";
  for (std::size_t i = 0; i < req.cmd_list.size(); ++i) {
    if (i) out += ", ";
    out += '\'';
    for (char c : req.cmd_list[i]) {
      if (c == '\'' || c == '\\') out += '\\';
      out += c;
    }
    out += '\'';
  }
  return out + "]";
}

const char* signal_abbrev(int sig) {
  const char* name = sigabbrev_np(sig);
  return name ? name : "?";
}

// Why a core call failed, kept until the Lua error can be raised outside the
// try block (a Lua error must never be thrown through a catch).
struct Failure {
  enum class What { kNone, kSpawn, kTimeout, kInterrupted, kOther } what = What::kNone;
  int err = 0;
  std::string filename, message, output, errors;
};

template <class Body>
bool attempt(Failure& f, Body&& body) {
  try {
    body();
    return true;
  } catch (const plua::core::SpawnError& e) {
    f = {Failure::What::kSpawn, e.error_number(), e.filename(), e.what(), {}, {}};
  } catch (plua::core::SubprocessTimeout& e) {
    f = {Failure::What::kTimeout, 0, {}, {}, std::move(e.output), std::move(e.errors)};
  } catch (const plua::core::Interrupted&) {
    f.what = Failure::What::kInterrupted;
  } catch (const std::exception& e) {
    f = {Failure::What::kOther, 0, {}, e.what(), {}, {}};
  }
  return false;
}

const char* kind_for_errno(int err) {
  switch (err) {
    case ENOENT: return "FileNotFoundError";
    case EACCES:
    case EPERM: return "PermissionError";
    case ENOTDIR: return "NotADirectoryError";
    default: return "OSError";
  }
}

void set_string_field(lua_State* L, const char* field, const std::string& s) {
  lua_pushlstring(L, s.data(), s.size());
  lua_setfield(L, -2, field);
}

// Sets output/stdout and stderr on the error object on top (nil when not piped).
void set_outputs(lua_State* L, const std::string* out, const std::string* err) {
  if (out) {
    set_string_field(L, "output", *out);
    set_string_field(L, "stdout", *out);
  }
  if (err) set_string_field(L, "stderr", *err);
}

[[noreturn]] void raise_timeout(lua_State* L, const Request& req, double timeout, const std::string* out,
                                const std::string* err) {
  lua_pushnumber(L, timeout);
  if (lua_Integer i; lua_numbertointeger(timeout, &i) && static_cast<double>(i) == timeout) {
    lua_pop(L, 1);
    lua_pushinteger(L, i);
  }
  int t = lua_gettop(L);
  std::string text = "Command '" + cmd_text(req) + "' timed out after " + luaL_tolstring(L, t, nullptr) + " seconds";
  lua_pop(L, 1);
  plua::lua::push_error_object(L, kTimeoutExpired, text);
  push_cmd(L, req);
  lua_setfield(L, -2, "cmd");
  lua_pushvalue(L, t);
  lua_setfield(L, -2, "timeout");
  set_outputs(L, out, err);
  lua_error(L);
  throw;  // unreachable
}

[[noreturn]] void raise_called_process_error(lua_State* L, const Request& req, int returncode, const std::string* out,
                                             const std::string* err) {
  std::string text = "Command '" + cmd_text(req) + "' ";
  if (returncode < 0)
    text += std::string("died with <Signals.SIG") + signal_abbrev(-returncode) + ": " + std::to_string(-returncode) + ">.";
  else
    text += "returned non-zero exit status " + std::to_string(returncode) + ".";
  plua::lua::push_error_object(L, kCalledProcessError, text);
  lua_pushinteger(L, returncode);
  lua_setfield(L, -2, "returncode");
  push_cmd(L, req);
  lua_setfield(L, -2, "cmd");
  set_outputs(L, out, err);
  lua_error(L);
  throw;  // unreachable
}

[[noreturn]] void raise_failure(lua_State* L, const char* op, const Request& req, const Failure& f) {
  switch (f.what) {
    case Failure::What::kSpawn:
      plua::lua::push_error_object(L, kind_for_errno(f.err), f.message);
      lua_pushinteger(L, f.err);
      lua_setfield(L, -2, "errno");
      set_string_field(L, "strerror", std::strerror(f.err));
      if (!f.filename.empty()) set_string_field(L, "filename", f.filename);
      lua_error(L);
      break;
    case Failure::What::kTimeout:
      raise_timeout(L, req, req.timeout.value_or(0), req.spawn.stdout_.kind == StdioSpec::Kind::Pipe ? &f.output : nullptr,
                    req.spawn.stderr_.kind == StdioSpec::Kind::Pipe ? &f.errors : nullptr);
    case Failure::What::kInterrupted:
      plua::lua::raise_interrupted(L);
    default:
      break;
  }
  luaL_error(L, "%s: %s", op, f.message.c_str());
  throw;  // unreachable
}

// ---------------------------------------------------------------- run & co.

// Runs the request to completion; leaves the CompletedProcess-like result in `out`.
plua::core::RunResult run_request(lua_State* L, const char* op, const Request& req) {
  plua::core::RunResult result;
  Failure failure;
  Deadline deadline = Deadline::from_timeout(req.timeout);
  if (!attempt(failure, [&] { result = plua::core::run_subprocess(req.spawn, req.input, deadline); }))
    raise_failure(L, op, req, failure);
  return result;
}

bool pipes_stdout(const Request& req) { return req.spawn.stdout_.kind == StdioSpec::Kind::Pipe; }
bool pipes_stderr(const Request& req) { return req.spawn.stderr_.kind == StdioSpec::Kind::Pipe; }

// run(args | {..., input=, capture_output=, stdout=, stderr=, timeout=, check=, cwd=, env=, shell=})
int subprocess_run(lua_State* L) {
  Request req = check_request(L, 1, kRunOptions);
  plua::core::RunResult r = run_request(L, "subprocess.run", req);
  const std::string* out = pipes_stdout(req) ? &r.output : nullptr;
  const std::string* err = pipes_stderr(req) ? &r.errors : nullptr;
  if (req.check && r.returncode != 0) raise_called_process_error(L, req, r.returncode, out, err);
  lua_createtable(L, 0, 4);
  push_cmd(L, req);
  lua_setfield(L, -2, "args");
  lua_pushinteger(L, r.returncode);
  lua_setfield(L, -2, "returncode");
  if (out) set_string_field(L, "stdout", *out);
  if (err) set_string_field(L, "stderr", *err);
  luaL_setmetatable(L, kCompletedMeta);
  return 1;
}

// call(args): the exit code.
int subprocess_call(lua_State* L) {
  Request req = check_request(L, 1, kCallOptions);
  lua_pushinteger(L, run_request(L, "subprocess.call", req).returncode);
  return 1;
}

// check_call(args): 0, or CalledProcessError.
int subprocess_check_call(lua_State* L) {
  Request req = check_request(L, 1, kCallOptions);
  int rc = run_request(L, "subprocess.check_call", req).returncode;
  if (rc != 0) raise_called_process_error(L, req, rc, nullptr, nullptr);
  lua_pushinteger(L, 0);
  return 1;
}

// check_output(args): what the program wrote to stdout, or CalledProcessError.
int subprocess_check_output(lua_State* L) {
  Request req = check_request(L, 1, kCheckOutputOptions);
  req.spawn.stdout_ = StdioSpec::pipe();
  plua::core::RunResult r = run_request(L, "subprocess.check_output", req);
  const std::string* err = pipes_stderr(req) ? &r.errors : nullptr;
  if (r.returncode != 0) raise_called_process_error(L, req, r.returncode, &r.output, err);
  lua_pushlstring(L, r.output.data(), r.output.size());
  return 1;
}

// CompletedProcess:check_returncode(): raises CalledProcessError if non-zero.
int completed_check_returncode(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "returncode");
  lua_Integer rc = luaL_checkinteger(L, -1);
  if (rc == 0) return 0;
  Request req;
  lua_getfield(L, 1, "args");
  if (lua_type(L, -1) == LUA_TSTRING) {
    req.cmd_string = lua_tostring(L, -1);
  } else if (lua_istable(L, -1)) {
    lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, -1));
    for (lua_Integer i = 1; i <= n; ++i) {
      lua_rawgeti(L, -1, i);
      if (const char* s = lua_tostring(L, -1)) req.cmd_list.push_back(s);
      lua_pop(L, 1);
    }
  }
  std::optional<std::string> out, err;
  if (lua_getfield(L, 1, "stdout") == LUA_TSTRING) out = lua_tostring(L, -1);
  if (lua_getfield(L, 1, "stderr") == LUA_TSTRING) err = lua_tostring(L, -1);
  raise_called_process_error(L, req, static_cast<int>(rc), out ? &*out : nullptr, err ? &*err : nullptr);
}

int completed_tostring(lua_State* L) {
  lua_getfield(L, 1, "returncode");
  lua_pushfstring(L, "CompletedProcess(returncode=%s)", luaL_tolstring(L, -1, nullptr));
  return 1;
}

// -------------------------------------------------------------------- Popen

struct Popen {
  std::optional<Subprocess> child;
  std::optional<Communicator> comm;  // exists once communicate() started
  Request req;
};

// The uservalue of a Popen holds {args=, stdin=, stdout=, stderr=}.
Popen* check_popen(lua_State* L, int idx) { return static_cast<Popen*>(luaL_checkudata(L, idx, kPopenMeta)); }

Subprocess& live_child(lua_State* L, Popen* p) {
  if (!p->child) luaL_error(L, "Popen: the object was released");
  return *p->child;
}

// The open stream in field `name` of the Popen at idx, or nullptr.
luaL_Stream* popen_stream(lua_State* L, int idx, const char* name) {
  lua_getiuservalue(L, idx, 1);
  lua_getfield(L, -1, name);
  auto* s = static_cast<luaL_Stream*>(luaL_testudata(L, -1, LUA_FILEHANDLE));
  lua_pop(L, 2);
  return (s && s->closef) ? s : nullptr;
}

// Closes a Lua file as io's close does (it then reads as "closed file").
int close_stream(luaL_Stream* s) {
  if (!s || !s->closef) return 0;
  s->closef = nullptr;
  return std::fclose(s->f);
}

int stream_close(lua_State* L) {
  auto* s = static_cast<luaL_Stream*>(luaL_checkudata(L, 1, LUA_FILEHANDLE));
  int ok = std::fclose(s->f) == 0;
  return luaL_fileresult(L, ok, nullptr);
}

// A Popen pipe as a Lua file, with its descriptor: fileno() cannot see
// through stdin's SIGPIPE-safe writer.
struct PipeStream {
  luaL_Stream stream;
  int fd;
};

// The descriptor under an open Lua file (a Popen pipe or any io file).
int stream_fd(luaL_Stream* s) {
  return s->closef == stream_close ? reinterpret_cast<PipeStream*>(s)->fd : fileno(s->f);
}

// Pushes a Lua file that owns fd (taken from `owner`). A writer never raises
// SIGPIPE: writing to a child that is gone returns nil, "Broken pipe".
void push_stream(lua_State* L, plua::core::OwnedFd& owner, const char* mode) {
  auto* p = static_cast<PipeStream*>(lua_newuserdatauv(L, sizeof(PipeStream), 0));
  luaL_Stream* s = &p->stream;
  s->closef = nullptr;  // "closed" until it owns a FILE
  luaL_setmetatable(L, LUA_FILEHANDLE);
  p->fd = owner.get();
  s->f = mode[0] == 'w' ? plua::core::open_pipe_writer(owner.get()) : fdopen(owner.get(), mode);
  if (!s->f) luaL_error(L, "Popen: fdopen: %s", std::strerror(errno));
  owner.release();
  s->closef = stream_close;
}

// Popen{..., stdin=, stdout=, stderr=, cwd=, env=, shell=}
int subprocess_popen(lua_State* L) {
  Request req = check_request(L, 1, kPopenOptions);
  auto* p = static_cast<Popen*>(lua_newuserdatauv(L, sizeof(Popen), 1));
  new (p) Popen{};
  luaL_setmetatable(L, kPopenMeta);
  int self = lua_gettop(L);
  p->req = std::move(req);
  Failure failure;
  if (!attempt(failure, [&] { p->child.emplace(Subprocess::spawn(p->req.spawn)); }))
    raise_failure(L, "subprocess.Popen", p->req, failure);
  lua_createtable(L, 0, 4);
  push_cmd(L, p->req);
  lua_setfield(L, -2, "args");
  if (p->child->stdin_pipe()) {
    push_stream(L, p->child->stdin_pipe(), "w");
    lua_setfield(L, -2, "stdin");
  }
  if (p->child->stdout_pipe()) {
    push_stream(L, p->child->stdout_pipe(), "r");
    lua_setfield(L, -2, "stdout");
  }
  if (p->child->stderr_pipe()) {
    push_stream(L, p->child->stderr_pipe(), "r");
    lua_setfield(L, -2, "stderr");
  }
  lua_setiuservalue(L, self, 1);
  lua_settop(L, self);
  return 1;
}

#ifdef __GLIBC__
// Bytes a read stream has buffered but not handed out (glibc's FILE layout).
void take_buffered(FILE* f, std::string& into) {
  std::size_t n = static_cast<std::size_t>(f->_IO_read_end - f->_IO_read_ptr);
  if (n == 0 || f->_IO_read_ptr == nullptr) return;
  std::size_t old = into.size();
  into.resize(old + n);
  into.resize(old + std::fread(into.data() + old, 1, n, f));
}
#else
void take_buffered(FILE*, std::string&) {}
#endif

[[noreturn]] void raise_popen_timeout(lua_State* L, Popen* p, double timeout, bool with_output) {
  const std::string* out = nullptr;
  const std::string* err = nullptr;
  if (with_output && p->comm) {
    if (pipes_stdout(p->req)) out = &p->comm->output();
    if (pipes_stderr(p->req)) err = &p->comm->errors();
  }
  raise_timeout(L, p->req, timeout, out, err);
}

// p:communicate([input], [timeout]) → stdout, stderr (nil for streams not piped)
int popen_communicate(lua_State* L) {
  Popen* p = check_popen(L, 1);
  std::optional<std::string> input;
  if (!lua_isnoneornil(L, 2)) {
    size_t len = 0;
    const char* s = luaL_checklstring(L, 2, &len);
    input = std::string(s, len);
  }
  std::optional<double> timeout = plua::lua::check_timeout(L, 3);
  Subprocess& child = live_child(L, p);
  luaL_Stream* streams[3] = {popen_stream(L, 1, "stdin"), popen_stream(L, 1, "stdout"), popen_stream(L, 1, "stderr")};
  if (p->comm && input && !input->empty()) luaL_argerror(L, 2, "cannot send input after starting communication");
  if (!p->comm) {
    p->comm.emplace(streams[0] && input ? std::move(*input) : std::string());
    // Lines the script already read through p.stdout are not lost.
    if (streams[1]) take_buffered(streams[1]->f, p->comm->output());
    if (streams[2]) take_buffered(streams[2]->f, p->comm->errors());
    if (streams[0]) {
      plua::core::SigpipeGuard no_sigpipe;
      std::fflush(streams[0]->f);
    }
  }
  Deadline deadline = Deadline::from_timeout(timeout);
  bool done = false;
  std::optional<int> rc;
  Failure failure;
  bool ok = attempt(failure, [&] {
    auto finished = [&streams](Communicator::Stream s) {
      plua::core::SigpipeGuard no_sigpipe;  // closing stdin flushes nothing more, but be sure
      close_stream(streams[s]);
      streams[s] = nullptr;
    };
    done = p->comm->run(streams[0] ? stream_fd(streams[0]) : -1, streams[1] ? stream_fd(streams[1]) : -1,
                        streams[2] ? stream_fd(streams[2]) : -1, deadline, finished);
    if (done) rc = child.wait(deadline);
  });
  if (!ok) raise_failure(L, "Popen:communicate", p->req, failure);
  if (!done || !rc) raise_popen_timeout(L, p, timeout.value_or(0), true);
  if (pipes_stdout(p->req))
    lua_pushlstring(L, p->comm->output().data(), p->comm->output().size());
  else
    lua_pushnil(L);
  if (pipes_stderr(p->req))
    lua_pushlstring(L, p->comm->errors().data(), p->comm->errors().size());
  else
    lua_pushnil(L);
  return 2;
}

// Waits for the child, raising TimeoutExpired when the deadline passes.
int wait_child(lua_State* L, Popen* p, std::optional<double> timeout) {
  Subprocess& child = live_child(L, p);
  Deadline deadline = Deadline::from_timeout(timeout);
  std::optional<int> rc;
  Failure failure;
  if (!attempt(failure, [&] { rc = child.wait(deadline); })) raise_failure(L, "Popen:wait", p->req, failure);
  if (!rc) raise_popen_timeout(L, p, timeout.value_or(0), false);
  lua_pushinteger(L, *rc);
  return 1;
}

// p:wait([timeout]) → returncode
int popen_wait(lua_State* L) {
  Popen* p = check_popen(L, 1);
  return wait_child(L, p, plua::lua::check_timeout(L, 2));
}

// p:poll() → returncode, or nil while the child runs
int popen_poll(lua_State* L) {
  Popen* p = check_popen(L, 1);
  std::optional<int> rc;
  Failure failure;
  if (!attempt(failure, [&] { rc = live_child(L, p).poll(); })) raise_failure(L, "Popen:poll", p->req, failure);
  if (rc)
    lua_pushinteger(L, *rc);
  else
    lua_pushnil(L);
  return 1;
}

void signal_child(lua_State* L, Popen* p, int sig) {
  Failure failure;
  Subprocess& child = live_child(L, p);
  if (!attempt(failure, [&] { child.send_signal(sig); })) raise_failure(L, "Popen:send_signal", p->req, failure);
}

// A signal as a number or a name ("TERM" or "SIGTERM").
int check_signal(lua_State* L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char* name = lua_tostring(L, idx);
    if (std::strncmp(name, "SIG", 3) == 0) name += 3;
    for (int sig = 1; sig < NSIG; ++sig)
      if (const char* abbrev = sigabbrev_np(sig); abbrev && std::strcmp(abbrev, name) == 0) return sig;
    luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, idx)));
  }
  lua_Integer sig = luaL_checkinteger(L, idx);
  if (sig < 0 || sig >= NSIG) luaL_argerror(L, idx, "invalid signal number");
  return static_cast<int>(sig);
}

int popen_send_signal(lua_State* L) {
  Popen* p = check_popen(L, 1);
  signal_child(L, p, check_signal(L, 2));
  return 0;
}

int popen_terminate(lua_State* L) {
  signal_child(L, check_popen(L, 1), SIGTERM);
  return 0;
}

int popen_kill(lua_State* L) {
  signal_child(L, check_popen(L, 1), SIGKILL);
  return 0;
}

// __close: as Python's `with`: close the pipes, then wait for the child.
int popen_close(lua_State* L) {
  Popen* p = check_popen(L, 1);
  if (!p->child) return 0;
  {
    plua::core::SigpipeGuard no_sigpipe;  // flushing stdin to a child that is gone
    close_stream(popen_stream(L, 1, "stdout"));
    close_stream(popen_stream(L, 1, "stderr"));
    close_stream(popen_stream(L, 1, "stdin"));
  }
  wait_child(L, p, std::nullopt);
  return 0;
}

// __gc: a child still running goes to the core's reaper, so no zombie remains.
int popen_gc(lua_State* L) {
  Popen* p = check_popen(L, 1);
  p->~Popen();
  new (p) Popen{};
  return 0;
}

int popen_index(lua_State* L) {
  Popen* p = check_popen(L, 1);
  const char* key = luaL_checkstring(L, 2);
  lua_getfield(L, lua_upvalueindex(1), key);
  if (!lua_isnil(L, -1)) return 1;
  if (std::strcmp(key, "pid") == 0) {
    if (p->child) lua_pushinteger(L, p->child->pid());
    else lua_pushnil(L);
    return 1;
  }
  if (std::strcmp(key, "returncode") == 0) {
    if (p->child && p->child->returncode()) lua_pushinteger(L, *p->child->returncode());
    else lua_pushnil(L);
    return 1;
  }
  lua_getiuservalue(L, 1, 1);
  if (!lua_istable(L, -1)) return 0;
  lua_getfield(L, -1, key);  // args, stdin, stdout, stderr
  return 1;
}

int popen_tostring(lua_State* L) {
  Popen* p = check_popen(L, 1);
  std::string rc = p->child && p->child->returncode() ? std::to_string(*p->child->returncode()) : "nil";
  std::string text = "<Popen: returncode: " + rc + " args: " + cmd_text(p->req) + ">";
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

constexpr luaL_Reg kPopenMethods[] = {
    {"communicate", popen_communicate}, {"wait", popen_wait}, {"poll", popen_poll},
    {"send_signal", popen_send_signal}, {"terminate", popen_terminate}, {"kill", popen_kill},
    {nullptr, nullptr},
};

constexpr luaL_Reg kFunctions[] = {
    {"run", subprocess_run},
    {"call", subprocess_call},
    {"check_call", subprocess_check_call},
    {"check_output", subprocess_check_output},
    {"Popen", subprocess_popen},
    {nullptr, nullptr},
};

}  // namespace

int luaopen_plua_subprocess(lua_State* L) {
  // Popen's pipes are io's own file objects: make sure io's metatable exists.
  luaL_requiref(L, LUA_IOLIBNAME, luaopen_io, 0);
  lua_pop(L, 1);

  if (luaL_newmetatable(L, kPopenMeta)) {
    lua_newtable(L);
    luaL_setfuncs(L, kPopenMethods, 0);
    lua_pushcclosure(L, popen_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, popen_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, popen_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, popen_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, kCompletedMeta)) {
    lua_newtable(L);
    lua_pushcfunction(L, completed_check_returncode);
    lua_setfield(L, -2, "check_returncode");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, completed_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);

  luaL_newlib(L, kFunctions);
  lua_pushinteger(L, kPipe);
  lua_setfield(L, -2, "PIPE");
  lua_pushinteger(L, kStdoutRedirect);
  lua_setfield(L, -2, "STDOUT");
  lua_pushinteger(L, kDevNull);
  lua_setfield(L, -2, "DEVNULL");
  for (const char* kind : {kTimeoutExpired, kCalledProcessError, "FileNotFoundError",
                           "PermissionError", "NotADirectoryError", "OSError"}) {
    lua_pushstring(L, kind);
    lua_setfield(L, -2, kind);
  }
  return 1;
}
