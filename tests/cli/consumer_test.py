#!/usr/bin/env python3
"""The consumer-project test: `cmake --install` plua into a temporary prefix,
then configure, build and run tests/consumer (find_package(plua), plua::plua),
and check that README.md shows that very program.

    consumer_test.py SOURCE_DIR BUILD_DIR
"""
import os
import pathlib
import re
import subprocess
import sys
import tempfile

TIMEOUT = 600


def run(*command, **kwargs):
    print("+", " ".join(map(str, command)), flush=True)
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            timeout=TIMEOUT, **kwargs)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def main():
    source, build = map(pathlib.Path, sys.argv[1:3])
    consumer = source / "tests" / "consumer"

    # README.md's Embedding example must be the program built here, word for word.
    readme = (source / "README.md").read_text()
    example = (consumer / "main.cpp").read_text()
    blocks = re.findall(r"```cpp\n(.*?)```", readme, re.S)
    if example not in blocks:
        sys.exit("README.md's Embedding section does not show tests/consumer/main.cpp as it is")

    with tempfile.TemporaryDirectory() as tmp:
        prefix = pathlib.Path(tmp) / "prefix"
        run("cmake", "--install", build, "--prefix", prefix)
        cache = (build / "CMakeCache.txt").read_text()
        compiler = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.*)$", cache, re.M).group(1)
        app_build = pathlib.Path(tmp) / "build"
        run("cmake", "-S", consumer, "-B", app_build, f"-DCMAKE_PREFIX_PATH={prefix}",
            f"-DCMAKE_CXX_COMPILER={compiler}")
        run("cmake", "--build", app_build)
        script = pathlib.Path(tmp) / "script.lua"
        script.write_text("answer = answer + 1\n")
        out = run(app_build / "app", script).stdout
        expected = "caught: example:1: boom\nanswer: 43\nown state: ok\n"
        if out != expected:
            sys.exit(f"unexpected output:\n{out}\nexpected:\n{expected}")
    print("consumer project: ok")


if __name__ == "__main__":
    main()
