"""Builds a CMake project against plua as `cmake --install` leaves it: the
shared steps of the consumer and example tests."""
import pathlib
import re
import subprocess
import sys

TIMEOUT = 600


def run(*command, **kwargs):
    print("+", " ".join(map(str, command)), flush=True)
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            timeout=TIMEOUT, **kwargs)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def build_against_install(build, project, tmp):
    """Installs plua from `build` under tmp, then configures and builds `project`
    with find_package(plua) and plua's own compiler; returns the project's build dir."""
    tmp = pathlib.Path(tmp)
    prefix = tmp / "prefix"
    run("cmake", "--install", build, "--prefix", prefix)
    cache = (pathlib.Path(build) / "CMakeCache.txt").read_text()
    compiler = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.*)$", cache, re.M).group(1)
    app_build = tmp / "build"
    run("cmake", "-S", project, "-B", app_build, f"-DCMAKE_PREFIX_PATH={prefix}",
        f"-DCMAKE_CXX_COMPILER={compiler}")
    run("cmake", "--build", app_build)
    return app_build
