# scripts/task_master.lua with plua's task_worker.lua taking its tasks: the
# checker picks a free loopback port and starts the worker, which retries its
# connect until the master listens.
import pathlib
import socket
import subprocess
import sys

TIMEOUT = 90


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = _free_port()
ARGS = [str(PORT)]
_plua, _scripts = sys.argv[1], pathlib.Path(sys.argv[2])
_worker = subprocess.Popen([_plua, str(_scripts / "task_worker.lua"), str(PORT)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check(result):
    try:
        out, err = _worker.communicate(timeout=60)
    finally:
        _worker.kill()
    print(out, err)
    assert result.returncode == 0, "master exit code"
    assert _worker.returncode == 0, f"worker exit code {_worker.returncode}: {err}"
    lines = result.stdout.splitlines()
    puts = [int(l.split()[2].rstrip(".")) for l in lines if l.startswith("Put task ")]
    assert len(puts) == 10, "10 tasks put"
    assert lines[10] == "Try get results...", "then results are awaited"
    results = [l[len("Result: "):] for l in lines if l.startswith("Result: ")]
    assert results == [f"{n} * {n} = {n * n}" for n in puts], "every task's result, in order"
    assert lines[-1] == "master exit.", "master exits"
    wlines = out.splitlines()
    assert wlines[0] == "Connect to server 127.0.0.1...", "worker connects"
    assert wlines[1:11] == [f"run task {n} * {n}..." for n in puts], "worker ran the master's tasks"
    assert wlines[-1] == "worker exit.", "worker exits"
    assert result.stderr == "", "nothing on the master's stderr"
