def check(result):
    assert result.returncode == 0, "exit code"
    expected = []
    for n in range(1, 6):
        expected += [f"[PRODUCER] Producing {n}...",
                     f"[CONSUMER] Consuming {n}...",
                     "[PRODUCER] Consumer return: 200 OK"]
    assert result.stdout.splitlines() == expected, "output differs from the tutorial's"
    assert result.stderr == "", "nothing on stderr"
