# W4t ThreadPool(2):map of a squaring function over 100,000 integers, default chunk size (tasks/s).
# The pool is started and warmed up first; the map is timed, best of 3.
from multiprocessing.pool import ThreadPool
import time

N = 100000


def square(x):
    return x * x


if __name__ == "__main__":
    with ThreadPool(2) as p:
        xs = list(range(1, N + 1))
        p.map(square, [1, 2, 3, 4])
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            r = p.map(square, xs)
            elapsed = time.perf_counter() - t0
            assert len(r) == N and r[-1] == N * N
            best = min(best, elapsed)
    print(f"RESULT {N / best:.0f} tasks/s higher")
