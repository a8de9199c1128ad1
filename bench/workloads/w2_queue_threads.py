# W2: a producer thread sends 200,000 integers to a consumer thread through a queue.Queue (messages/s).
import queue
import threading
import time

N = 200000
q = queue.Queue()


def consume(q, n):
    get = q.get
    for _ in range(n):
        get()


def produce(q, n):
    put = q.put
    for i in range(n):
        put(i)


t0 = time.perf_counter()
consumer = threading.Thread(target=consume, args=(q, N))
producer = threading.Thread(target=produce, args=(q, N))
consumer.start()
producer.start()
producer.join()
consumer.join()
elapsed = time.perf_counter() - t0
print(f"RESULT {N / elapsed:.0f} msg/s higher")
