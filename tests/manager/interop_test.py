#!/usr/bin/env python3
"""plua's manager and the machine's Python 3 speaking to each other over loopback.

    interop_test.py PLUA SCRIPTS_DIR

1. The tutorial's Python task_worker takes its tasks from plua's task_master.lua.
2. A Python BaseManager client uses a queue plua serves (serve_forever): put,
   get, qsize, empty, full, Empty and Full as Python's own exceptions.
3. A Python client with a wrong key gets AuthenticationError; the server goes on.
   A value plua cannot decode (2**70, object()) is a RemoteError and the
   proxy's connection goes on.
4. The 3.12+ handshake ("{sha256}" challenge both ways), spoken by hand.
5. A Python shutdown request ends serve_forever; the plua process exits 0.
6. A plua client gets an item over 64 MiB from a Python server, and refuses
   to send one (a plua server would drop the connection over it).
"""
import hmac
import os
import pathlib
import queue
import socket
import struct
import subprocess
import sys
import time
import pickle
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from multiprocessing.managers import BaseManager, dispatch

HERE = pathlib.Path(__file__).resolve().parent
PLUA, SCRIPTS = sys.argv[1], pathlib.Path(sys.argv[2])
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def python_worker_with_plua_master():
    port = free_port()
    master = subprocess.Popen([PLUA, str(SCRIPTS / "task_master.lua"), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = subprocess.run([sys.executable, str(HERE / "task_worker.py"), str(port)],
                            capture_output=True, text=True, timeout=60)
    out, err = master.communicate(timeout=60)
    puts = [int(l.split()[2].rstrip(".")) for l in out.splitlines() if l.startswith("Put task ")]
    ran = [l for l in worker.stdout.splitlines() if l.startswith("run task ")]
    results = [l[len("Result: "):] for l in out.splitlines() if l.startswith("Result: ")]
    check(master.returncode == 0 and worker.returncode == 0,
          f"master and Python worker exit 0 ({master.returncode}, {worker.returncode}) {err}{worker.stderr}")
    check(ran == [f"run task {n} * {n}..." for n in puts] and len(puts) == 10,
          "the Python worker ran plua's 10 tasks")
    check(results == [f"{n} * {n} = {n * n}" for n in puts], "plua's master got every Python result")


class QueueManager(BaseManager):
    pass


QueueManager.register("get_queue")


def frame(sock_file, data):
    sock_file.write(struct.pack("!i", len(data)) + data)
    sock_file.flush()


def read_frame(sock_file):
    (n,) = struct.unpack("!i", sock_file.read(4))
    return sock_file.read(n)


def sha256_handshake(port, key):
    """A 3.12-style client written out by hand: answer, then challenge."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rwb")
        challenge = read_frame(f)
        check(challenge.startswith(b"#CHALLENGE#{sha256}") and len(challenge) == 11 + 8 + 40,
              "plua's server sends a {sha256} challenge")
        body = challenge[len(b"#CHALLENGE#"):]
        frame(f, b"{sha256}" + hmac.new(key, body, "sha256").digest())
        check(read_frame(f) == b"#WELCOME#", "plua accepts a {sha256} answer")
        mine = b"{sha256}" + os.urandom(40)
        frame(f, b"#CHALLENGE#" + mine)
        reply = read_frame(f)
        check(reply == b"{sha256}" + hmac.new(key, mine, "sha256").digest(),
              "plua answers a {sha256} challenge in kind")
        frame(f, b"#WELCOME#")
        frame(f, pickle.dumps((None, "dummy", (), {})))
        check(pickle.loads(read_frame(f)) == ("#RETURN", None), "dummy request after a {sha256} handshake")


def python_client_with_plua_server():
    port = free_port()
    server = subprocess.Popen([PLUA, str(HERE / "serve.lua"), "k3y", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        check(wait_listening(port, server), "plua serve_forever listens")
        m = QueueManager(address=("127.0.0.1", port), authkey=b"k3y")
        m.connect()
        q = m.get_queue()
        q.put(1)
        q.put({"a": [1, 2.5, None], "b": b"\xff"})
        check(q.full() and q.qsize() == 2 and not q.empty(), "qsize, full, empty")
        try:
            q.put(3, timeout=0.1)
            check(False, "Full raised")
        except queue.Full:
            check(True, "a full queue raises Python's queue.Full")
        check(q.get() == 1, "get an int")
        check(q.get() == {"a": [1, 2.5, None], "b": b"\xff"}, "get a dict with list, float, None, bytes")
        t0 = time.monotonic()
        try:
            q.get(timeout=0.2)
            check(False, "Empty raised")
        except queue.Empty:
            check(time.monotonic() - t0 >= 0.19, "an empty queue raises queue.Empty after the timeout")
        try:
            q.get_nowait()
            check(False, "Empty raised")
        except queue.Empty:
            check(True, "get_nowait raises queue.Empty")
        bad = QueueManager(address=("127.0.0.1", port), authkey=b"wrong")
        try:
            bad.connect()
            check(False, "wrong key refused")
        except AuthenticationError:
            check(True, "a wrong key raises AuthenticationError")
        q.put("still serving")
        check(q.get() == "still serving", "the server goes on after a wrong key")
        # Values plua cannot decode get a RemoteError, and the proxy's connection goes on.
        from multiprocessing.managers import RemoteError
        for what, value in (("an int beyond 64 bits", 2**70), ("an object()", object())):
            try:
                q.put(value)
                check(False, f"{what} refused")
            except RemoteError:
                check(True, f"{what} is refused with RemoteError")
            check(q.qsize() == 0, f"the connection goes on after {what}")
        sha256_handshake(port, b"k3y")
        q.put("left")
        del q
        conn = Client(("127.0.0.1", port), authkey=b"k3y")
        dispatch(conn, None, "shutdown")
        conn.close()
        out, err = server.communicate(timeout=20)
        check(server.returncode == 0 and "left in the queue: 1" in out,
              f"a shutdown request ends serve_forever ({server.returncode}) {out!r} {err!r}")
    finally:
        server.kill()
        server.wait()


def plua_client_with_python_server():
    """Python's server has no frame limit: a plua client takes an item over
    64 MiB from it (replies of any size are accepted), and refuses to send one."""
    import threading
    big = queue.Queue()
    big.put(b"x" * (70 << 20))

    class BigManager(BaseManager):
        pass

    BigManager.register("get_queue", callable=lambda: big)
    m = BigManager(address=("127.0.0.1", 0), authkey=b"k3y")
    server = m.get_server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    code = f"""
local manager = require "manager"
local c = manager.BaseManager{{address = {{"127.0.0.1", {server.address[1]}}}, authkey = "k3y"}}
c:register("get_queue")
local q = c:get_queue()
print(#q:get())
print(pcall(q.put, q, string.rep("y", 70 << 20)))
print(q:qsize())
"""
    r = subprocess.run([PLUA, "-e", code], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and lines[:1] == [str(70 << 20)],
          f"a plua client gets a 70 MiB item from a Python server {r.stdout[:200]!r} {r.stderr[-500:]!r}")
    check(len(lines) == 3 and "frame limit of 67108864 bytes" in lines[1] and lines[2] == "0",
          f"a plua client refuses to send 70 MiB, and goes on {lines[1:]!r}")


def main():
    python_worker_with_plua_master()
    python_client_with_plua_server()
    plua_client_with_python_server()
    if failures:
        sys.exit(f"{len(failures)} failed")
    print("all passed")


if __name__ == "__main__":
    main()
