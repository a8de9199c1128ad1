# W3 (baseline): the CPU loop s = s + (i*i) % 7 for i = 1..1e8 on the main thread, no thread at all (seconds).
import time

N = 100_000_000


def loop(lo, hi):
    s = 0
    for i in range(lo, hi + 1):
        s = s + (i * i) % 7
    return s


t0 = time.perf_counter()
s = loop(1, N)
elapsed = time.perf_counter() - t0
print("sum", s)
print(f"RESULT {elapsed:.2f} s lower")
