# W1: Thread create + start + join, 2,000 times one after another, empty body (microseconds per thread).
import threading
import time

N = 2000


def body():
    pass


t0 = time.perf_counter()
for _ in range(N):
    t = threading.Thread(target=body)
    t.start()
    t.join()
elapsed = time.perf_counter() - t0
print(f"RESULT {elapsed / N * 1e6:.1f} us lower")
