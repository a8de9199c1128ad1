# scripts/task_worker.lua serving the tutorial's Python task_master.py (the
# machine's python3): the checker starts the Python master on a free loopback
# port, and the plua worker takes its tasks and puts the results back.
import pathlib
import socket
import subprocess

TIMEOUT = 90
_HERE = pathlib.Path(__file__).resolve().parent


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = _free_port()
ARGS = [str(PORT)]
_master = subprocess.Popen(["python3", str(_HERE.parent / "manager" / "task_master.py"), str(PORT)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check(result):
    try:
        out, err = _master.communicate(timeout=60)
    finally:
        _master.kill()
    print(out, err)
    assert result.returncode == 0, "worker exit code"
    assert _master.returncode == 0, f"Python master exit code {_master.returncode}: {err}"
    puts = [int(l.split()[2].rstrip(".")) for l in out.splitlines() if l.startswith("Put task ")]
    assert len(puts) == 10, "the Python master put 10 tasks"
    lines = result.stdout.splitlines()
    assert lines[0] == "Connect to server 127.0.0.1...", "worker connects"
    assert lines[1:11] == [f"run task {n} * {n}..." for n in puts], "worker ran the Python tasks"
    assert lines[-1] == "worker exit.", "worker exits"
    results = [l[len("Result: "):] for l in out.splitlines() if l.startswith("Result: ")]
    assert results == [f"{n} * {n} = {n * n}" for n in puts], "Python got every result"
    assert result.stderr == "", "nothing on stderr"
