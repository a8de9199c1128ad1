# W7c: ms to push 10 MB through `cat` with Popen.communicate and get it back.
import subprocess
import time

data = b"0123456789abcdef" * (10 * 1024 * 1024 // 16)
ROUNDS = 5
best = float("inf")
for _ in range(ROUNDS):
    t0 = time.perf_counter()
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = p.communicate(data)
    elapsed = time.perf_counter() - t0
    if out != data or p.returncode != 0:
        raise SystemExit("cat did not echo the data")
    best = min(best, elapsed)
print(f"RESULT {best * 1000:.2f} ms lower")
