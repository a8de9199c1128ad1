# The tutorial's Python task_worker (seeds), with the port from the command
# line and the tutorial's `Queue.Empty` typo fixed: python3 task_worker.py PORT [AUTHKEY]
import queue
import sys
import time
from multiprocessing.managers import BaseManager


class QueueManager(BaseManager):
    pass


QueueManager.register('get_task_queue')
QueueManager.register('get_result_queue')

server_addr = '127.0.0.1'
print('Connect to server %s...' % server_addr, flush=True)
m = QueueManager(address=(server_addr, int(sys.argv[1])),
                 authkey=(sys.argv[2] if len(sys.argv) > 2 else 'abc').encode())
# Give a master that is still starting a few seconds (the tutorial does not).
for attempt in range(200):
    try:
        m.connect()
        break
    except ConnectionRefusedError:
        time.sleep(0.05)
else:
    m.connect()
task = m.get_task_queue()
result = m.get_result_queue()
for i in range(10):
    try:
        n = task.get(timeout=1)
        print('run task %d * %d...' % (n, n), flush=True)
        r = '%d * %d = %d' % (n, n, n * n)
        time.sleep(0.2)
        result.put(r)
    except queue.Empty:
        print('task queue is empty.', flush=True)
print('worker exit.', flush=True)
