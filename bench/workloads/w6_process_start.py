# W6: Process start + join, 200 times one after another (microseconds per process).
import multiprocessing as mp
import time

N = 200


def body():
    pass


if __name__ == "__main__":
    mp.set_start_method("fork")
    t0 = time.perf_counter()
    for _ in range(N):
        p = mp.Process(target=body)
        p.start()
        p.join()
    elapsed = time.perf_counter() - t0
    print(f"RESULT {elapsed / N * 1e6:.0f} us lower")
