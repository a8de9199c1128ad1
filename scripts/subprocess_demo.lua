-- The tutorial's subprocess program, offline: the seeds run nslookup (which
-- needs a network); here the same calls run programs every Debian machine has.
local subprocess = require "subprocess"

-- call: run a command, its output goes straight to ours; we get the exit code.
print("$ echo Hello from a child process")
local r = subprocess.call{"echo", "Hello from a child process"}
print("Exit code: " .. r)

-- Popen + communicate: feed input to an interactive program (a shell instead
-- of nslookup) and collect what it prints.
print("$ sh")
local p = subprocess.Popen{"sh", stdin = subprocess.PIPE, stdout = subprocess.PIPE, stderr = subprocess.PIPE}
local output, err = p:communicate('cd /\npwd\necho "2 + 3 = $((2 + 3))"\nexit\n')
print(output)
print("Exit code: " .. p.returncode)
