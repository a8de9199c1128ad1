def check(result):
    assert result.returncode == 0, "exit code"
    lines = result.stdout.splitlines()
    # The two threads run in parallel: either may greet first.
    assert sorted(lines) == ["Hello, Alice (in Thread-A)", "Hello, Bob (in Thread-B)"], \
        "output differs from the tutorial's"
    assert result.stderr == "", "nothing on stderr"
