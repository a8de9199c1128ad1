TIMEOUT = 30


def check(result):
    assert result.returncode == 0, "exit code"
    expected = ["thread MainThread is running...", "thread LoopThread is running..."]
    expected += [f"thread LoopThread >>> {n}" for n in range(1, 6)]
    expected += ["thread LoopThread is ended.", "thread MainThread ended."]
    assert result.stdout.splitlines() == expected, "output differs from the tutorial's"
    assert result.stderr == "", "nothing on stderr"
