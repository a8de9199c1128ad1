#!/usr/bin/env python3
"""plua's benchmark harness: each workload runs in plua and in Python 3, in the
same run, several times each; the table shows medians and plua/Python ratios.

    python3 bench/run.py [--runs N] [--plua PATH] [--python PATH] [workload ...]

Adding a workload (the whole convention):
  * bench/workloads/NAME.lua and bench/workloads/NAME.py do the same work, the
    Lua one with plua's modules, the Python one with the standard library.
  * Each measures itself and prints exactly one line
        RESULT <value> <unit> <lower|higher>
    e.g. "RESULT 1.52 ms lower" or "RESULT 84000 items/s higher": the number,
    its unit (the same on both sides), and whether lower or higher is better.
    Any other output is ignored (but shown with --verbose).
  * It is started with the working directory bench/workloads and these
    environment variables: PLUA_BENCH_PLUA (absolute path of the plua
    binary) and PLUA_BENCH_PYTHON (the Python interpreter), for workloads that
    start processes; the Lua side is also given `arg[-1]` = the plua binary.
  * A run must finish within --timeout seconds (default 300); keep one run
    around a second or two so that the default 5 runs stay quick.
With no workload named, every NAME that has both files runs, in name order.
"""
import argparse
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
WORKLOADS = HERE / "workloads"
RESULT = re.compile(r"^RESULT\s+(\S+)\s+(\S+)\s+(lower|higher)\s*$")


def find_plua():
    """The plua binary: $PLUA, else a build directory of this checkout, else PATH."""
    if os.environ.get("PLUA"):
        return os.environ["PLUA"]
    top = HERE.parent
    candidates = sorted(top.glob("build*/host/plua"), key=lambda p: p.stat().st_mtime, reverse=True)
    for p in candidates:
        # A sanitizer build would measure the sanitizer, not plua.
        if not re.search(r"(asan|tsan)", str(p.parent.parent.name)):
            return str(p)
    return shutil.which("plua")


def available():
    lua = {p.stem for p in WORKLOADS.glob("*.lua")}
    py = {p.stem for p in WORKLOADS.glob("*.py")}
    return sorted(lua & py)


class WorkloadError(Exception):
    pass


def run_once(command, env, timeout, verbose):
    """Runs one side once; returns (value, unit, direction)."""
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env,
                              cwd=WORKLOADS, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise WorkloadError(f"{' '.join(command)}: no result within {timeout} s")
    if verbose:
        sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise WorkloadError(f"{' '.join(command)}: exit status {proc.returncode}\n{proc.stderr.strip()}")
    results = [m for m in map(RESULT.match, proc.stdout.splitlines()) if m]
    if len(results) != 1:
        raise WorkloadError(f"{' '.join(command)}: expected one 'RESULT <value> <unit> <lower|higher>' "
                            f"line, got {len(results)}")
    value, unit, direction = results[0].groups()
    return float(value), unit, direction


def fmt(x):
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 0.01:
        return f"{x:.2f}"
    return f"{x:.2g}"


def bench(name, args, env):
    lua_cmd = [args.plua, str(WORKLOADS / f"{name}.lua")]
    py_cmd = [args.python, str(WORKLOADS / f"{name}.py")]
    plua_values, py_values, meta = [], [], set()
    # Alternating the two sides spreads any drift of the machine over both.
    for _ in range(args.runs):
        for command, values in ((lua_cmd, plua_values), (py_cmd, py_values)):
            value, unit, direction = run_once(command, env, args.timeout, args.verbose)
            values.append(value)
            meta.add((unit, direction))
    if len(meta) != 1:
        raise WorkloadError(f"{name}: the two sides disagree on unit or direction: {sorted(meta)}")
    unit, direction = meta.pop()
    plua_median, py_median = statistics.median(plua_values), statistics.median(py_values)
    ratio = plua_median / py_median if py_median else float("inf")
    faster = ratio < 1 if direction == "lower" else ratio > 1
    return [name, unit, f"{direction} is better", fmt(plua_median), fmt(py_median),
            f"{ratio:.3g}", "plua" if faster else "Python"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="*", help="names under bench/workloads (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="runs per side (default 5)")
    parser.add_argument("--plua", default=None, help="plua binary (default: $PLUA or build*/host/plua)")
    parser.add_argument("--python", default=sys.executable, help="Python 3 interpreter")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per run")
    parser.add_argument("--verbose", action="store_true", help="show the workloads' own output")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.plua = args.plua or find_plua()
    if not args.plua or not os.access(args.plua, os.X_OK):
        parser.error("no plua binary found: build it or pass --plua PATH")
    args.plua = str(pathlib.Path(args.plua).resolve())
    names = args.workloads or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; available: {', '.join(available())}")

    env = dict(os.environ, PLUA_BENCH_PLUA=args.plua, PLUA_BENCH_PYTHON=args.python)
    header = ["workload", "unit", "direction", "plua (median)", "Python (median)", "plua/Python", "faster"]
    rows, failed = [], False
    for name in names:
        try:
            rows.append(bench(name, args, env))
        except WorkloadError as e:
            failed = True
            print(f"{name}: {e}", file=sys.stderr)
    print(f"Medians of {args.runs} runs each; `{' '.join(['python3', 'bench/run.py'] + sys.argv[1:])}`\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
