local T = require "testing"
local sp = require "subprocess"

-- Our own pid, from /proc (no other module needed).
local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("l"):match("^(%d+)"))
  f:close()
  return pid
end
local MY_PID = my_pid()

-- True while pid is a child of ours, running or a zombie.
local function is_our_child(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local line = f:read("l") or ""
  f:close()
  local ppid = tonumber(line:match("%) %a (%d+)"))
  return ppid == MY_PID
end

-- Polls cond until it holds or `seconds` pass; returns its last value.
local function eventually(cond, seconds)
  local time = require "time"
  local deadline = time.monotonic() + (seconds or 20)
  while not cond() do
    if time.monotonic() > deadline then return cond() end
    time.sleep(0.02)
  end
  return true
end

-- Runs fn(timeout) with growing timeouts until check(result) holds, so a busy
-- machine cannot make a timing-based test fail.
local function with_growing_timeout(fn, check)
  local timeout, result = 0.25, nil
  for _ = 1, 6 do
    result = fn(timeout)
    if check(result) then return result, timeout end
    timeout = timeout * 2
  end
  return result, timeout
end

T.test("the module exports Python's constants and kinds", function()
  T.eq(sp.PIPE, -1)
  T.eq(sp.STDOUT, -2)
  T.eq(sp.DEVNULL, -3)
  T.eq(sp.TimeoutExpired, "TimeoutExpired")
  T.eq(sp.CalledProcessError, "CalledProcessError")
  T.eq(sp.FileNotFoundError, "FileNotFoundError")
  T.eq(sp.PermissionError, "PermissionError")
  T.eq(require "subprocess", sp)
end)

T.test("call returns the exit code", function()
  T.eq(sp.call{"true"}, 0)
  T.eq(sp.call{"false"}, 1)
  T.eq(sp.call{"sh", "-c", "exit 7"}, 7)
  T.eq(sp.call("true"), 0)  -- a plain string is the program's name
end)

T.test("run captures stdout and stderr and reports args", function()
  local r = sp.run{"sh", "-c", "printf out; printf err >&2; exit 3", capture_output = true}
  T.eq(r.returncode, 3)
  T.eq(r.stdout, "out")
  T.eq(r.stderr, "err")
  T.deep(r.args, {"sh", "-c", "printf out; printf err >&2; exit 3"})
  T.eq(tostring(r), "CompletedProcess(returncode=3)")
  local e = T.raises_kind(function() r:check_returncode() end, sp.CalledProcessError)
  T.eq(e.returncode, 3)
  T.eq(e.stdout, "out")
  local plain = sp.run{"true"}
  T.eq(plain.stdout, nil)
  T.eq(plain.stderr, nil)
  plain:check_returncode()
end)

T.test("run feeds input, binary safe", function()
  local data = "a\0b\r\n\255end"
  T.eq(sp.run{"cat", input = data, stdout = sp.PIPE}.stdout, data)
  T.eq(sp.run{"cat", input = "", stdout = sp.PIPE}.stdout, "")
  T.eq(sp.run{"cat", input = "x", stdout = sp.PIPE, text = true}.stdout, "x")
end)

T.test("run with check raises CalledProcessError like Python", function()
  local e = T.raises_kind(function()
    sp.run{"sh", "-c", "echo so far; exit 1", check = true, capture_output = true}
  end, sp.CalledProcessError)
  T.eq(e.returncode, 1)
  T.eq(e.output, "so far\n")
  T.eq(e.stdout, "so far\n")
  T.eq(e.stderr, "")
  T.deep(e.cmd, {"sh", "-c", "echo so far; exit 1"})
  T.eq(e.message, "Command '['sh', '-c', 'echo so far; exit 1']' returned non-zero exit status 1.")
  T.eq(tostring(e), "CalledProcessError: " .. e.message)
  T.eq(sp.run{"true", check = true}.returncode, 0)
end)

T.test("check_call and check_output", function()
  T.eq(sp.check_call{"true"}, 0)
  local e = T.raises_kind(function() sp.check_call{"sh", "-c", "exit 5"} end, sp.CalledProcessError)
  T.eq(e.returncode, 5)
  T.eq(e.output, nil)
  T.eq(sp.check_output{"echo", "hello"}, "hello\n")
  T.eq(sp.check_output{"cat", input = "fed"}, "fed")
  e = T.raises_kind(function()
    sp.check_output{"sh", "-c", "echo partial; echo oops >&2; exit 2", stderr = sp.PIPE}
  end, sp.CalledProcessError)
  T.eq(e.returncode, 2)
  T.eq(e.output, "partial\n")
  T.eq(e.stderr, "oops\n")
  T.eq(sp.check_output{"sh", "-c", "echo both; echo err >&2", stderr = sp.STDOUT}, "both\nerr\n")
end)

T.test("a child killed by a signal has returncode -N", function()
  local p = sp.Popen{"sleep", "30"}
  T.eq(p:poll(), nil)
  T.eq(p.returncode, nil)
  p:kill()
  T.eq(p:wait(), -9)
  T.eq(p.returncode, -9)
  T.eq(p:poll(), -9)
  p:kill()  -- reaped: harmless

  p = sp.Popen{"sleep", "30"}
  p:terminate()
  T.eq(p:wait(), -15)
  for _, sig in ipairs{"SIGUSR1", "USR1", 10} do
    p = sp.Popen{"sleep", "30"}
    p:send_signal(sig)
    T.eq(p:wait(), -10)
  end
  local e = T.raises_kind(function() sp.run{"sh", "-c", "kill -9 $$", check = true} end, sp.CalledProcessError)
  T.eq(e.returncode, -9)
  T.eq(e.message, "Command '['sh', '-c', 'kill -9 $$']' died with <Signals.SIGKILL: 9>.")
end)

T.test("wait with a timeout raises TimeoutExpired, then the child can still be waited for", function()
  local p = sp.Popen{"sleep", "30"}
  local e = T.raises_kind(function() p:wait(0.05) end, sp.TimeoutExpired)
  T.eq(e.timeout, 0.05)
  T.deep(e.cmd, {"sleep", "30"})
  T.eq(e.message, "Command '['sleep', '30']' timed out after 0.05 seconds")
  T.eq(p.returncode, nil)
  p:terminate()
  T.eq(p:wait(10), -15)
end)

T.test("run's timeout kills and reaps the child and keeps partial output", function()
  local e = with_growing_timeout(function(timeout)
    local ok, err = pcall(sp.run, {"sh", "-c", "echo $$; echo started >&2; exec sleep 60",
                                   capture_output = true, timeout = timeout})
    T.eq(ok, false)
    return err
  end, function(err) return err.stdout ~= "" and err.stderr ~= "" end)
  T.eq(e.kind, sp.TimeoutExpired)
  local pid = tonumber(e.stdout:match("^(%d+)\n$"))
  T.ok(pid, "the child printed its pid")
  T.eq(e.output, e.stdout)
  T.eq(e.stderr, "started\n")
  T.eq(type(e.timeout), "number")
  T.deep(e.cmd, {"sh", "-c", "echo $$; echo started >&2; exec sleep 60"})
  T.eq(is_our_child(pid), false, "killed and reaped before the error")
  -- call has the same timeout.
  T.raises_kind(function() sp.call{"sleep", "60", timeout = 0.05} end, sp.TimeoutExpired)
end)

T.test("communicate's timeout keeps what was read, and communicate can be called again", function()
  local p
  local e = with_growing_timeout(function(timeout)
    if p then p:kill(); p:wait() end
    p = sp.Popen{"sh", "-c", "echo first; echo err1 >&2; exec sleep 60", stdout = sp.PIPE, stderr = sp.PIPE}
    local ok, err = pcall(p.communicate, p, nil, timeout)
    T.eq(ok, false)
    return err
  end, function(err) return err.stdout == "first\n" and err.stderr == "err1\n" end)
  T.eq(e.kind, sp.TimeoutExpired)
  T.eq(e.stdout, "first\n")
  T.eq(e.output, "first\n")
  T.eq(e.stderr, "err1\n")
  p:kill()
  local out, err = p:communicate()
  T.eq(out, "first\n")
  T.eq(err, "err1\n")
  T.eq(p.returncode, -9)
  T.raises(function() p:communicate("more") end, "cannot send input after starting communication")
end)

T.test("a missing program is FileNotFoundError in the parent, never exit code 127", function()
  local e = T.raises_kind(function() sp.run{"plua-no-such-program", "x"} end, sp.FileNotFoundError)
  T.eq(e.message, "[Errno 2] No such file or directory: 'plua-no-such-program'")
  T.eq(tostring(e), "FileNotFoundError: [Errno 2] No such file or directory: 'plua-no-such-program'")
  T.eq(e.errno, 2)
  T.eq(e.filename, "plua-no-such-program")
  T.raises_kind(function() sp.Popen{"/no/such/dir/prog"} end, sp.FileNotFoundError)
  T.raises_kind(function() sp.call("true false") end, sp.FileNotFoundError)
  -- A PATH that lacks the program.
  T.raises_kind(function() sp.run{"sh", "-c", "true", env = {PATH = "/plua/nowhere"}} end, sp.FileNotFoundError)
end)

T.test("a file that is not executable is PermissionError", function()
  local path = os.tmpname()  -- created with mode 0600
  local e = T.raises_kind(function() sp.run{path} end, sp.PermissionError)
  T.eq(e.message, "[Errno 13] Permission denied: '" .. path .. "'")
  T.eq(e.errno, 13)
  os.remove(path)
end)

T.test("cwd sets the child's directory; a missing one is FileNotFoundError naming it", function()
  T.eq(sp.run{"pwd", cwd = "/tmp", stdout = sp.PIPE}.stdout, "/tmp\n")
  local e = T.raises_kind(function() sp.run{"pwd", cwd = "/plua/no/such/dir"} end, sp.FileNotFoundError)
  T.eq(e.filename, "/plua/no/such/dir")
  T.eq(e.message, "[Errno 2] No such file or directory: '/plua/no/such/dir'")
end)

T.test("env replaces the whole environment", function()
  local r = sp.run{"sh", "-c", 'printf "%s|%s" "$PLUA_A" "${HOME-unset}"', env = {PLUA_A = "b c"}, stdout = sp.PIPE}
  T.eq(r.stdout, "b c|unset")
  -- Without PATH in env, the program is searched in /bin:/usr/bin, as Python does.
  T.eq(sp.run{"env", env = {}, stdout = sp.PIPE}.stdout, "")
  T.eq(sp.run{"env", env = {X = 1}, stdout = sp.PIPE}.stdout, "X=1\n")
  -- Without env, the parent's environment is inherited.
  T.eq(sp.run{"sh", "-c", 'printf "%s" "$PATH"', stdout = sp.PIPE}.stdout, os.getenv("PATH"))
end)

T.test("shell runs one command string through /bin/sh", function()
  local r = sp.run{"echo $((1 + 2)) | tr 3 x", shell = true, capture_output = true}
  T.eq(r.stdout, "x\n")
  T.eq(r.args, "echo $((1 + 2)) | tr 3 x")
  T.eq(sp.run{'echo "$0-$1"', "a", "b", shell = true, stdout = sp.PIPE}.stdout, "a-b\n")
  local e = T.raises_kind(function() sp.check_call{"exit 4", shell = true} end, sp.CalledProcessError)
  T.eq(e.cmd, "exit 4")
  T.eq(e.message, "Command 'exit 4' returned non-zero exit status 4.")
end)

T.test("STDOUT merges stderr into stdout; DEVNULL discards or gives EOF", function()
  local r = sp.run{"sh", "-c", "echo 1; echo 2 >&2; echo 3", stdout = sp.PIPE, stderr = sp.STDOUT}
  T.eq(r.stdout, "1\n2\n3\n")
  T.eq(r.stderr, nil)
  r = sp.run{"sh", "-c", "echo gone; echo gone >&2", stdout = sp.DEVNULL, stderr = sp.DEVNULL}
  T.eq(r.returncode, 0)
  T.eq(r.stdout, nil)
  T.eq(sp.run{"cat", stdin = sp.DEVNULL, stdout = sp.PIPE}.stdout, "")
end)

T.test("open Lua files and descriptors serve as stdin, stdout and stderr", function()
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("written first\n")  -- buffered: flushed before the child writes
  sp.run{"sh", "-c", "echo to-out; echo to-err >&2", stdout = f, stderr = f}
  f:close()
  f = assert(io.open(path))
  T.eq(f:read("a"), "written first\nto-out\nto-err\n")
  f:close()
  f = assert(io.open(path))
  T.eq(sp.run{"wc", "-l", stdin = f, stdout = sp.PIPE}.stdout, "3\n")
  f:close()
  T.raises(function() sp.run{"true", stdin = f} end, "closed file")
  os.remove(path)
  -- A descriptor number (here our stderr, 2) works as in Python.
  T.eq(sp.run{"true", stderr = 2}.returncode, 0)
end)

T.test("Popen pipes are genuine Lua files", function()
  local p = sp.Popen{"cat", stdin = sp.PIPE, stdout = sp.PIPE}
  T.eq(io.type(p.stdin), "file")
  T.eq(io.type(p.stdout), "file")
  T.eq(p.stderr, nil)
  T.eq(math.type(p.pid), "integer")
  T.deep(p.args, {"cat"})
  -- Line by line, as with an interactive program.
  p.stdin:setvbuf("line")
  p.stdin:write("ping\n")
  T.eq(p.stdout:read("l"), "ping")
  p.stdin:write("one\n", "two\n")
  p.stdin:close()
  local lines = {}
  for l in p.stdout:lines() do lines[#lines + 1] = l end
  T.deep(lines, {"one", "two"})
  T.eq(p:wait(), 0)
  p.stdout:close()
  T.eq(io.type(p.stdout), "closed file")
end)

T.test("communicate after reading some lines returns the rest", function()
  local p = sp.Popen{"sh", "-c", "echo a; echo b; echo c", stdout = sp.PIPE}
  T.eq(p.stdout:read("l"), "a")
  local out, err = p:communicate()
  T.eq(out, "b\nc\n")
  T.eq(err, nil)
  T.eq(p.returncode, 0)
  T.eq(io.type(p.stdout), "closed file")
end)

T.test("communicate feeds stdin and collects both outputs", function()
  local p = sp.Popen{"sh", "-c", "cat; echo done >&2; exit 2", stdin = sp.PIPE, stdout = sp.PIPE, stderr = sp.PIPE}
  local out, err = p:communicate("line 1\nline 2\n")
  T.eq(out, "line 1\nline 2\n")
  T.eq(err, "done\n")
  T.eq(p.returncode, 2)
  -- Without pipes, communicate just waits.
  p = sp.Popen{"true"}
  out, err = p:communicate()
  T.eq(out, nil)
  T.eq(err, nil)
  T.eq(p.returncode, 0)
end)

T.test("50 MB each way through a child writing to stdout and stderr does not deadlock", function()
  local chunk = {}
  for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
  chunk = table.concat(chunk)
  local data = chunk:rep(50 * 1024 * 1024 // #chunk) .. "tail"
  local p = sp.Popen{"sh", "-c", "tee /dev/stderr", stdin = sp.PIPE, stdout = sp.PIPE, stderr = sp.PIPE}
  local out, err = p:communicate(data, 120)
  T.eq(p.returncode, 0)
  T.eq(#out, #data)
  T.eq(#err, #data)
  T.ok(out == data, "stdout is the input")
  T.ok(err == data, "stderr is the input")
  local r = sp.run{"sh", "-c", "tee /dev/stderr", input = data, capture_output = true, timeout = 120}
  T.ok(r.stdout == data and r.stderr == data, "run too")
end)

T.test("a child that stops reading early does not kill plua with SIGPIPE", function()
  local r = sp.run{"head", "-c", "3", input = ("x"):rep(4 * 1024 * 1024), stdout = sp.PIPE}
  T.eq(r.stdout, "xxx")
  T.eq(r.returncode, 0)
end)

T.test("no descriptor of the parent leaks into the child", function()
  local f = assert(io.open("/proc/self/stat"))  -- fopen: not close-on-exec
  local p = sp.Popen{"cat", stdin = sp.PIPE, stdout = sp.PIPE}  -- more pipes open in the parent
  -- ls lists its own /proc/self/fd: 0, 1, 2 and the directory it reads (3).
  T.eq(sp.run{"ls", "/proc/self/fd", stdout = sp.PIPE}.stdout, "0\n1\n2\n3\n")
  T.eq(sp.run{"ls", "/proc/self/fd", stdout = sp.PIPE, stderr = sp.STDOUT, stdin = sp.DEVNULL}.stdout, "0\n1\n2\n3\n")
  p:communicate("")
  f:close()
end)

T.test("children are reaped after their Popen is collected: no zombies", function()
  local pids = {}
  for i = 1, 5 do
    local p = sp.Popen{"sh", "-c", "exit 0"}
    pids[#pids + 1] = p.pid
    p = sp.Popen{"sleep", "0.2"}  -- still running when collected
    pids[#pids + 1] = p.pid
  end
  collectgarbage("collect")
  collectgarbage("collect")
  T.ok(eventually(function()
    for _, pid in ipairs(pids) do
      if is_our_child(pid) then return false end
    end
    return true
  end), "every child was reaped")
end)

T.test("a to-be-closed Popen closes its pipes and waits, as Python's with", function()
  local p
  do
    local q <close> = sp.Popen{"sh", "-c", "cat >/dev/null; exit 4", stdin = sp.PIPE, stdout = sp.PIPE}
    p = q
    q.stdin:write("unflushed")
  end
  T.eq(p.returncode, 4)
  T.eq(io.type(p.stdin), "closed file")
  T.eq(io.type(p.stdout), "closed file")
  getmetatable(p).__close(p)  -- closing twice is harmless
  T.eq(tostring(p), "<Popen: returncode: 4 args: ['sh', '-c', 'cat >/dev/null; exit 4']>")
end)

T.test("subprocess works from several plua threads at once", function()
  local thread = require "thread"
  local function work(n)
    local subprocess = require "subprocess"
    local good = 0
    local data = ("thread " .. n .. "\n"):rep(100000)
    for i = 1, 10 do
      local r = subprocess.run{"sh", "-c", "echo $0", tostring(n * 100 + i), capture_output = true}
      if r.stdout == (n * 100 + i) .. "\n" then good = good + 1 end
      local p = subprocess.Popen{"sh", "-c", "tee /dev/stderr", stdin = subprocess.PIPE,
                                 stdout = subprocess.PIPE, stderr = subprocess.PIPE}
      local out, err = p:communicate(data, 60)
      if out == data and err == data and p.returncode == 0 then good = good + 1 end
    end
    local ok, e = pcall(subprocess.run, {"plua-no-such-program"})
    if not ok and e.kind == subprocess.FileNotFoundError then good = good + 1 end
    return good
  end
  local threads = {}
  for n = 1, 3 do
    threads[n] = thread.Thread{target = work, args = {n}}
    threads[n]:start()
  end
  local main_good = work(0)
  T.eq(main_good, 21)
  for n = 1, 3 do
    T.eq(threads[n]:join(120), true)
    T.eq(threads[n]:result(), 21, "thread " .. n)
  end
end)

T.test("misuse is an argument error", function()
  T.raises(function() sp.run() end, "bad argument #1 to 'run'")
  T.raises(function() sp.run(42) end, "bad argument #1 to 'run'")
  T.raises(function() sp.run{} end, "args must list at least the program")
  T.raises(function() sp.run{"true", bogus = 1} end, "unknown option 'bogus'")
  T.raises(function() sp.Popen{"true", timeout = 1} end, "unknown option 'timeout'")
  T.raises(function() sp.check_output{"true", stdout = sp.PIPE} end, "unknown option 'stdout'")
  T.raises(function() sp.run{"true", {}} end, "must be a string")
  T.raises(function() sp.run{"tr\0ue"} end, "embedded null byte")
  T.raises(function() sp.run{"true", stdin = sp.STDOUT} end, "STDOUT is only valid for stderr")
  T.raises(function() sp.run{"true", stdout = "x"} end, "stdout must be PIPE, STDOUT, DEVNULL")
  T.raises(function() sp.run{"true", timeout = -1} end, "timeout must be a non-negative number")
  T.raises(function() sp.run{"true", shell = 1} end, "shell must be a boolean")
  T.raises(function() sp.run{"true", env = {["A=B"] = "c"}} end, "illegal environment variable name")
  T.raises(function() sp.run{"true", input = "x", stdin = sp.PIPE} end, "stdin and input may not both be used")
  T.raises(function() sp.run{"true", capture_output = true, stdout = sp.PIPE} end, "may not be used with capture_output")
  local p = sp.Popen{"true"}
  T.raises(function() p:wait(-1) end, "bad argument")
  T.raises(function() p:send_signal("SIGNOPE") end, "unknown signal")
  T.raises(function() p.wait(nil) end, "Popen expected")
  p:wait()
end)

T.test("a NUL byte in an argument names the element that holds it", function()
  local function message(f) local ok, err = pcall(f); T.ok(not ok); return tostring(err) end
  T.ok(message(function() sp.run{"echo", "ok", "a\0b"} end):find("(embedded null byte in args[3])", 1, true))
  T.ok(message(function() sp.Popen{"echo", "a\0b"} end):find("(embedded null byte in args[2])", 1, true))
  T.ok(message(function() sp.run{"echo \0", shell = true} end):find("(embedded null byte in args[1])", 1, true))
  T.ok(message(function() sp.run{"true", {}} end):find("(args[2] must be a string, got table)", 1, true))
  T.ok(message(function() sp.run("tr\0ue") end):find("(embedded null byte in args)", 1, true))
end)

T.run()
