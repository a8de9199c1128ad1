# Process start-up: ms per `python3 -c ""`, started 50 times through system(3)
# (os.system), the same way startup.lua starts `plua -e ""`.
import os
import shlex
import sys
import time

starts = 50
python = os.environ.get("PLUA_BENCH_PYTHON") or sys.executable
command = f"exec {shlex.quote(python)} -c ''"
t0 = time.perf_counter()
for _ in range(starts):
    status = os.system(command)
    if status != 0:
        sys.exit(f"start {python} failed: status {status}")
print(f"RESULT {(time.perf_counter() - t0) * 1000 / starts:.3f} ms lower")
