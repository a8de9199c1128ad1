import re

TIMEOUT = 60


def check(result):
    assert result.returncode == 0, "exit code"
    assert result.stderr == "", "nothing on stderr"
    lines = result.stdout.splitlines()
    assert lines[-1] == "All subprocesses done.", "the parent's last line comes last"
    parent = [l for l in lines if l.startswith("Parent process ")]
    assert len(parent) == 1 and "Waiting for all subprocesses done..." in lines
    events = []  # ("run", task, pid) / ("end", task, seconds), in output order
    for line in lines:
        m = re.fullmatch(r"Run task (\d) \((\d+)\)\.\.\.", line)
        if m:
            events.append(("run", int(m[1]), int(m[2])))
        m = re.fullmatch(r"Task (\d) runs (\d+\.\d\d) seconds\.", line)
        if m:
            events.append(("end", int(m[1]), float(m[2])))
    runs = [e for e in events if e[0] == "run"]
    ends = [e for e in events if e[0] == "end"]
    assert sorted(e[1] for e in runs) == [0, 1, 2, 3, 4], "five tasks ran"
    assert sorted(e[1] for e in ends) == [0, 1, 2, 3, 4], "five tasks ended"
    assert all(0 <= e[2] < 3.5 for e in ends), "each task slept under 3 seconds"
    first_end = events.index(ends[0])
    started_before = [e for e in events[:first_end] if e[0] == "run"]
    assert len(started_before) == 4, "four tasks start before any finishes"
    assert len({e[2] for e in started_before}) == 4, "on four distinct workers"
    parent_pid = int(parent[0].split()[2].rstrip("."))
    assert parent_pid not in {e[2] for e in runs}, "tasks run in worker processes"
    task4 = next(i for i, e in enumerate(events) if e[:2] == ("run", 4))
    assert task4 > first_end, "the fifth task waits for a free worker"
    pid4 = events[task4][2]
    assert pid4 in {e[2] for e in started_before}, "and reuses one of the four"
