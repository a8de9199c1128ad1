#!/usr/bin/env python3
"""Writes the seed corpora of pickle_fuzz, frame_fuzz, handshake_fuzz and
manager_fuzz from what Python itself sends: pickles made by the pickle module
(protocols 2 to 5), multiprocessing.connection frames, handshake streams, and
the requests of a multiprocessing.managers client.

    python3 tests/fuzz/make_wire_corpus.py tests/fuzz/corpus
"""
import hashlib
import hmac
import os
import pickle
import queue
import struct
import sys

KEY = b"fuzz-key"  # the key the handshake and manager targets use


def write(root, target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(data):
    return struct.pack("!i", len(data)) + data


VALUES = [
    None, True, False, 0, 1, -1, 255, 65536, 2**31, -2**63, 2**63 - 1, 2**64, 1.5, float("inf"),
    "", "text", "ünïcode ✓", b"", b"\x00\xff bytes", (), (1,), (1, 2, 3), [], [1, [2, [3]]],
    {}, {"k": 1, 2: "v", (1, 2): None}, ("#RETURN", [1, "two", 3.0]), ("#ERROR", queue.Empty()),
    ("#ERROR", queue.Full()), ("#ERROR", ValueError("bad", 3)), ("#TRACEBACK", "Traceback ..."),
    [{"a": [1, 2]}, {"b": (3, 4)}], "x" * 300, b"y" * 300,
]


def main(root):
    shared = [1, 2]
    values = VALUES + [[shared, shared]]
    for i, v in enumerate(values):
        for proto in (2, 3, 4, 5):
            write(root, "pickle", "py-p%d-%02d" % (proto, i), pickle.dumps(v, protocol=proto))

    # Frames: small, empty, several in a row, the 8-byte form, truncated, negative.
    write(root, "frame", "one", b"\x00" + frame(b"hello"))
    write(root, "frame", "empty", b"\x01" + frame(b""))
    write(root, "frame", "several", b"\x02" + frame(b"a") + frame(b"bc" * 100) + frame(b"d"))
    write(root, "frame", "long-form", b"\x00" + b"\xff\xff\xff\xff" + struct.pack("!Q", 3) + b"abc")
    write(root, "frame", "truncated", b"\x06" + struct.pack("!i", 50) + b"short")
    write(root, "frame", "negative", b"\x00" + struct.pack("!i", -5))
    write(root, "frame", "oversized", b"\x04" + struct.pack("!i", 5000) + b"z" * 10)

    # Handshake, client role (mode byte even): challenges of both forms, then a verdict.
    legacy = os.urandom(20)
    tagged = b"{sha256}" + os.urandom(40)
    write(root, "handshake", "client-legacy", b"\x00" + frame(b"#CHALLENGE#" + legacy) + frame(b"#WELCOME#"))
    write(root, "handshake", "client-tagged", b"\x02" + frame(b"#CHALLENGE#" + tagged) + frame(b"#WELCOME#"))
    write(root, "handshake", "client-failure", b"\x02" + frame(b"#CHALLENGE#" + tagged) + frame(b"#FAILURE#"))
    write(root, "handshake", "client-sha3", b"\x00" + frame(b"#CHALLENGE#{sha3_256}" + os.urandom(40)))
    # Server role (mode byte odd): replies in each form (wrong, as any input's must be).
    write(root, "handshake", "server-md5", b"\x01" + frame(hmac.new(KEY, legacy, "md5").digest()))
    write(root, "handshake", "server-tagged",
          b"\x03" + frame(b"{sha256}" + hmac.new(KEY, tagged, hashlib.sha256).digest()))
    write(root, "handshake", "server-junk", b"\x03" + frame(b"{nope}xyz"))

    # Manager: a public request, then calls, as multiprocessing.managers sends them.
    def req(ident, method, args=(), kwds=None):
        return pickle.dumps((ident, method, args, kwds or {}), protocol=4)

    sep = b"\n##\n"
    seeds = {
        "create": [req(None, "create", ("Q1",))],
        "create-unknown": [req(None, "create", ("nope",))],
        "incref-decref": [req(None, "incref", ("Q1",))],
        "debug-info": [req(None, "debug_info")],
        "number-of-objects": [req(None, "number_of_objects")],
        "dummy": [req(None, "dummy")],
        "put-get": [req(None, "accept_connection", ("fuzz",)), req("Q1", "put", (1,)), req("Q1", "get"),
                    req("Q1", "qsize")],
        "nowait": [req(None, "accept_connection", ("fuzz",)), req("Q1", "get_nowait"),
                   req("Q2", "put_nowait", ("a",)), req("Q2", "put_nowait", ("b",)), req("Q2", "full")],
        "timeouts": [req(None, "accept_connection", ("fuzz",)), req("Q1", "get", (True, 0.01)),
                     req("Q2", "put", ({"k": [1, 2]},), {"block": True, "timeout": 0.01}),
                     req("Q2", "put", (2,), {"timeout": 0.01})],
        "blocked-get": [req(None, "accept_connection", ("fuzz",)), req("Q1", "get", (True,))],
        "methods": [req(None, "accept_connection", ("fuzz",)), req("Q1", "__repr__"), req("Q1", "empty"),
                    req("Q1", "nosuch"), req("unknown-ident", "get"), req("Q1", "put", (), {"bad": 1})],
        "garbage": [req(None, "accept_connection", ("fuzz",)), b"\x80\x04not a pickle"],
        "malformed-request": [req(None, "accept_connection", ("fuzz",)), pickle.dumps([1, 2], protocol=2)],
    }
    for name, frames in seeds.items():
        write(root, "manager", name, sep.join(frames))


if __name__ == "__main__":
    main(sys.argv[1])
