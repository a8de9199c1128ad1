# W3: the CPU loop s = s + (i*i) % 7 for i = 1..1e8 on one thread, then split over two
# threads; the result is the speedup (one-thread time / two-thread time).
import threading
import time

N = 100_000_000


def loop(lo, hi, out, k):
    s = 0
    for i in range(lo, hi + 1):
        s = s + (i * i) % 7
    out[k] = s


def run(parts):
    t0 = time.perf_counter()
    out = [0] * parts
    threads = []
    for k in range(parts):
        lo = k * (N // parts) + 1
        hi = N if k == parts - 1 else (k + 1) * (N // parts)
        threads.append(threading.Thread(target=loop, args=(lo, hi, out, k)))
        threads[-1].start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, sum(out)


one, s1 = run(1)
two, s2 = run(2)
assert s1 == s2, "the split loop sums differently"
print(f"1 thread {one:.2f} s, 2 threads {two:.2f} s")
print(f"RESULT {one / two:.2f} x higher")
