# The tutorial's Python task_master (seeds), with the port from the command
# line so tests can use a free one: python3 task_master.py PORT
import queue
import random
import sys
from multiprocessing.managers import BaseManager

task_queue = queue.Queue()
result_queue = queue.Queue()


class QueueManager(BaseManager):
    pass


QueueManager.register('get_task_queue', callable=lambda: task_queue)
QueueManager.register('get_result_queue', callable=lambda: result_queue)

if __name__ == '__main__':
    manager = QueueManager(address=('127.0.0.1', int(sys.argv[1])), authkey=b'abc')
    manager.start()
    task = manager.get_task_queue()
    result = manager.get_result_queue()
    for i in range(10):
        n = random.randint(0, 10000)
        print('Put task %d...' % n, flush=True)
        task.put(n)
    print('Try get results...', flush=True)
    for i in range(10):
        r = result.get(timeout=30)
        print('Result: %s' % r, flush=True)
    manager.shutdown()
    print('master exit.', flush=True)
