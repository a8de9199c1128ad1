# W3: the CPU loop s = s + (i*i) % 7 for i = 1..1e8 in one thread, started and joined (seconds).
import threading
import time

N = 100_000_000


def loop(lo, hi, out, k):
    s = 0
    for i in range(lo, hi + 1):
        s = s + (i * i) % 7
    out[k] = s


t0 = time.perf_counter()
out = [0]
t = threading.Thread(target=loop, args=(1, N, out, 0))
t.start()
t.join()
elapsed = time.perf_counter() - t0
print("sum", out[0])
print(f"RESULT {elapsed:.2f} s lower")
