#!/usr/bin/env python3
"""The example application: `cmake --install` plua into a temporary prefix,
then configure, build and run examples/queue_workers against it
(find_package(plua)), and check that README.md's excerpt of it is true.

    example_test.py SOURCE_DIR BUILD_DIR
"""
import pathlib
import re
import sys
import tempfile

from installed_project import build_against_install, run

MARKER = "<!-- excerpt of examples/queue_workers/main.cpp -->"


def check_readme(source, example):
    # Every line README.md shows from the example is in the example.
    readme = (source / "README.md").read_text()
    match = re.search(re.escape(MARKER) + r"\s*```cpp\n(.*?)```", readme, re.S)
    if not match:
        sys.exit("README.md has no excerpt of examples/queue_workers/main.cpp")
    lines = set(line.strip() for line in example.read_text().splitlines())
    for line in match.group(1).splitlines():
        if line.strip() and line.strip() != "..." and line.strip() not in lines:
            sys.exit(f"README.md's excerpt has a line the example does not: {line!r}")


def main():
    source, build = map(pathlib.Path, sys.argv[1:3])
    example = source / "examples" / "queue_workers"
    check_readme(source, example / "main.cpp")
    with tempfile.TemporaryDirectory() as tmp:
        app_build = build_against_install(build, example, tmp)
        out = run(app_build / "queue_workers", example / "worker.lua", 2000, 4).stdout
        expected = "jobs: 2000, results: 2000, wrong: 0, missing: 0, done by workers: 2000\n"
        if out != expected:
            sys.exit(f"unexpected output:\n{out}\nexpected:\n{expected}")
    print("example application: ok")


if __name__ == "__main__":
    main()
