# W5: 200,000 integers from one process to another through a multiprocessing.Queue (messages/s).
import multiprocessing as mp
import time

N = 200000


def consume(q, done, n):
    get = q.get
    for _ in range(n):
        get()
    done.put(True)


if __name__ == "__main__":
    mp.set_start_method("fork")
    q = mp.Queue()
    done = mp.Queue()
    t0 = time.perf_counter()
    consumer = mp.Process(target=consume, args=(q, done, N))
    consumer.start()
    put = q.put
    for i in range(N):
        put(i)
    done.get()
    elapsed = time.perf_counter() - t0
    consumer.join()
    print(f"RESULT {N / elapsed:.0f} msg/s higher")
