# W7: µs per subprocess.run(["true"]) (spawn, exec, wait), 500 runs.
import subprocess
import time

RUNS = 500
subprocess.run(["true"])  # warm-up, as on the plua side
t0 = time.perf_counter()
for _ in range(RUNS):
    r = subprocess.run(["true"])
    if r.returncode != 0:
        raise SystemExit(f"true failed: {r.returncode}")
print(f"RESULT {(time.perf_counter() - t0) * 1e6 / RUNS:.1f} us lower")
