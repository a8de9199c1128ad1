#!/usr/bin/env python3
"""Runs plua's soak tests (tests/soak/*.lua) and prints a markdown table of
their figures.

    run.py --plua PATH [--scale S] [--default-scale S] [--default-rss-slack-kb KB]
           [--timeout SECONDS] [SOAK ...]
    run.py --plua PATH --selftest

SOAK is any of: processes_fork processes_spawn threads queue_messages
manager_roundtrips subprocess_runs pool_workers (default: all). --scale multiplies every size (it sets
PLUA_SOAK_SCALE); without it PLUA_SOAK_SCALE from the environment is used,
else --default-scale, else 1. How far RSS may rise after a soak's first 10%
is PLUA_SOAK_RSS_SLACK_KB from the environment, else --default-rss-slack-kb,
else 4096 KiB.

Each soak checks itself (exit status 0 and its `SOAK ...` line). This driver
also checks what the soak cannot see from inside: once it has exited, no
process it started is left anywhere on the machine (every process carries a
PLUA_SOAK_TAG environment variable unique to the run, so leftovers are found
even after they were re-parented), hence no mapping of its shared arena
(memfd) either, and no new file under /dev/shm.

--selftest runs leaky.lua, which leaks on purpose (a descriptor, memory, a
child, an orphaned grandchild), and fails unless every leak is reported.
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent

# name -> (script, its arguments)
SOAKS = {
    "processes_fork": ("processes.lua", ["fork"]),
    "processes_spawn": ("processes.lua", ["spawn"]),
    "threads": ("threads.lua", []),
    "queue_messages": ("queue_messages.lua", []),
    "manager_roundtrips": ("manager_roundtrips.lua", []),
    "subprocess_runs": ("subprocess_runs.lua", []),
    "pool_workers": ("pool_workers.lua", []),
}

# leaky.lua's leaks -> what the report of each must say.
LEAKS = {
    "fd": "fds: ",
    "memory": "rss: ",
    "child": "children: ",
    "orphan": "processes left behind",
}


def tagged_processes(tag):
    """Pids of live processes whose environment holds PLUA_SOAK_TAG=tag, and
    how many plua-arena memfd mappings they hold."""
    needle = f"PLUA_SOAK_TAG={tag}".encode()
    pids, mappings = [], 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            pids.append(int(entry))
            with open(f"/proc/{entry}/maps") as f:
                mappings += sum("memfd:plua-arena" in line for line in f)
        except OSError:  # not ours, or ended meanwhile
            continue
    return pids, mappings


def dev_shm():
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def parse(stdout):
    """The fields of the `SOAK key=value ...` line: lists for comma-separated values."""
    for line in stdout.splitlines():
        if line.startswith("SOAK "):
            fields = {}
            for part in line.split()[1:]:
                key, _, value = part.partition("=")
                fields[key] = value.split(",") if "," in value else value
            return fields
    return None


def run_one(name, plua, scale, timeout, extra_env):
    script, args = SOAKS[name] if name in SOAKS else ("leaky.lua", [name.removeprefix("leaky_")])
    tag = uuid.uuid4().hex
    env = dict(os.environ, PLUA_SOAK_TAG=tag, **(extra_env or {}))
    if scale is not None:
        env["PLUA_SOAK_SCALE"] = str(scale)
    shm_before = dev_shm()
    failures = []
    start = time.monotonic()
    # Output goes to files, not pipes: a leftover process holding the soak's
    # stdout must not keep the driver waiting for end-of-file.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([plua, str(HERE / script), *args], env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
            failures.append(f"did not finish within {timeout} s")
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    wall = time.monotonic() - start
    if code not in (0, None):
        failures.append(f"exit status {code}")

    # Leftovers: a process still carrying the tag (a second of grace for a
    # child the kernel is still tearing down), a new file under /dev/shm.
    deadline = time.monotonic() + 1.0
    pids, mappings = tagged_processes(tag)
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids, mappings = tagged_processes(tag)
    if pids:
        failures.append(f"processes left behind: {pids} ({mappings} arena mappings)")
        for pid in pids:  # do not leave them to the next soak
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    new_shm = sorted(f for f in dev_shm() - shm_before if not f.startswith("sem.mp-"))
    if new_shm:
        failures.append(f"new files in /dev/shm: {new_shm}")

    fields = parse(stdout)
    if fields is None:
        failures.append("no SOAK line in its output")
    else:
        for key in ("fds", "children", "memfds"):
            values = fields[key]
            if values[0] != values[-1]:
                failures.append(f"{key}: {values[0]} before, {values[-1]} after")
        fields["leftover_processes"] = str(len(pids))
        fields["leftover_mappings"] = str(mappings)
        fields["new_shm"] = str(len(new_shm))
        fields["wall"] = f"{wall:.1f}"
    return fields, failures, stdout, stderr


def row(name, f):
    def at(key, i):
        return f[key][i] if isinstance(f[key], list) else f[key]

    def mib(kb):
        return f"{int(kb) / 1024:.1f}"

    return ("| {name} | {n} | {secs} | {rate} | {fd0} → {fd1} | {ch0} → {ch1} | "
            "{rss0} / {rss10} / {rss1} | {hwm} | {ar0} → {ar1} | {left} |").format(
        name=name, n=f"{int(f['n']):,}", secs=f["seconds"], rate=f.get("rate", ""),
        fd0=at("fds", 0), fd1=at("fds", -1), ch0=at("children", 0), ch1=at("children", -1),
        rss0=mib(at("rss", 0)), rss10=mib(at("rss", 1)), rss1=mib(at("rss", -1)),
        hwm=mib(at("hwm", -1)), ar0=at("arena", 0), ar1=at("arena", -1),
        left=f"{f['leftover_processes']} / {f['new_shm']}")


def selftest(plua):
    """Each leak of leaky.lua must make its run fail, naming the leak."""
    missed = []
    for kind, says in LEAKS.items():
        # The default slack, which leaky.lua's memory leak exceeds three times.
        _, failures, _, stderr = run_one("leaky_" + kind, plua, None, 60, {"PLUA_SOAK_RSS_SLACK_KB": "4096"})
        report = "; ".join(failures) + "\n" + stderr
        caught = says in report
        print(f"leak {kind}: {'caught' if caught else 'MISSED'}: {'; '.join(failures)}")
        if not caught:
            missed.append(kind)
    if missed:
        sys.exit(f"leaks not caught: {' '.join(missed)}")
    print("every leak was caught")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plua", required=True, help="the plua executable")
    parser.add_argument("--scale", type=float, help="size multiplier (sets PLUA_SOAK_SCALE)")
    parser.add_argument("--default-scale", type=float,
                        help="size multiplier when neither --scale nor PLUA_SOAK_SCALE is given")
    parser.add_argument("--default-rss-slack-kb", type=int,
                        help="RSS slack in KiB when PLUA_SOAK_RSS_SLACK_KB is not set")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per soak (default 600)")
    parser.add_argument("--selftest", action="store_true", help="check that leaks are caught")
    parser.add_argument("soaks", nargs="*", metavar="SOAK", help=" ".join(SOAKS))
    opts = parser.parse_args()
    names = opts.soaks or list(SOAKS)
    unknown = [n for n in names if n not in SOAKS]
    if unknown:
        parser.error(f"unknown soak: {' '.join(unknown)} (known: {' '.join(SOAKS)})")
    for given in (opts.scale, opts.default_scale):
        if given is not None and given <= 0:
            parser.error("scales must be positive")
    plua = str(pathlib.Path(opts.plua).resolve())
    scale = opts.scale
    if scale is None and not os.environ.get("PLUA_SOAK_SCALE"):
        scale = opts.default_scale
    extra_env = {}
    if opts.default_rss_slack_kb is not None and not os.environ.get("PLUA_SOAK_RSS_SLACK_KB"):
        extra_env["PLUA_SOAK_RSS_SLACK_KB"] = str(opts.default_rss_slack_kb)
    if opts.selftest:
        return selftest(plua)

    rows, failed = [], []
    for name in names:
        fields, failures, stdout, stderr = run_one(name, plua, scale, opts.timeout, extra_env)
        print(stdout, end="")
        if failures:
            failed.append(name)
            print(f"--- {name} FAILED: {'; '.join(failures)}")
            if stderr:
                print(f"--- {name} stderr ---\n{stderr}", end="" if stderr.endswith("\n") else "\n")
        if fields is not None:
            rows.append(row(name, fields))
    print()
    print("| soak | size | time (s) | rate | fds before → after | children before → after "
          "| RSS MiB before / 10% / after | peak RSS MiB | arena KiB before → after "
          "| leftover processes / /dev/shm files |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    if failed:
        sys.exit(f"soak failed: {' '.join(failed)}")


if __name__ == "__main__":
    main()
