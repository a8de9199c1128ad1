#!/usr/bin/env python3
"""The example application: `cmake --install` plua into a temporary prefix,
then configure, build and run examples/queue_workers against it
(find_package(plua)), and check that README.md's excerpt of it is true.

    example_test.py SOURCE_DIR BUILD_DIR
"""
import pathlib
import re
import subprocess
import sys
import tempfile

TIMEOUT = 600
MARKER = "<!-- excerpt of examples/queue_workers/main.cpp -->"


def run(*command, **kwargs):
    print("+", " ".join(map(str, command)), flush=True)
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            timeout=TIMEOUT, **kwargs)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


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
        prefix = pathlib.Path(tmp) / "prefix"
        run("cmake", "--install", build, "--prefix", prefix)
        cache = (build / "CMakeCache.txt").read_text()
        compiler = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.*)$", cache, re.M).group(1)
        app_build = pathlib.Path(tmp) / "build"
        run("cmake", "-S", example, "-B", app_build, f"-DCMAKE_PREFIX_PATH={prefix}",
            f"-DCMAKE_CXX_COMPILER={compiler}")
        run("cmake", "--build", app_build)
        out = run(app_build / "queue_workers", example / "worker.lua", 2000, 4).stdout
        expected = "jobs: 2000, results: 2000, wrong: 0, missing: 0, done by workers: 2000\n"
        if out != expected:
            sys.exit(f"unexpected output:\n{out}\nexpected:\n{expected}")
    print("example application: ok")


if __name__ == "__main__":
    main()
