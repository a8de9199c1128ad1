# W8: round trips/s of put + get of an integer through a manager-served queue,
# from a client process (this one) to BaseManager's server process.
import queue
import time
from multiprocessing.managers import BaseManager

q = queue.Queue()


class QueueManager(BaseManager):
    pass


QueueManager.register("get_queue", callable=lambda: q)

if __name__ == "__main__":
    m = QueueManager(address=("127.0.0.1", 0), authkey=b"bench")
    m.start()
    p = m.get_queue()
    p.put(0)
    p.get()  # warm-up: the proxy's connection is open from here on
    rounds = 3000
    t0 = time.perf_counter()
    for i in range(rounds):
        p.put(i)
        if p.get() != i:
            raise RuntimeError("wrong item")
    print("RESULT %.0f round-trips/s higher" % (rounds / (time.perf_counter() - t0)))
    m.shutdown()
