#!/usr/bin/env python3
"""The consumer-project test: `cmake --install` plua into a temporary prefix,
then configure, build and run tests/consumer (find_package(plua), plua::plua),
and check that README.md shows that very program.

    consumer_test.py SOURCE_DIR BUILD_DIR
"""
import pathlib
import re
import sys
import tempfile

from installed_project import build_against_install, run


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
        app_build = build_against_install(build, consumer, tmp)
        script = pathlib.Path(tmp) / "script.lua"
        script.write_text("answer = answer + 1\n")
        out = run(app_build / "app", script).stdout
        expected = "caught: example:1: boom\nanswer: 43\nown state: ok\n"
        if out != expected:
            sys.exit(f"unexpected output:\n{out}\nexpected:\n{expected}")
    print("consumer project: ok")


if __name__ == "__main__":
    main()
