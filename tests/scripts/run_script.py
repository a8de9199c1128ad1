#!/usr/bin/env python3
"""Runs scripts/NAME.lua in the real plua binary and checks it with
tests/scripts/NAME.py, which defines check(result) and may define
ARGS (extra command-line arguments) and TIMEOUT (seconds).

    run_script.py PLUA SCRIPTS_DIR NAME
    run_script.py --all-checked SCRIPTS_DIR   (every script has a checker)
"""
import importlib.util
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def load_checker(name):
    path = HERE / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"check_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def all_checked(scripts):
    missing = [p.stem for p in sorted(pathlib.Path(scripts).glob("*.lua"))
               if not (HERE / f"{p.stem}.py").exists()]
    if missing:
        sys.exit(f"scripts without a checker in tests/scripts/: {', '.join(missing)}")
    print("every script has a checker")


def main():
    if sys.argv[1] == "--all-checked":
        return all_checked(sys.argv[2])
    plua, scripts, name = sys.argv[1:4]
    checker = load_checker(name)
    command = [plua, str(pathlib.Path(scripts) / f"{name}.lua"), *getattr(checker, "ARGS", [])]
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=getattr(checker, "TIMEOUT", 60), cwd=scripts)
    try:
        checker.check(result)
    except AssertionError as e:
        print(f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")
        print(f"exit code {result.returncode}")
        sys.exit(f"{name}: {e}")
    print(result.stdout, end="")
    print(f"{name}: ok")


if __name__ == "__main__":
    main()
