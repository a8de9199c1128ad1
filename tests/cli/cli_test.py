#!/usr/bin/env python3
"""Command-line tests: run the real plua binary as `lua` would be run and
check exit codes, `arg`, options, error output and stdin handling.

    cli_test.py PLUA [unittest options]
"""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

PLUA = None
TIMEOUT = 30


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("LUA_INIT", "LUA_INIT_5_4", "LUA_PATH", "LUA_PATH_5_4")}

    def tearDown(self):
        self.tmp.cleanup()

    def file(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def plua(self, *args, stdin="", env=None):
        r = subprocess.run([PLUA, *args], input=stdin, capture_output=True, text=True,
                           timeout=TIMEOUT, cwd=self.dir, env=dict(self.env, **(env or {})))
        self.assertNotIn("Sanitizer", r.stderr)  # a sanitizer build's report fails the test
        return r

    def test_version(self):
        r = self.plua("-v")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^plua \d+\.\d+\.\d+ -- Lua 5\.4")

    def test_script_arguments_and_arg_table(self):
        script = self.file("s.lua", """\
            print(select("#", ...), ...)
            print(arg[0], arg[1], arg[2], #arg)
            print(arg[-1], arg[-2], arg[-3] ~= nil)
            """)
        r = self.plua("-e", "x=1", script, "a", "b c")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "2\ta\tb c")
        self.assertEqual(lines[1], f"{script}\ta\tb c\t2")
        self.assertEqual(lines[2], "x=1\t-e\ttrue")  # options at negative indices, then the interpreter

    def test_arg_without_a_script(self):
        r = self.plua("-e", "print(arg[0] ~= nil, arg[1], arg[2], #arg)")
        self.assertEqual(r.stdout, "true\t-e\tprint(arg[0] ~= nil, arg[1], arg[2], #arg)\t2\n")

    def test_shebang_line_is_skipped(self):
        script = self.file("s.lua", "#!/usr/bin/env plua\nprint('ran')\n")
        r = self.plua(script)
        self.assertEqual((r.returncode, r.stdout), (0, "ran\n"), r.stderr)

    def test_execute_options_run_in_order(self):
        r = self.plua("-e", "x = 1", "-e", "x = x + 1", "-eprint(x)")
        self.assertEqual((r.returncode, r.stdout), (0, "2\n"), r.stderr)

    def test_require_options(self):
        self.file("mymod.lua", "return {answer = 42}")
        env = {"LUA_PATH": os.path.join(self.dir, "?.lua")}
        r = self.plua("-l", "mymod", "-l", "m2=mymod", "-ltime", "-e",
                      "print(mymod.answer, m2.answer, type(time.monotonic))", env=env)
        self.assertEqual((r.returncode, r.stdout), (0, "42\t42\tfunction\n"), r.stderr)

    def test_plua_modules_are_preloaded(self):
        r = self.plua("-e", "print(package.preload.time ~= nil, require('time') == require('time'))")
        self.assertEqual(r.stdout, "true\ttrue\n")

    def test_lua_init(self):
        r = self.plua("-e", "print(init)", env={"LUA_INIT": "init = 'code'"})
        self.assertEqual(r.stdout, "code\n")
        init = self.file("init.lua", "init = 'file'")
        r = self.plua("-e", "print(init)", env={"LUA_INIT": "@" + init})
        self.assertEqual(r.stdout, "file\n")
        r = self.plua("-e", "print(init)", env={"LUA_INIT": "init = 1", "LUA_INIT_5_4": "init = 2"})
        self.assertEqual(r.stdout, "2\n")
        r = self.plua("-e", "print(1)", env={"LUA_INIT": "error('bad init')"})
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertIn("bad init", r.stderr)

    def test_E_ignores_the_environment(self):
        os.mkdir(os.path.join(self.dir, "lib"))
        self.file("lib/mymod.lua", "return {}")
        env = {"LUA_INIT": "init = 'code'", "LUA_PATH": os.path.join(self.dir, "lib", "?.lua")}
        r = self.plua("-e", "print(init, pcall(require, 'mymod'))", env=env)
        self.assertTrue(r.stdout.startswith("code\ttrue"), r.stdout + r.stderr)
        r = self.plua("-E", "-e", "print(init, pcall(require, 'mymod'))", env=env)
        self.assertTrue(r.stdout.startswith("nil\tfalse"), r.stdout + r.stderr)

    def test_W_turns_warnings_on(self):
        self.assertEqual(self.plua("-e", "warn('hello')").stderr, "")
        self.assertIn("Lua warning: hello", self.plua("-W", "-e", "warn('hello')").stderr)

    def test_double_dash_stops_options(self):
        script = self.file("-e", "print('file named -e', ...)")
        r = self.plua("--", "-e", "-v")
        self.assertEqual((r.returncode, r.stdout), (0, "file named -e\t-v\n"), r.stderr)
        self.assertTrue(os.path.exists(script))

    def test_dash_runs_stdin_as_a_script(self):
        r = self.plua("-", "x", "y", stdin="print('stdin', arg[0], ...)\nreturn 1")
        self.assertEqual((r.returncode, r.stdout), (0, "stdin\t-\tx\ty\n"), r.stderr)

    def test_uncaught_error(self):
        script = self.file("bad.lua", """\
            local function inner() error("boom") end
            inner()
            """)
        r = self.plua(script)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(lines[0], f"plua: {script}:1: boom")
        self.assertEqual(lines[1], "stack traceback:")
        self.assertIn("in local 'inner'", r.stderr)

    def test_error_in_execute_option_stops_the_rest(self):
        r = self.plua("-e", "error('first')", "-e", "print('not reached')")
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertTrue(r.stderr.startswith("plua: (command line):1: first\n"), r.stderr)

    def test_syntax_error(self):
        script = self.file("syntax.lua", "x = = 1\n")
        r = self.plua(script)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"^plua: .*syntax\.lua:1: unexpected symbol near '='\n")

    def test_non_string_error_objects(self):
        r = self.plua("-e", "error({code = 1})")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("plua: (error object is a table value)\n"), r.stderr)
        r = self.plua("-e", "error(setmetatable({}, {__tostring = function() return 'custom' end}))")
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith("plua: custom\n"), r.stderr)
        r = self.plua("-e", "error()")
        self.assertTrue(r.stderr.startswith("plua: (error object is a nil value)\n"), r.stderr)

    def test_error_objects_of_plua_kinds(self):
        r = self.plua("-e", "require('time').sleep('x')")
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad argument #1 to 'sleep'", r.stderr)

    def test_exit_codes(self):
        self.assertEqual(self.plua("-e", "os.exit(3)").returncode, 3)
        self.assertEqual(self.plua("-e", "os.exit(false)").returncode, 1)
        self.assertEqual(self.plua("-e", "os.exit(true, true)").returncode, 0)
        self.assertEqual(self.plua("-e", "").returncode, 0)

    def interrupt(self, code):
        """Runs code that prints "ready" then blocks or loops; sends SIGINT once it is ready."""
        p = subprocess.Popen([PLUA, "-e", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=self.dir, env=self.env)
        try:
            self.assertEqual(p.stdout.readline(), "ready\n")
            time.sleep(0.1)  # into the loop or the wait; the outcome is the same if not yet
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=TIMEOUT)
        finally:
            p.kill()
            p.wait()
        return p.returncode, err

    @unittest.skipIf(os.environ.get("PLUA_TSAN"), "ThreadSanitizer holds signals back until the thread calls into libc; a busy Lua loop never does")
    def test_ctrl_c_interrupts_a_running_script(self):
        code, err = self.interrupt("print('ready') io.stdout:flush() while true do end")
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith("plua: KeyboardInterrupt: interrupted!\n"), err)

    def test_ctrl_c_interrupts_a_sleeping_script(self):
        started = time.monotonic()
        code, err = self.interrupt("print('ready') io.stdout:flush() require('time').sleep(60)")
        self.assertEqual(code, 1)
        self.assertIn("KeyboardInterrupt: interrupted!", err)
        self.assertLess(time.monotonic() - started, 30)

    def test_missing_script(self):
        r = self.plua("no_such_file.lua")
        self.assertEqual(r.returncode, 1)
        self.assertIn("plua: cannot open no_such_file.lua", r.stderr)

    def test_bad_options_print_usage(self):
        for args, message in ((["-x"], "unrecognized option '-x'"), (["-e"], "'-e' needs argument"),
                              (["-e", "-v"], "'-e' needs argument"), (["-l"], "'-l' needs argument"),
                              (["-vx"], "unrecognized option '-vx'"), (["--x"], "unrecognized option '--x'")):
            r = self.plua(*args)
            self.assertEqual(r.returncode, 1, args)
            self.assertIn(f"plua: {message}\nusage: plua [options] [script [args]]", r.stderr)

    def test_interactive_after_script(self):
        script = self.file("s.lua", "from_script = 'yes'")
        r = self.plua("-i", script, stdin="from_script\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        # -i implies -v; without a terminal the banner goes to stderr with the prompts.
        self.assertEqual(r.stdout, '"yes"\n')
        self.assertIn("plua ", r.stderr)

    def test_interactive_without_a_terminal_keeps_stdout_for_values(self):
        r = self.plua("-e", "x=3", "-i", stdin="x\n")
        self.assertEqual((r.returncode, r.stdout), (0, "3\n"), r.stderr)
        self.assertRegex(r.stderr, r"^plua \d+\.\d+\.\d+ -- Lua 5\.4")
        r = self.plua("-i", stdin="x\n")
        self.assertEqual((r.returncode, r.stdout), (0, "nil\n"), r.stderr)
        self.assertIn("plua ", r.stderr)
        # An explicit -v still prints the version on stdout, as lua does.
        r = self.plua("-v", "-i", stdin="")
        self.assertRegex(r.stdout, r"^plua \d+\.\d+\.\d+ -- Lua 5\.4")

    def test_repl_without_a_terminal(self):
        r = self.plua(stdin="1 + 1\nfunction f()\n  return {1, x = 'y'}\nend\nf()\nerror('oops')\n'after'\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, '2\n{1, x = "y"}\n"after"\n')  # prompts go to stderr
        self.assertIn("stdin:1: oops", r.stderr)
        self.assertIn(">> ", r.stderr)

    def test_require_option_still_starts_the_repl(self):
        r = self.plua("-l", "time", stdin="type(time.time())\n")
        self.assertEqual(r.stdout, '"number"\n')

    def test_execute_option_does_not_start_the_repl(self):
        r = self.plua("-e", "print('only')", stdin="print('not read')\n")
        self.assertEqual(r.stdout, "only\n")

    def test_incomplete_statement_at_end_of_input(self):
        r = self.plua(stdin="for i = 1, 2 do\n")
        self.assertEqual(r.returncode, 0)
        self.assertIn("'end' expected", r.stderr)


if __name__ == "__main__":
    PLUA = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
