#!/usr/bin/env python3
"""REPL tests: drive the real plua binary through a pseudo-terminal, as a
user at a keyboard would (readline, Ctrl-C, Ctrl-D, Tab, the arrow keys).

    repl_test.py PLUA [unittest options]
"""
import os
import pty
import re
import select
import signal
import sys
import tempfile
import time
import unittest

PLUA = None
TIMEOUT = 20  # seconds any single expectation may take (sanitizer builds are slow)
PROMPT = re.compile(r"(^|\n)> $")


class Session:
    """plua running on a pseudo-terminal, with expect-style reading."""

    def __init__(self, *args, env=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(PLUA, [PLUA, *args], env or os.environ)
        self.out = ""   # everything read so far
        self.seen = 0   # how far expect() has consumed self.out

    def send(self, text):
        os.write(self.fd, text.encode())

    def _read(self, timeout):
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the other side is closed
            data = b""
        if not data:
            raise EOFError(f"plua ended; output so far:\n{self.out}")
        # Terminal control sequences (bracketed paste, cursor moves) are noise here.
        self.out += re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", data.decode(errors="replace"))
        return True

    def expect(self, pattern, timeout=TIMEOUT):
        """Waits for pattern (a regex) after what was already consumed; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.out, self.seen)
            if m:
                self.seen = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; output:\n{self.out[self.seen:]!r}")
            self._read(left)

    def prompt(self):
        return self.expect(r"(^|\n)> ")

    def enter_statement(self, *lines):
        """Types a statement over several lines: each but the last gets the continuation prompt."""
        for line in lines[:-1]:
            self.send(line + "\r")
            self.expect(r"\n>> ")
        self.send(lines[-1] + "\r")
        self.prompt()

    def run(self, line):
        """Types a line at the prompt and returns what it printed before the next prompt."""
        self.send(line + "\r")
        typed = re.split(r"[\t\n]", line)[-1][-20:]
        self.expect(re.escape(typed))  # the echo of what we typed (after any Tab)
        m = self.expect(r"(?s)(.*?)\n> ")
        return m.group(1).lstrip("\n")

    def wait(self, timeout=TIMEOUT):
        """Waits for plua to exit; returns its exit status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._read(0.05)
            except EOFError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = None
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        raise AssertionError(f"plua did not exit; output:\n{self.out}")

    def close(self):
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            os.close(self.fd)
            self.pid = None


class ReplTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.history = os.path.join(self.tmp.name, "history")
        self.env = dict(os.environ, TERM="xterm", PLUA_HISTORY=self.history,
                        INPUTRC=os.path.join(self.tmp.name, "inputrc"), LUA_INIT="")
        with open(self.env["INPUTRC"], "w") as f:
            f.write("set enable-bracketed-paste off\n")
        self.s = self.start()

    def start(self, *args):
        s = Session(*args, env=self.env)
        self.addCleanup(s.close)
        # Runs before close(): a sanitizer build's report must fail the test.
        self.addCleanup(lambda: self.assertNotIn("Sanitizer", s.out))
        s.expect(r"plua \d+\.\d+\.\d+ -- Lua 5\.4")
        s.prompt()
        return s

    def tearDown(self):
        self.tmp.cleanup()

    def test_expression_values_are_printed(self):
        self.assertEqual(self.s.run("1 + 1"), "2")
        self.assertEqual(self.s.run("10 / 4, 7 // 2"), "2.5\t3")
        self.assertEqual(self.s.run('"hi" .. "!"'), '"hi!"')
        self.assertEqual(self.s.run("nil"), "nil")

    def test_statements_print_nothing(self):
        self.assertEqual(self.s.run("x = 5"), "")
        self.assertEqual(self.s.run("x * 2"), "10")

    def test_tables_are_shown_readably(self):
        self.assertEqual(self.s.run('{1, 2, "three", name = "x", nested = {a = true}}'),
                         '{1, 2, "three", name = "x", nested = {a = true}}')
        self.s.run("t = {} t.self = t")
        self.assertEqual(self.s.run("t"), "{self = <cycle>}")
        long = self.s.run("(function() local r = {} for i = 1, 500 do r[i] = i end return r end)()")
        self.assertIn("... (450 more)", long)
        self.assertNotIn("table: 0x", self.s.run("{{{}}}"))

    def test_multi_line_statements_continue(self):
        self.s.enter_statement("function add(a, b)", "  return a + b", "end")
        self.assertEqual(self.s.run("add(40, 2)"), "42")

    def test_errors_are_reported_and_the_repl_goes_on(self):
        out = self.s.run('error("boom")')
        self.assertIn("stdin:1: boom", out)
        self.assertIn("stack traceback:", out)
        out = self.s.run('error(setmetatable({}, {__tostring = function() return "custom err" end}))')
        self.assertIn("custom err", out)
        self.assertIn("unexpected symbol", self.s.run("x = = 1"))
        self.assertEqual(self.s.run("3 * 3"), "9")

    @unittest.skipIf(os.environ.get("PLUA_TSAN"), "ThreadSanitizer holds signals back until the thread calls into libc; a busy Lua loop never does")
    def test_ctrl_c_interrupts_running_code(self):
        self.s.send("while true do end\r")
        self.s.expect(r"while true do end\n")
        time.sleep(0.2)  # let the loop start; the test passes either way
        self.s.send("\x03")
        self.s.expect(r"KeyboardInterrupt: interrupted!")
        self.s.prompt()
        self.assertEqual(self.s.run("1 + 2"), "3")

    def test_ctrl_c_interrupts_sleep(self):
        started = time.monotonic()
        self.s.send('require("time").sleep(100)\r')
        self.s.expect(r"sleep\(100\)\n")
        time.sleep(0.2)
        self.s.send("\x03")
        self.s.expect(r"KeyboardInterrupt: interrupted!")
        self.s.prompt()
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(self.s.run("2 + 2"), "4")

    def test_ctrl_c_interrupts_a_join(self):
        # The busy thread may be the one the kernel hands SIGINT to; it must reach the main thread.
        self.s.run('thread = require "thread"')
        self.s.run("t = thread.Thread{target = function() while true do end end, daemon = true}")
        self.s.run("t:start()")
        self.s.send("t:join()\r")
        self.s.expect(r"t:join\(\)\n")
        time.sleep(0.2)
        self.s.send("\x03")
        self.s.expect(r"KeyboardInterrupt: interrupted!")
        self.s.prompt()
        self.assertEqual(self.s.run("t:is_alive()"), "true")
        self.s.send("\x04")
        self.assertEqual(self.s.wait(), 0)  # a daemon thread does not hold the exit

    def test_ctrl_c_at_the_prompt_drops_the_line(self):
        self.s.send('error("should not run")')
        self.s.expect(r"should not run\"\)")
        self.s.send("\x03")
        self.s.prompt()
        out = self.s.run("5 * 5")
        self.assertEqual(out, "25")
        self.assertNotIn("should not run", self.s.out[self.s.out.index("5 * 5"):])

    def test_ctrl_c_in_a_continuation_drops_the_statement(self):
        self.s.send("for i = 1, 3 do\r")
        self.s.expect(r"\n>> ")
        self.s.send("\x03")
        self.s.prompt()
        self.assertEqual(self.s.run("6 * 7"), "42")

    def test_ctrl_d_exits(self):
        self.s.send("\x04")
        self.assertEqual(self.s.wait(), 0)

    def test_history_persists_across_sessions(self):
        self.s.run("marker_value = 12345")
        self.s.send("\x04")
        self.assertEqual(self.s.wait(), 0)
        with open(self.history) as f:
            self.assertIn("marker_value = 12345", f.read())
        second = self.start()
        second.send("\x1b[A")  # Up: the previous session's last line
        second.expect(r"marker_value = 12345")
        second.send("\r")
        second.prompt()
        self.assertEqual(second.run("marker_value"), "12345")

    def test_a_multi_line_statement_comes_back_whole_in_the_next_session(self):
        self.s.enter_statement("function f()", "return 41 + 1", "end")
        self.s.send("\x04")
        self.assertEqual(self.s.wait(), 0)
        with open(self.history) as f:
            lines = f.read().splitlines()
        self.assertEqual([l for l in lines if "function f()" in l], [r"function f()\nreturn 41 + 1\nend"])
        second = self.start()
        second.send("\x1b[A")  # Up: the whole statement, not its last line
        second.send("\r")
        second.prompt()
        self.assertEqual(second.run("f()"), "42")

    def test_a_history_file_of_the_old_form_is_read_line_by_line(self):
        self.s.send("\x04")
        self.assertEqual(self.s.wait(), 0)
        # One entry a physical line, backslashes as typed: read as before.
        with open(self.history, "w") as f:
            f.write("old_a = 1\nold_b = 'x\\ny'\n")
        second = self.start()
        second.send("\x1b[A\r")
        second.prompt()
        self.assertEqual(second.run("#old_b"), "3")  # Lua reads x, newline, y: the history kept the backslash
        second.send("\x04")
        self.assertEqual(second.wait(), 0)
        # The file is now in the new form; each session starts at its end.
        third = self.start()
        third.send("\x1b[A\x1b[A\x1b[A\r")  # #old_b, old_b = 'x\ny', old_a = 1
        third.prompt()
        self.assertEqual(third.run("old_a"), "1")
        third.send("\x04")
        self.assertEqual(third.wait(), 0)
        fourth = self.start()
        fourth.send("\x1b[A\x1b[A\x1b[A\x1b[A\r")  # old_a, old_a = 1, #old_b, old_b = 'x\ny'
        fourth.prompt()
        self.assertEqual(fourth.run("#old_b"), "3")

    def test_tab_completes_globals_fields_and_methods(self):
        self.assertEqual(self.s.run("prin\t(7)"), "7")
        self.assertIn("print(7)", self.s.out)
        self.assertEqual(self.s.run("string.for\t('%d', 7)"), '"7"')
        self.s.run('obj = setmetatable({}, {__index = {greet = function() return "hello" end}})')
        self.assertEqual(self.s.run("obj:gr\t()"), '"hello"')

    def test_tab_lists_candidates(self):
        self.s.send("string.u\t\t")
        self.s.expect(r"string\.unpack\s+string\.upper|string\.upper\s+string\.unpack")
        self.s.send("\x03")
        self.s.prompt()


# System call numbers of the ways plua's waits sleep (futex; clock_nanosleep
# for time.sleep), by machine; the REPL at its prompt sleeps in neither.
WAIT_CALLS = {"x86_64": {"202", "230"}, "aarch64": {"98", "115"}}.get(os.uname().machine)


def wait_in_a_wait(pid, timeout=TIMEOUT):
    """Waits until plua's main thread sleeps in a wait (so a Ctrl-C lands in
    it, not before it); where /proc cannot tell, gives it a moment instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/task/{pid}/syscall") as f:
                call = f.read().split()
        except OSError:
            call = None
        if not call or WAIT_CALLS is None:
            time.sleep(0.2)  # no way to look: the test passes either way
            return
        if call[0] in WAIT_CALLS:
            return
        time.sleep(0.01)
    raise AssertionError("plua's main thread never started waiting")


class FaultTest(unittest.TestCase):
    """Ctrl-C while the main thread waits in a blocking call: KeyboardInterrupt
    is printed, the prompt comes back, and the objects still work."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        env = dict(os.environ, TERM="xterm", PLUA_HISTORY="", LUA_INIT="",
                   INPUTRC=os.path.join(self.tmp.name, "inputrc"))
        with open(env["INPUTRC"], "w") as f:
            f.write("set enable-bracketed-paste off\n")
        self.s = Session(env=env)
        self.addCleanup(self.s.close)
        self.addCleanup(lambda: self.assertNotIn("Sanitizer", self.s.out))
        self.s.expect(r"plua \d+\.\d+\.\d+ -- Lua 5\.4")
        self.s.prompt()

    def interrupt(self, line):
        """Runs line, which blocks; Ctrl-C once it waits; checks the report."""
        started = time.monotonic()
        self.s.send(line + "\r")
        self.s.expect(re.escape(line) + r"\n")
        wait_in_a_wait(self.s.pid)
        self.s.send("\x03")
        self.s.expect(r"KeyboardInterrupt: interrupted!")
        self.s.prompt()
        self.assertLess(time.monotonic() - started, TIMEOUT)

    def test_ctrl_c_in_fault_queue_get(self):
        self.s.run('queue = require "queue"')
        self.s.run("q = queue.Queue()")
        self.interrupt("q:get()")
        # The interrupted get took nothing; the queue works as before.
        self.s.run('q:put("after")')
        self.assertEqual(self.s.run("q:get(true, 10), q:qsize()"), '"after"\t0')

    def test_ctrl_c_in_fault_lock_acquire(self):
        self.s.run('lock = require "lock"')
        self.s.run("l = lock.Lock()")
        self.assertEqual(self.s.run("l:acquire()"), "true")
        self.interrupt("l:acquire()")  # a Lock is not re-entrant: this waits forever
        self.assertEqual(self.s.run("l:locked()"), "true")
        self.s.run("l:release()")
        self.assertEqual(self.s.run("l:acquire(false)"), "true")

    def test_ctrl_c_in_fault_thread_join(self):
        self.s.run('thread, lock = require "thread", require "lock"')
        self.s.run("e = lock.Event()")
        self.s.run("t = thread.Thread{target = function(e) e:wait() return 42 end, args = {e}}")
        self.s.run("t:start()")
        self.interrupt("t:join()")
        self.assertEqual(self.s.run("t:is_alive()"), "true")
        self.s.run("e:set()")
        self.assertEqual(self.s.run("t:join(10), t:result()"), "true\t42")

    def test_ctrl_c_in_fault_sleep(self):
        self.s.run('time = require "time"')
        self.interrupt("time.sleep(100)")
        self.assertEqual(self.s.run("2 + 2"), "4")
        # A second interrupted wait in the same session works the same way.
        self.interrupt("time.sleep(100)")
        self.assertEqual(self.s.run("'still here'"), '"still here"')


if __name__ == "__main__":
    PLUA = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
